"""Reads of every size through data_received(): small and big messages,
switching between them, EOF right after a big read, over TCP, a Unix
socket and a pipe.  tideloop reads big data straight into the bytes it
hands over and small data through the loop's buffer (tl_stream_read() in
ext/stream.c, issue 14): every byte must arrive, in order, in chunks of
at most asyncio's max_size.  Compared with stock asyncio."""
import asyncio
import os

import pytest

from support import run_until
from netsupport import (NET_MARKS, KiB, MiB, close_server, digest, payload,
                        serve, temp_dir, wait, where_param)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS

MAX_SIZE = 256 * KiB    # asyncio's max_size: the most one read hands over

# Around both thresholds (8 KiB: a read this big makes the next one
# direct; 64 KiB: a pipe's direct part) and max_size, switching between
# small and big each time.
SIZES = [1, 100, 5 * KiB, 100 * KiB, 10, 300 * KiB, 3, 8 * KiB - 1,
         8 * KiB, 8 * KiB + 1, 7, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1,
         1, MAX_SIZE - 1, MAX_SIZE, MAX_SIZE + 1, 2, 10 * KiB, 10 * KiB,
         MiB, 5, 200 * KiB]
LAST = 200 * KiB + 17   # sent with the EOF right behind it


class Sink(asyncio.Protocol):
    """Collects what arrives; checks each chunk; wait_for(n)."""

    def __init__(self, loop):
        self.loop = loop
        self.data = bytearray()
        self.bad_chunks = []
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self._want = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if type(data) is not bytes or not 0 < len(data) <= MAX_SIZE:
            self.bad_chunks.append((type(data).__name__, len(data)))
        self.data += data
        if self._want is not None and len(self.data) >= self._want[0]:
            if not self._want[1].done():
                self._want[1].set_result(None)

    def eof_received(self):
        if not self.eof.done():
            self.eof.set_result(len(self.data))

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)

    async def wait_for(self, n):
        self._want = (n, self.loop.create_future())
        if len(self.data) < n:
            await wait(asyncio.shield(self._want[1]))


async def send_all(write, sink, finish):
    """Write each message and wait until it arrived (so reads come in its
    size), then LAST and finish() (EOF) at once.  The trace: what arrived
    after each message, what arrived by EOF."""
    trace = []
    sent = bytearray()
    for i, n in enumerate(SIZES):
        msg = payload(n, seed=i)
        sent += msg
        write(msg)
        await sink.wait_for(len(sent))
        trace.append(("after", n, digest(sink.data), sink.data == sent))
    last = payload(LAST, seed=99)
    sent += last
    write(last)
    finish()
    trace.append(("eof at", await wait(sink.eof), len(sent)))
    trace.append(("all", digest(sink.data), sink.data == sent))
    trace.append(("bad chunks", sink.bad_chunks))
    return trace


def check(trace):
    for ev in trace:
        if ev[0] == "after":
            assert ev[3] is True, ev
    assert ("all", digest(b"".join(
        [payload(n, seed=i) for i, n in enumerate(SIZES)]
        + [payload(LAST, seed=99)])), True) in trace
    assert ("bad chunks", []) in trace


@pytest.mark.parametrize("where", [where_param("tcp4"), where_param("unix")])
def test_stream_read_sizes(compare, where):
    def scenario(loop):
        async def main(d):
            sinks = []

            def factory():
                sinks.append(Sink(loop))
                return sinks[-1]

            ep = await serve(loop, where, factory, d)
            try:
                tr, _ = await wait(ep.connect(asyncio.Protocol))
                while not sinks:
                    await asyncio.sleep(0)
                trace = await send_all(tr.write, sinks[0], tr.write_eof)
                tr.close()
                trace.append(("lost", await wait(sinks[0].lost)))
            finally:
                await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 60)

    check(compare(scenario, min_events=len(SIZES) + 3))


def test_pipe_read_sizes(compare):
    def scenario(loop):
        async def main():
            r, w = os.pipe()
            rf = os.fdopen(r, "rb", buffering=0)
            wf = os.fdopen(w, "wb", buffering=0)
            rtr, sink = await wait(loop.connect_read_pipe(
                lambda: Sink(loop), rf))
            wtr, _ = await wait(loop.connect_write_pipe(
                asyncio.Protocol, wf))
            trace = await send_all(wtr.write, sink, wtr.close)
            trace.append(("lost", await wait(sink.lost)))
            return trace

        return run_until(loop, main(), 60)

    check(compare(scenario, min_events=len(SIZES) + 3))
