"""sock_recv(), sock_recv_into() and sock_sendall() in C (ext/sockops.c,
issue 14.2): the cases of their own paths (first try, the wait, the
readiness callback), compared with stock asyncio.  test_net_sock.py has
the general behaviour; test_sock_pending_close.py closing while pending."""
import asyncio
import os
import socket
import tempfile

import pytest

from support import run_until, run_with_pair
from netsupport import NET_MARKS, nb_socketpair, outcome, wait
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


def test_coroutines_and_bad_arguments(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            coro = loop.sock_recv(a, 1)
            trace.append(("is coroutine", asyncio.iscoroutine(coro)))
            coro.close()
            b.send(b"x")
            trace.append(("recv str n", await outcome(loop.sock_recv(a, "1"))))
            trace.append(("recv float n",
                          await outcome(loop.sock_recv(a, 1.0))))
            trace.append(("recv_into bytes",
                          await outcome(loop.sock_recv_into(a, b"zz"))))
            trace.append(("sendall int", await outcome(loop.sock_sendall(a, 7))))
            trace.append(("recv not a socket",
                          await outcome(loop.sock_recv(object(), 1))))
            trace.append(("sendall not a socket",
                          await outcome(loop.sock_sendall(None, b"x"))))
            trace.append(("recv after all", await wait(loop.sock_recv(a, 5))))
            trace.append(("sendall empty",
                          await outcome(loop.sock_sendall(a, b""))))

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_pending_errors_and_peer_close(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            # A pending recv_into with a read-only buffer fails when data
            # arrives (the first try would block before looking at it).
            t = loop.create_task(loop.sock_recv_into(a, bytearray(4)))
            await asyncio.sleep(0)
            b.send(b"abcdef")
            trace.append(("recv_into", await outcome(t)))
            trace.append(("rest", await wait(loop.sock_recv(a, 10))))
            # A pending sendall whose peer goes away.
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            t = loop.create_task(loop.sock_sendall(a, b"y" * (4 << 20)))
            await asyncio.sleep(0)
            trace.append(("sendall pending", not t.done()))
            b.close()
            res = await outcome(t)
            trace.append(("sendall after peer close", res[0], res[1][0]))
            # A pending recv whose peer closes: b"".
            c, d = nb_socketpair()
            try:
                t = loop.create_task(loop.sock_recv(c, 10))
                await asyncio.sleep(0)
                d.close()
                trace.append(("recv at EOF", await outcome(t)))
            finally:
                c.close()

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_fd_owned_by_transport(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
            try:
                for name, coro in (
                        ("recv", lambda: loop.sock_recv(a, 1)),
                        ("recv_into",
                         lambda: loop.sock_recv_into(a, bytearray(1))),
                        ("sendall", lambda: loop.sock_sendall(a, b"x"))):
                    res = await outcome(coro)
                    trace.append((name,) + res[:2])
            finally:
                tr.close()
                await asyncio.sleep(0)

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_cancel_keeps_data_and_removes_watch(new_loop, kind):
    """A cancelled sock_recv (also one whose fd became readable in the same
    iteration) leaves the data for the next one, and the fd is no longer
    watched."""
    loop = new_loop()

    async def main(a, b):
        for op in ("recv", "recv_into"):
            buf = bytearray(10)
            t = loop.create_task(loop.sock_recv(a, 10) if op == "recv"
                                 else loop.sock_recv_into(a, buf))
            await asyncio.sleep(0)
            b.send(op.encode())
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            if kind == "tideloop":
                assert not loop._fd_events(a.fileno())
            assert await wait(loop.sock_recv(a, 100)) == op.encode()

    run_with_pair(loop, nb_socketpair, main, 10)


def test_many_concurrent(compare):
    def scenario(loop):
        trace = []
        pairs = [nb_socketpair() for _ in range(20)]

        async def echo(i, a, b):
            t = loop.create_task(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, b"%d" % i)
            data = await t
            await loop.sock_sendall(a, data * 1000)
            got = bytearray(len(data) * 1000)
            view = memoryview(got)
            n = 0
            while n < len(got):
                n += await loop.sock_recv_into(b, view[n:])
            return bytes(got) == data * 1000

        async def main():
            trace.append(await asyncio.gather(
                *(echo(i, a, b) for i, (a, b) in enumerate(pairs))))

        try:
            run_until(loop, main(), 10)
        finally:
            for a, b in pairs:
                a.close()
                b.close()
        return trace + [("pairs", len(pairs))]

    compare(scenario)


@pytest.mark.skipif(not hasattr(asyncio.AbstractEventLoop, "sock_recvfrom"),
                    reason="sock_recvfrom & co. are new in Python 3.11")
def test_datagram_ops_pending(compare):
    def scenario(loop):
        trace = []
        # A short path: AF_UNIX addresses are limited to ~108 bytes.
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "rx")
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(path)
        tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        tx.connect(path)
        for s in (rx, tx):
            s.setblocking(False)

        async def main():
            t = loop.create_task(loop.sock_recvfrom(rx, 100))
            await asyncio.sleep(0)
            trace.append(("recvfrom pending", not t.done()))
            tx.send(b"one")
            data, _ = await wait(t)
            trace.append(("recvfrom", data))
            buf = bytearray(10)
            t = loop.create_task(loop.sock_recvfrom_into(rx, buf, 2))
            await asyncio.sleep(0)
            tx.send(b"two")
            n, _ = await wait(t)
            trace.append(("recvfrom_into", n, bytes(buf)))
            # Fill the receiver's queue: the next sendto waits.
            sent = 0
            while True:
                try:
                    tx.sendto(b"q" * 10, path)
                except BlockingIOError:
                    break
                sent += 1
            t = loop.create_task(loop.sock_sendto(tx, b"last", path))
            await asyncio.sleep(0)
            trace.append(("sendto pending", not t.done()))
            for _ in range(sent):
                await wait(loop.sock_recvfrom(rx, 100))
            trace.append(("sendto", await wait(t)))
            trace.append(("last", (await wait(loop.sock_recvfrom(rx, 100)))[0]))
            trace.append(("sendto bad address",
                          (await outcome(loop.sock_sendto(tx, b"x", 42)))[:2]))
            trace.append(("recvfrom negative",
                          (await outcome(loop.sock_recvfrom(rx, -1)))[:3]))

        try:
            run_until(loop, main(), 10)
        finally:
            rx.close()
            tx.close()
            os.unlink(path)
            os.rmdir(tmp)
        return trace

    compare(scenario)


# -- a wait's registration kept for the socket's next wait (poll.c) -------
#
# After a sock_* wait the epoll backend keeps the fd registered until the
# iteration ends, for the same socket's next wait.  Whatever else happens
# to the fd in between must behave as if the watch had been removed.

async def waited_recv(loop, a, b, data=b"x"):
    """sock_recv(a) that has to wait, awaited in the caller's task (no
    wait_for(), whose task would end the step): the caller goes on in the
    step where the wait ends."""
    loop.call_soon(b.send, data)
    return await loop.sock_recv(a, 100)


def pair_on(fd):
    """A socket pair whose first socket has the number `fd` (the lowest
    free one: the one just closed)."""
    c, d = nb_socketpair()
    assert c.fileno() == fd, (c.fileno(), fd)
    return c, d


def test_fd_closed_and_reused_after_wait(compare):
    """In the step where a waited sock_recv() returns, the socket is
    closed and its number reused by another socket, which then waits."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            trace.append(("a", await waited_recv(loop, a, b)))
            fd = a.fileno()
            a.close()
            c, d = pair_on(fd)
            try:
                loop.call_soon(d.send, b"to c")
                trace.append(("c", await loop.sock_recv(c, 100)))
                trace.append(("c again",
                              await waited_recv(loop, c, d, b"more")))
                trace.append(("reader left", loop.remove_reader(c)))
            finally:
                c.close()
                d.close()

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_fd_closed_with_a_dup_alive(compare):
    """The classic epoll pitfall: a socket closed while a dup keeps its
    file open, its number reused.  The old file's readiness is never
    reported to the new socket's reader or sock_recv(); the new socket's
    own is."""
    def scenario(loop):
        trace = []
        calls = []

        async def main(a, b):
            trace.append(("a", await waited_recv(loop, a, b)))
            keep = a.dup()
            fd = a.fileno()
            a.close()
            c, d = pair_on(fd)
            try:
                loop.add_reader(c, calls.append, "c readable")
                b.send(b"for the dup")       # the old file is readable
                for _ in range(5):
                    await asyncio.sleep(0)
                trace.append(("after old file ready", list(calls)))
                trace.append(("removed", loop.remove_reader(c)))
                t = loop.create_task(loop.sock_recv(c, 100))
                await asyncio.sleep(0)
                b.send(b"more for the dup")
                for _ in range(5):
                    await asyncio.sleep(0)
                trace.append(("recv pending", t.done()))
                d.send(b"for c")
                trace.append(("c", await wait(t)))
                trace.append(("dup", keep.recv(100)))
            finally:
                keep.close()
                c.close()
                d.close()

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_stale_registration_does_not_spin(new_loop, kind):
    """A closed socket's file that a dup keeps open and readable: the loop
    still sleeps (a level-triggered stale registration would wake every
    poll)."""
    loop = new_loop()

    async def main(a, b):
        await waited_recv(loop, a, b)
        keep = a.dup()
        a.close()
        try:
            b.send(b"readable forever")
            await asyncio.sleep(0)
            before = loop._stats()["iterations"] if kind == "tideloop" else 0
            await asyncio.sleep(0.05)
            if kind == "tideloop":
                assert loop._stats()["iterations"] - before < 50
        finally:
            keep.close()

    run_with_pair(loop, nb_socketpair, main, 10)


def test_other_watchers_after_wait(compare):
    """In the step where a waited sock_recv() returns, the fd gets a user
    reader, a writer, a transport; and the socket waits to send."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            trace.append(("a", await waited_recv(loop, a, b)))
            got = loop.create_future()
            loop.add_reader(a, lambda: got.done() or got.set_result(
                a.recv(100)))
            loop.call_soon(b.send, b"for the reader")
            trace.append(("reader", await wait(got)))
            trace.append(("removed", loop.remove_reader(a)))
            trace.append(("a", await waited_recv(loop, a, b, b"y")))
            writable = loop.create_future()
            loop.add_writer(a, lambda: writable.done() or
                            writable.set_result("writable"))
            trace.append(("writer", await wait(writable)))
            trace.append(("removed", loop.remove_writer(a)))
            trace.append(("a", await waited_recv(loop, a, b, b"z")))
            received = loop.create_future()

            class Proto(asyncio.Protocol):
                def data_received(self, data):
                    if not received.done():
                        received.set_result(data)

            tr, _ = await loop.create_connection(Proto, sock=a)
            b.send(b"for the transport")
            trace.append(("transport", await wait(received)))
            tr.close()
            await asyncio.sleep(0)

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_two_sockets_waiting_in_turn(compare):
    """Two sockets of one task wait in turn, each right after the other's
    wait ended; and one socket waits to read, then to write."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            c, d = nb_socketpair()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            try:
                for i in range(3):
                    trace.append(("a", await waited_recv(loop, a, b,
                                                         b"a%d" % i)))
                    trace.append(("c", await waited_recv(loop, c, d,
                                                         b"c%d" % i)))
                # c's send buffer full: sendall waits right after a recv.
                trace.append(("c", await waited_recv(loop, c, d)))
                send = loop.create_task(loop.sock_sendall(c, b"s" * 500_000))
                got = bytearray()
                while len(got) < 500_000:
                    got += await wait(loop.sock_recv(d, 65536))
                trace.append(("sent", await wait(send), len(got)))
                trace.append(("watched", loop.remove_reader(c),
                              loop.remove_writer(c)))
            finally:
                c.close()
                d.close()

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)
