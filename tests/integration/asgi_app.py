"""A plain ASGI 3 application (no framework) served by uvicorn and gunicorn
in the integration tests.

    GET  /loop            {"loop_module", "loop_class", "pid", "lifespan_loop"}
    POST /echo            the request body back, plus x-body-length
    GET  /stream?n=&size= n chunks of `size` bytes (chunk i is bytes([i % 256]) * size)
    GET  /sleep?s=        answers "slept" after s seconds (graceful shutdown)
    WS   /ws              "loop:<module>" first, then echoes text and bytes;
                          the text "close" makes the server close with 4001
"""
import asyncio
import json
import os
from urllib.parse import parse_qs

_state = {"lifespan_loop": None}


def _loop_module():
    return type(asyncio.get_running_loop()).__module__


async def _send_response(send, status, body, content_type=b"text/plain",
                         headers=()):
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type),
                    (b"content-length", str(len(body)).encode())] + list(headers),
    })
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive):
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _state["lifespan_loop"] = _loop_module()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(scope, receive, send):
    message = await receive()
    assert message["type"] == "websocket.connect", message
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "loop:" + _loop_module()})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4001,
                        "reason": "asked to close"})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "websocket":
        return await _websocket(scope, receive, send)
    assert scope["type"] == "http"
    path, method = scope["path"], scope["method"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/loop" and method == "GET":
        loop = asyncio.get_running_loop()
        body = json.dumps({
            "loop_module": type(loop).__module__,
            "loop_class": type(loop).__qualname__,
            "pid": os.getpid(),
            "lifespan_loop": _state["lifespan_loop"],
        }).encode()
        return await _send_response(send, 200, body, b"application/json")
    if path == "/echo" and method == "POST":
        body = await _read_body(receive)
        return await _send_response(
            send, 200, body, b"application/octet-stream",
            [(b"x-body-length", str(len(body)).encode())])
    if path == "/stream" and method == "GET":
        n, size = int(query.get("n", "10")), int(query.get("size", "1000"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        for i in range(n):
            await send({"type": "http.response.body",
                        "body": bytes([i % 256]) * size, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/sleep" and method == "GET":
        await asyncio.sleep(float(query.get("s", "1")))
        return await _send_response(send, 200, b"slept")
    await _read_body(receive)
    await _send_response(send, 404, b"not found")
