"""An aiohttp.web application for the integration tests.

    python -m tideloop aiohttp_app.py PORT          # run_app under tideloop's policy
    python aiohttp_app.py PORT --loop-argument      # run_app(..., loop=tideloop.new_event_loop())

    GET  /loop               {"loop_module", "pid", "startup_loop"}
    POST /json               {"echo": <the JSON>, "sum": sum(echo["numbers"])}
    POST /upload             {"length", "sha256"} of the body (read streaming)
    GET  /download?size=N    N deterministic bytes (pattern_bytes)
    GET  /stream?n=&size=    StreamResponse: n chunks, chunk i = bytes([i % 256]) * size
    GET  /file?path=P        web.FileResponse(P) (the loop's sendfile; Range works)
    GET  /ws                 websocket: "loop:<module>" then echo; text "close"
                             closes with 4002; "ping" sends a server ping first
"""
import asyncio
import hashlib
import os
import sys

from aiohttp import WSMsgType, web

from integsupport import pattern_bytes


def _loop_module():
    return type(asyncio.get_running_loop()).__module__


async def loop_info(request):
    return web.json_response({"loop_module": _loop_module(),
                              "pid": os.getpid(),
                              "startup_loop": request.app["startup_loop"]})


async def json_echo(request):
    data = await request.json()
    return web.json_response({"echo": data, "sum": sum(data["numbers"])})


async def upload(request):
    h = hashlib.sha256()
    n = 0
    async for chunk in request.content.iter_chunked(65536):
        h.update(chunk)
        n += len(chunk)
    return web.json_response({"length": n, "sha256": h.hexdigest()})


async def download(request):
    return web.Response(body=pattern_bytes(int(request.query["size"])),
                        content_type="application/octet-stream")


async def stream(request):
    n, size = int(request.query["n"]), int(request.query["size"])
    resp = web.StreamResponse()
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    for i in range(n):
        await resp.write(bytes([i % 256]) * size)
    await resp.write_eof()
    return resp


async def file_response(request):
    return web.FileResponse(request.query["path"])


async def websocket(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("loop:" + _loop_module())
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close(code=4002, message=b"server says bye")
                break
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def _on_startup(app):
    app["startup_loop"] = _loop_module()


def make_app():
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["startup_loop"] = None
    app.on_startup.append(_on_startup)
    app.router.add_get("/loop", loop_info)
    app.router.add_post("/json", json_echo)
    app.router.add_post("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/stream", stream)
    app.router.add_get("/file", file_response)
    app.router.add_get("/ws", websocket)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    if "--loop-argument" in sys.argv:
        import tideloop
        web.run_app(make_app(), host="127.0.0.1", port=port,
                    loop=tideloop.new_event_loop(), print=print)
    else:
        web.run_app(make_app(), host="127.0.0.1", port=port, print=print)
