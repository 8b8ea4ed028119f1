"""A program written against tideloop's public API, for mypy --strict.

tests/test_typing.py type-checks it (never runs it as a test) with the
installed tideloop, once per target Python version: it must pass, and
the `reveal_type`-free assertions below pin what the stubs promise.
"""
from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import tideloop
from tideloop._core import Handle, TimerHandle


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport: asyncio.Transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def on_timer(tag: str, n: int) -> None:
    print(tag, n)


async def network(loop: tideloop.Loop) -> tuple[str, int]:
    server: asyncio.Server = await loop.create_server(Echo, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    transport, proto = await loop.create_connection(
        asyncio.Protocol, host, port)
    assert isinstance(proto, asyncio.Protocol)
    transport.close()
    server.close()
    await server.wait_closed()
    infos = await loop.getaddrinfo("127.0.0.1", port,
                                   type=socket.SOCK_STREAM)
    assert infos
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "pass")
    rc: int = await proc.wait()
    return str(host), int(port) + rc


async def callbacks(loop: tideloop.Loop) -> float:
    h: Handle = loop.call_soon(on_timer, "soon", 1)
    th: TimerHandle = loop.call_later(0.01, on_timer, "later", 2)
    at: TimerHandle = loop.call_at(loop.time() + 0.01, on_timer, "at", 3)
    loop.call_soon_threadsafe(on_timer, "threadsafe", 4)
    h.cancel()
    cancelled: bool = h.cancelled() and not th.cancelled()
    when: float = th.when() + at.when()
    task: asyncio.Task[int] = loop.create_task(add(1, 2))
    three: int = await task
    fut: asyncio.Future[Any] = loop.create_future()
    fut.set_result(three)
    stats: dict[str, int | float | str] = loop.stats()
    loop.print_debug_info()
    loop.print_debug_info(file=sys.stderr)
    return when + float(cancelled) + float(stats["iterations"])


async def main() -> int:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, tideloop.Loop)
    await callbacks(loop)
    await network(loop)
    # A tideloop.Loop is an asyncio.AbstractEventLoop.
    aloop: asyncio.AbstractEventLoop = loop
    aloop.call_soon(print, "generic")
    return 0


def entry_points() -> None:
    result: int = tideloop.run(main())
    result = tideloop.run(add(1, 2), debug=True)

    loop: tideloop.Loop = tideloop.new_event_loop()
    try:
        result = loop.run_until_complete(add(result, 1))
    finally:
        loop.close()

    # asyncio's policies: deprecated by 3.14, removed in 3.16.
    if sys.version_info < (3, 14):
        policy: asyncio.AbstractEventLoopPolicy = tideloop.EventLoopPolicy()
        asyncio.set_event_loop_policy(policy)
        tideloop.install()
        asyncio.set_event_loop_policy(None)
    elif sys.version_info < (3, 16):
        policy314: asyncio.events._AbstractEventLoopPolicy = (
            tideloop.EventLoopPolicy())
        loop314 = policy314.new_event_loop()
        loop314.close()
        tideloop.install()

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=tideloop.new_event_loop) as runner:
            result = runner.run(main())
    if sys.version_info >= (3, 12):
        result = asyncio.run(main(), loop_factory=tideloop.Loop)

    version: str = tideloop.libuv_version()
    print(result, version, tideloop.__version__)


if __name__ == "__main__":
    entry_points()
