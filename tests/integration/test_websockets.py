"""The websockets library (its asyncio implementation) with server and
client on one tideloop loop: text and binary round trips, ping/pong, close
codes both ways, over TCP (127.0.0.1, ::1) and a Unix socket."""
import asyncio
import os

import pytest

from integsupport import (
    LOOP_MODULE, has_ipv6_loopback, need, pattern_bytes, run,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(90)]


async def _handler(ws):
    from websockets.exceptions import ConnectionClosed
    log = ws.request_log = []
    await ws.send("loop:" + type(asyncio.get_running_loop()).__module__)
    try:
        async for message in ws:
            if message == "close-4000":
                await ws.close(4000, "server closing")
                return
            await ws.send(message)
    except ConnectionClosed as exc:
        log.append(("error", exc.rcvd.code if exc.rcvd else None))
        raise
    log.append(("closed", ws.close_code, ws.close_reason))


def _check_session_factory(connect_factory, closed_by_client):
    """The client side of every case; `connect_factory()` returns the
    websockets connect() context manager."""
    from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

    async def session():
        async with connect_factory() as ws:
            assert await ws.recv() == "loop:" + LOOP_MODULE
            for text in ["a", "ü" * 5000, "{}"]:
                await ws.send(text)
                assert await ws.recv() == text
            for size in (0, 1, 125, 126, 65535, 65536, 900_000):
                blob = pattern_bytes(size, seed=size)
                await ws.send(blob)
                got = await ws.recv()
                assert isinstance(got, bytes) and got == blob, size
            # Fragmented message (an iterable of frames).
            await ws.send(["part1-", "part2-", "part3"])
            assert await ws.recv() == "part1-part2-part3"
            latency = await asyncio.wait_for(await ws.ping(b"\x00ping"), 10)
            assert latency >= 0
            # Many in flight before reading any reply.
            for i in range(200):
                await ws.send("m%d" % i)
            assert [await ws.recv() for _ in range(200)] == \
                ["m%d" % i for i in range(200)]

            # Close from the server with 4000, then from the client (1000).
            await ws.send("close-4000")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4000
            assert info.value.rcvd.reason == "server closing"
            assert ws.close_code == 4000

        async with connect_factory() as ws:
            assert await ws.recv() == "loop:" + LOOP_MODULE
            await ws.close(1000, "client done")
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000
            closed_by_client.set()
    return session


def _run_server_case(serve_factory, connect_factory):
    need("websockets")

    async def main():
        closed_by_client = asyncio.Event()
        connections = []

        async def handler(ws):
            connections.append(ws)
            await _handler(ws)

        async with serve_factory(handler) as server:
            await _check_session_factory(
                lambda: connect_factory(server), closed_by_client)()
            await asyncio.wait_for(closed_by_client.wait(), 10)
            # The server side saw the client's close code and reason.
            for _ in range(100):
                if connections[-1].request_log:
                    break
                await asyncio.sleep(0.01)
            assert connections[-1].request_log == [
                ("closed", 1000, "client done")]
            assert len(connections) == 2
    run(main)


def test_tcp_ipv4():
    need("websockets")
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    _run_server_case(
        lambda h: serve(h, "127.0.0.1", 0, max_size=2 ** 21),
        lambda server: connect(
            "ws://127.0.0.1:%d" % server.sockets[0].getsockname()[1],
            max_size=2 ** 21, open_timeout=10, close_timeout=5))


def test_tcp_ipv6():
    need("websockets")
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    _run_server_case(
        lambda h: serve(h, "::1", 0, max_size=2 ** 21),
        lambda server: connect(
            "ws://[::1]:%d" % server.sockets[0].getsockname()[1],
            max_size=2 ** 21, open_timeout=10, close_timeout=5))


def test_unix_socket(tmp_dir):
    need("websockets")
    from websockets.asyncio.client import unix_connect
    from websockets.asyncio.server import unix_serve
    path = os.path.join(tmp_dir, "ws.sock")
    _run_server_case(
        lambda h: unix_serve(h, path, max_size=2 ** 21),
        lambda server: unix_connect(path, "ws://localhost/",
                                    max_size=2 ** 21, open_timeout=10,
                                    close_timeout=5))


def test_compression_and_too_big():
    """permessage-deflate round trip, and a message over max_size closes
    the connection with 1009 on both sides."""
    need("websockets")
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosedError

    async def main():
        async def echo(ws):
            async for m in ws:
                await ws.send(m)

        async with serve(echo, "127.0.0.1", 0, max_size=100_000,
                         compression="deflate") as server:
            port = server.sockets[0].getsockname()[1]
            async with connect("ws://127.0.0.1:%d" % port,
                               compression="deflate", max_size=None,
                               open_timeout=10) as ws:
                assert ws.response.headers["Sec-WebSocket-Extensions"] \
                    .startswith("permessage-deflate")
                text = "tideloop " * 10_000
                await ws.send(text)
                assert await ws.recv() == text
                await ws.send(b"x" * 200_000)
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.rcvd.code == 1009
    run(main)
