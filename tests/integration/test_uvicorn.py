"""uvicorn serving asgi_app.py on tideloop (`--loop tideloop:new_event_loop`,
an import string "module:callable" that uvicorn >= 0.36 calls as the loop
factory), checked with httpx.AsyncClient and the websockets client, both
running on tideloop too."""
import asyncio
import hashlib
import os
import signal
import sys

import pytest

from integsupport import (
    LOOP_MODULE, Server, free_port, has_ipv6_loopback, http_json, need,
    pattern_bytes, run,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]

LOOP = "tideloop:new_event_loop"
# uvicorn 0.54 deprecates its legacy "websockets" implementation in favour
# of "websockets-sansio" (both use the websockets package).
WS = "websockets-sansio"


# (--http, --ws) pairs the module's server fixture runs with: every HTTP
# and websocket implementation of uvicorn over the tests below.
IMPLS = [("h11", "websockets-sansio"), ("httptools", "websockets"),
         ("h11", "wsproto")]
_IMPL_MODULES = {"httptools": "httptools", "wsproto": "wsproto",
                 "websockets": "websockets", "websockets-sansio": "websockets"}


def _uvicorn_argv(*args, ws=WS):
    return [sys.executable, "-m", "uvicorn", "asgi_app:app", "--loop", LOOP,
            "--lifespan", "on", "--ws", ws, "--no-access-log",
            *args]


def stop_uvicorn(server, sig=signal.SIGTERM):
    """Stop with `sig` and check the shutdown was clean.  After a graceful
    shutdown uvicorn (0.29+) re-raises the signal it caught, so the exit
    status is -sig (as with stock asyncio), not 0."""
    rc = server.stop(sig)
    assert rc in (0, -sig), server.describe()
    assert "Finished server process" in server.log, server.describe()
    assert "Traceback" not in server.log, server.describe()


@pytest.fixture(scope="module", params=IMPLS,
                ids=["%s-%s" % impl for impl in IMPLS])
def uvicorn_url(request):
    need("uvicorn")
    http, ws = request.param
    need(_IMPL_MODULES.get(http, "h11"))
    need(_IMPL_MODULES[ws])
    port = free_port()
    with Server(_uvicorn_argv("--host", "127.0.0.1", "--port", port,
                              "--http", http, ws=ws),
                name="uvicorn") as server:
        server.wait_port(port)
        yield "http://127.0.0.1:%d" % port
        stop_uvicorn(server)
        assert "Application shutdown complete" in server.log, server.describe()


def test_runs_on_tideloop(uvicorn_url):
    info = http_json(uvicorn_url + "/loop")
    assert info["loop_module"] == "tideloop", info
    assert info["loop_class"] == "Loop", info
    assert info["lifespan_loop"] == "tideloop", info


def test_httpx_get_post_stream(uvicorn_url):
    httpx = need("httpx")
    body = pattern_bytes(3 * 1024 * 1024 + 17)

    async def main():
        async with httpx.AsyncClient(base_url=uvicorn_url, timeout=20) as client:
            r = await client.get("/loop")
            assert r.status_code == 200
            assert r.json()["loop_module"] == "tideloop"

            # Several requests at once on the client's connection pool.
            rs = await asyncio.gather(*[
                client.post("/echo", content=body[:i * 1000])
                for i in range(20)])
            for i, r in enumerate(rs):
                assert r.status_code == 200
                assert r.headers["x-body-length"] == str(i * 1000)
                assert r.content == body[:i * 1000]

            r = await client.post("/echo", content=body)
            assert r.status_code == 200
            assert r.headers["x-body-length"] == str(len(body))
            assert hashlib.sha256(r.content).digest() == \
                hashlib.sha256(body).digest()

            # A streamed request body (chunked) and a streamed response.
            async def gen():
                for i in range(0, len(body), 65536):
                    yield body[i:i + 65536]
            r = await client.post("/echo", content=gen())
            assert r.content == body

            chunks = []
            async with client.stream("GET", "/stream?n=50&size=4096") as r:
                assert r.status_code == 200
                async for chunk in r.aiter_bytes():
                    chunks.append(chunk)
            data = b"".join(chunks)
            assert data == b"".join(bytes([i]) * 4096 for i in range(50))

            r = await client.get("/nope")
            assert (r.status_code, r.content) == (404, b"not found")
    run(main)


def test_websocket(uvicorn_url):
    need("websockets")
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedError

    ws_url = uvicorn_url.replace("http://", "ws://") + "/ws"

    async def main():
        async with connect(ws_url, open_timeout=10, close_timeout=5) as ws:
            assert await ws.recv() == "loop:tideloop"
            for text in ["hello", "é" * 1000, ""]:
                await ws.send(text)
                assert await ws.recv() == text
            blob = pattern_bytes(200_000, seed=3)
            await ws.send(blob)
            assert await ws.recv() == blob
            pong = await ws.ping()
            await asyncio.wait_for(pong, 10)
            await ws.send("close")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4001
            assert info.value.rcvd.reason == "asked to close"
    run(main)


def test_unix_socket_and_ipv6(tmp_dir):
    need("uvicorn")
    httpx = need("httpx")
    path = os.path.join(tmp_dir, "uvicorn.sock")
    with Server(_uvicorn_argv("--uds", path), name="uvicorn --uds") as server:
        server.wait_unix(path)

        async def main():
            transport = httpx.AsyncHTTPTransport(uds=path)
            async with httpx.AsyncClient(transport=transport, timeout=20) as c:
                r = await c.get("http://uvicorn/loop")
                assert r.json()["loop_module"] == "tideloop"
                r = await c.post("http://uvicorn/echo", content=b"x" * 100000)
                assert r.content == b"x" * 100000
        run(main)
        stop_uvicorn(server)

    if not has_ipv6_loopback():
        return
    port = free_port("::1")
    with Server(_uvicorn_argv("--host", "::1", "--port", port),
                name="uvicorn ::1") as server:
        server.wait_port(port, host="::1")

        async def main6():
            async with httpx.AsyncClient(timeout=20) as c:
                r = await c.get("http://[::1]:%d/loop" % port)
                assert r.json()["loop_module"] == "tideloop"
        run(main6)
        stop_uvicorn(server)


def test_programmatic_server_in_process():
    """uvicorn.Server(...).serve() as a task on a tideloop loop, with the
    client on the same loop."""
    uvicorn = need("uvicorn")
    httpx = need("httpx")
    import asgi_app

    port = free_port()

    async def main():
        config = uvicorn.Config(asgi_app.app, host="127.0.0.1", port=port,
                                lifespan="on", log_level="warning")
        server = uvicorn.Server(config)
        # Signals stay with pytest: the test stops the server itself.
        server.install_signal_handlers = lambda: None
        task = asyncio.create_task(server.serve())
        try:
            for _ in range(500):
                if server.started:
                    break
                assert not task.done(), task
                await asyncio.sleep(0.01)
            assert server.started
            async with httpx.AsyncClient(timeout=20) as c:
                r = await c.get("http://127.0.0.1:%d/loop" % port)
                info = r.json()
                assert info["loop_module"] == LOOP_MODULE
                assert info["pid"] == os.getpid()
                r = await c.post("http://127.0.0.1:%d/echo" % port,
                                 content=b"abc" * 1000)
                assert r.content == b"abc" * 1000
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)
    run(main)


def test_uvicorn_run_loop_argument(tmp_dir):
    """uvicorn.run(app, loop=...) with the import string and with the
    factory itself (uvicorn passes a non-string through unchanged)."""
    need("uvicorn")
    for loop_arg in ("'tideloop:new_event_loop'", "tideloop.new_event_loop"):
        port = free_port()
        script = os.path.join(tmp_dir, "serve.py")
        with open(script, "w") as f:
            f.write("import tideloop, uvicorn\n"
                    "uvicorn.run('asgi_app:app', host='127.0.0.1', port=%d,"
                    " loop=%s, lifespan='on', log_level='info')\n"
                    % (port, loop_arg))
        with Server([sys.executable, script], name="uvicorn.run") as server:
            server.wait_port(port)
            info = http_json("http://127.0.0.1:%d/loop" % port)
            assert info["loop_module"] == "tideloop", (loop_arg, info)
            assert info["lifespan_loop"] == "tideloop", (loop_arg, info)
            stop_uvicorn(server, signal.SIGINT)


def test_uvicorn_workers():
    """--workers 2: uvicorn's process supervisor spawns worker processes,
    each of which imports the loop factory from the string."""
    need("uvicorn")
    port = free_port()
    with Server(_uvicorn_argv("--host", "127.0.0.1", "--port", port,
                              "--workers", "2"),
                name="uvicorn --workers 2") as server:
        server.wait_port(port)
        pids = set()
        for _ in range(30):
            info = http_json("http://127.0.0.1:%d/loop" % port)
            assert info["loop_module"] == "tideloop", info
            assert info["lifespan_loop"] == "tideloop", info
            pids.add(info["pid"])
        assert server.proc.pid not in pids
        rc = server.stop(signal.SIGTERM, timeout=30)
        assert rc in (0, -signal.SIGTERM), server.describe()
        assert "Traceback" not in server.log, server.describe()
        assert server.log.count("Finished server process") == 2, \
            server.describe()


def test_backpressure_and_keepalive_timeout():
    """A slow reader of a 24 MB streamed response (the server's transport
    pauses and resumes writing), then uvicorn's keep-alive timer closes
    the idle connection."""
    need("uvicorn")
    port = free_port()
    with Server(_uvicorn_argv("--host", "127.0.0.1", "--port", port,
                              "--timeout-keep-alive", "1"),
                name="uvicorn keep-alive") as server:
        server.wait_port(port)

        async def main():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            n, size = 3000, 8000
            writer.write(b"GET /stream?n=%d&size=%d HTTP/1.1\r\n"
                         b"Host: x\r\n\r\n" % (n, size))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert b"transfer-encoding: chunked" in head.lower(), head
            body = bytearray()
            while True:  # chunked decoding, read slowly
                line = await reader.readline()
                length = int(line.strip(), 16)
                chunk = await reader.readexactly(length + 2)
                body += chunk[:-2]
                if length == 0:
                    break
                if len(body) % (64 * size) == 0:
                    await asyncio.sleep(0.002)
            assert len(body) == n * size
            assert bytes(body) == b"".join(bytes([i % 256]) * size
                                           for i in range(n))
            # Idle: the server closes the connection after ~1 s.
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await asyncio.wait_for(reader.read(), 10) == b""
            assert 0.5 < loop.time() - t0 < 5
            writer.close()
            await writer.wait_closed()
        run(main)
        stop_uvicorn(server)
