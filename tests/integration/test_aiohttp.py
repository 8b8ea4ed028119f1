"""aiohttp on tideloop: web.run_app in a child process (under `python -m
tideloop`, and with run_app(loop=tideloop.new_event_loop())), and
aiohttp.ClientSession on tideloop against it; also httpx.AsyncClient."""
import asyncio
import hashlib
import os
import signal
import sys

import pytest

from integsupport import Server, free_port, http_json, need, pattern_bytes, run

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]

MIB = 1024 * 1024

RUNNERS = {
    "python-m-tideloop": lambda port: [
        sys.executable, "-m", "tideloop", "aiohttp_app.py", str(port)],
    "run_app-loop-argument": lambda port: [
        sys.executable, "aiohttp_app.py", str(port), "--loop-argument"],
}


@pytest.fixture(scope="module", params=sorted(RUNNERS))
def aiohttp_url(request):
    need("aiohttp")
    port = free_port()
    with Server(RUNNERS[request.param](port), name="aiohttp run_app") as server:
        server.wait_port(port)
        yield "http://127.0.0.1:%d" % port
        rc = server.stop(signal.SIGTERM)
        # run_app turns SIGTERM into GracefulExit: clean cleanup, exit 0.
        assert rc == 0, server.describe()
        assert "Traceback" not in server.log, server.describe()


def test_server_runs_on_tideloop(aiohttp_url):
    info = http_json(aiohttp_url + "/loop")
    assert info["loop_module"] == "tideloop", info
    assert info["startup_loop"] == "tideloop", info


def test_client_session(aiohttp_url):
    aiohttp = need("aiohttp")
    upload = pattern_bytes(5 * MIB + 3, seed=1)
    payload = {"numbers": list(range(-500, 1500)), "text": "tidé\u263a",
               "nested": {"a": [1.5, None, True]}}

    async def main():
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(aiohttp_url, timeout=timeout) as s:
            async with s.get("/loop") as r:
                assert r.status == 200
                assert (await r.json())["loop_module"] == "tideloop"

            async with s.post("/json", json=payload) as r:
                assert r.status == 200
                got = await r.json()
            assert got == {"echo": payload, "sum": sum(payload["numbers"])}

            # 5 MiB up (from a bytes object and from an async generator)...
            async with s.post("/upload", data=upload) as r:
                got = await r.json()
            assert got == {"length": len(upload),
                           "sha256": hashlib.sha256(upload).hexdigest()}

            async def chunks():
                for i in range(0, len(upload), 100_000):
                    yield upload[i:i + 100_000]
            async with s.post("/upload", data=chunks()) as r:
                got = await r.json()
            assert got["sha256"] == hashlib.sha256(upload).hexdigest()

            # ...and down.
            async with s.get("/download", params={"size": 5 * MIB}) as r:
                body = await r.read()
            assert body == pattern_bytes(5 * MIB)

            # A streamed response, read as it comes.
            received = bytearray()
            async with s.get("/stream", params={"n": 300, "size": 1000}) as r:
                async for chunk in r.content.iter_chunked(4096):
                    received += chunk
            assert bytes(received) == b"".join(
                bytes([i % 256]) * 1000 for i in range(300))

            # Concurrent requests over the session's pool.
            async def one(i):
                async with s.post("/json", json={"numbers": [i, i]}) as r:
                    return (await r.json())["sum"]
            sums = await asyncio.gather(*(one(i) for i in range(50)))
            assert sums == [2 * i for i in range(50)]
    run(main)


def test_file_response_sendfile(aiohttp_url, tmp_dir):
    """web.FileResponse sends with loop.sendfile (os.sendfile on the
    transport's socket): whole file, ranges, and many at once."""
    aiohttp = need("aiohttp")
    data = pattern_bytes(7 * MIB + 123, seed=6)
    path = os.path.join(tmp_dir, "blob.bin")
    with open(path, "wb") as f:
        f.write(data)

    async def main():
        async with aiohttp.ClientSession(aiohttp_url) as s:
            async with s.get("/file", params={"path": path}) as r:
                assert r.status == 200
                assert int(r.headers["Content-Length"]) == len(data)
                assert await r.read() == data
            ranges = [(0, 0), (1, 100), (MIB - 1, 2 * MIB + 7),
                      (len(data) - 10, len(data) - 1)]
            for start, end in ranges:
                async with s.get("/file", params={"path": path}, headers={
                        "Range": "bytes=%d-%d" % (start, end)}) as r:
                    assert r.status == 206
                    assert await r.read() == data[start:end + 1]

            async def one():
                async with s.get("/file", params={"path": path}) as r:
                    return hashlib.sha256(await r.read()).digest()
            digests = await asyncio.gather(*(one() for _ in range(8)))
            assert set(digests) == {hashlib.sha256(data).digest()}
    run(main)


def test_websocket(aiohttp_url):
    aiohttp = need("aiohttp")

    async def main():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(aiohttp_url + "/ws", timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
                assert await ws.receive_str(timeout=10) == "loop:tideloop"
                await ws.send_str("hello")
                assert await ws.receive_str(timeout=10) == "hello"
                blob = pattern_bytes(MIB, seed=5)
                await ws.send_bytes(blob)
                assert await ws.receive_bytes(timeout=10) == blob
                await ws.ping(b"are you there")
                await ws.send_str("after ping")
                assert await ws.receive_str(timeout=10) == "after ping"
                await ws.send_str("close")
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.CLOSE, msg
                assert msg.data == 4002
                assert msg.extra == "server says bye"
                assert ws.close_code == 4002
    run(main)


def test_httpx_against_aiohttp(aiohttp_url):
    httpx = need("httpx")

    async def main():
        async with httpx.AsyncClient(base_url=aiohttp_url, timeout=30) as c:
            r = await c.post("/json", json={"numbers": [1, 2, 3]})
            assert r.json() == {"echo": {"numbers": [1, 2, 3]}, "sum": 6}
            r = await c.get("/download", params={"size": 2 * MIB})
            assert r.content == pattern_bytes(2 * MIB)
            total = 0
            async with c.stream("GET", "/stream?n=100&size=5000") as r:
                async for chunk in r.aiter_raw():
                    total += len(chunk)
            assert total == 500_000
    run(main)
    # The aiohttp server answered on tideloop (json check without a loop).
    assert http_json(aiohttp_url + "/loop")["loop_module"] == "tideloop"
