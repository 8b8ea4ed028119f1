"""A closing transport's registration (issue 14, accept_close): on the
epoll backend it lingers from close() to connection_lost(), where it is
forgotten without an EPOLL_CTL_DEL right before the socket's close()
(ext/poll.c).  Closing the fd removes it from the kernel's set only if no
dup keeps the file open: these tests keep one (os.dup()) and check, against
stock asyncio, that the old file's events never reach the fd's next owner,
that the number can be watched again (also for the very same file, where
a surviving registration makes EPOLL_CTL_ADD fail with EEXIST) and that
events between close() and connection_lost() are not delivered."""
import asyncio
import os

import pytest

from support import run_with_pair
from netsupport import NET_MARKS, nb_socketpair, wait
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


class Proto(asyncio.Protocol):
    def __init__(self, loop, trace):
        self.trace = trace
        self.lost = loop.create_future()

    def data_received(self, data):
        self.trace.append(("data", data))

    def eof_received(self):
        self.trace.append(("eof",))

    def connection_lost(self, exc):
        self.trace.append(("lost", exc))
        self.lost.set_result(None)


async def transport_on(loop, a, trace):
    """A transport on socket `a`, reading."""
    tr, proto = await loop.create_connection(lambda: Proto(loop, trace),
                                             sock=a)
    await asyncio.sleep(0)
    return tr, proto


async def close_transport(loop, tr, b, how):
    """close() or abort(), or close() with a write pending, which the peer
    `b` then reads to the end (the transport closes its socket in the step
    where its buffer drains)."""
    if how == "abort":
        tr.abort()
        return None
    if how == "close":
        tr.close()
        return None
    big = b"w" * (4 << 20)
    tr.write(big)
    pending = tr.get_write_buffer_size() > 0
    tr.close()
    got = 0
    while got < len(big):
        got += len(await wait(loop.sock_recv(b, 1 << 20)))
    return pending, got


HOWS = ["close", "abort", "close after writing"]


async def read_once(loop, fileobj, read, send, trace, label):
    """A reader on fileobj resolves a future with read(); send() makes it
    readable. Traces what was read and remove_reader()'s result."""
    got = loop.create_future()
    loop.add_reader(fileobj, lambda: got.done() or got.set_result(read()))
    send()
    trace.append((label, await wait(got)))
    trace.append(("removed", loop.remove_reader(fileobj)))


async def settle(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.parametrize("how", HOWS)
def test_number_reused_while_a_dup_keeps_the_file(compare, how):
    """The transport's socket is closed while a dup keeps its file open;
    a new socket gets the number and a reader.  The old file's readiness
    (data sent to it) never reaches that reader; the new socket's does."""
    def scenario(loop):
        trace = []
        calls = []

        async def main(a, b):
            tr, proto = await transport_on(loop, a, trace)
            b.send(b"first")
            await settle()
            fd = a.fileno()
            keep = os.dup(fd)
            b.send(b"in the step of close()")
            trace.append(("closed", await close_transport(loop, tr, b, how)))
            await wait(proto.lost)
            trace.append(("closed", a.fileno()))
            c, d = nb_socketpair()
            try:
                trace.append(("same number", c.fileno() == fd))
                loop.add_reader(c, calls.append, "c readable")
                b.send(b"for the dup")
                await settle()
                trace.append(("after old file ready", list(calls)))
                await read_once(loop, c, lambda: c.recv(100),
                                lambda: d.send(b"for c"), trace, "c")
                trace.append(("dup", os.read(keep, 100)))
            finally:
                os.close(keep)
                c.close()
                d.close()

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


@pytest.mark.parametrize("how", HOWS)
def test_same_file_back_on_the_number(compare, how):
    """The dup goes back onto the closed transport's number (dup2): the
    same file under the same number, which a surviving registration would
    make EPOLL_CTL_ADD refuse (EEXIST).  add_reader() works as with
    asyncio, and reports the file's readiness."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            tr, proto = await transport_on(loop, a, trace)
            fd = a.fileno()
            keep = os.dup(fd)
            trace.append(("closed", await close_transport(loop, tr, b, how)))
            await wait(proto.lost)
            os.dup2(keep, fd, inheritable=False)
            try:
                await read_once(loop, fd, lambda: os.read(fd, 100),
                                lambda: b.send(b"for the same file"), trace,
                                "read")
                writable = loop.create_future()
                loop.add_writer(fd, lambda: writable.done() or
                                writable.set_result("writable"))
                trace.append(("writer", await wait(writable)))
                trace.append(("removed", loop.remove_writer(fd)))
            finally:
                os.close(keep)
                os.close(fd)

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_closed_transport_with_a_readable_dup_does_not_spin(new_loop, kind):
    """The closed transport's file stays open (a dup) and readable: the
    loop still sleeps (the forgotten, level-triggered registration would
    wake every poll)."""
    loop = new_loop()
    trace = []

    async def main(a, b):
        tr, proto = await transport_on(loop, a, trace)
        keep = os.dup(a.fileno())
        tr.close()
        await wait(proto.lost)
        try:
            b.send(b"readable forever")
            await asyncio.sleep(0)
            before = loop._stats()["iterations"] if kind == "tideloop" else 0
            await asyncio.sleep(0.05)
            if kind == "tideloop":
                assert loop._stats()["iterations"] - before < 50
        finally:
            os.close(keep)

    run_with_pair(loop, nb_socketpair, main, 10)
    assert trace == [("lost", None)]


def test_watched_again_between_close_and_lost(compare):
    """In the step of close(), before connection_lost(), the fd gets a
    user reader (allowed: the transport is closing); the socket's close
    then leaves it registered for a closed fd, as asyncio's selector does;
    a new socket on the number is watched correctly after
    remove_reader()."""
    def scenario(loop):
        trace = []
        calls = []

        async def main(a, b):
            tr, proto = await transport_on(loop, a, trace)
            fd = a.fileno()
            tr.close()
            loop.add_reader(fd, calls.append, "old fd readable")
            b.send(b"x")
            await wait(proto.lost)
            trace.append(("calls", len(calls) > 0))
            trace.append(("removed", loop.remove_reader(fd)))
            c, d = nb_socketpair()
            try:
                trace.append(("same number", c.fileno() == fd))
                await read_once(loop, c, lambda: c.recv(100),
                                lambda: d.send(b"for c"), trace, "c")
            finally:
                c.close()
                d.close()

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)
