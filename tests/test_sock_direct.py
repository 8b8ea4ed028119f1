"""sock_recv(), sock_recv_into() and sock_sendall() where ext/sockops.c
does recv(2)/send(2) itself (an exact socket.socket with timeout 0) and
where it must call the socket's methods instead (a subclass, a timeout,
arguments other than a positive int or bytes/bytearray), compared with
stock asyncio: results, exceptions, what the peer sees, cancellation."""
import asyncio
import socket
import struct

import pytest

from support import run_until, run_with_pair
from netsupport import NET_MARKS, digest, nb_socketpair, outcome, payload
from netsupport import wait
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


def tcp_pair():
    """A connected, non-blocking loopback TCP pair."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        a = socket.create_connection(lsock.getsockname())
        b, _ = lsock.accept()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def small_sndbuf_pair():
    """tcp_pair() whose first socket has a 4 KiB send buffer (sendall
    waits soon)."""
    a, b = tcp_pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return a, b


def test_recv_arguments_and_ready_data(compare):
    """The first try with data already there, for every kind of n."""
    class Size(int):
        pass

    def scenario(loop):
        trace = []

        async def main(a, b):
            for label, n in (("int", 3), ("zero", 0), ("negative", -1),
                             ("bool", True), ("int subclass", Size(2)),
                             ("too big", 2 ** 64),
                             ("float", 2.0), ("none", None)):
                b.send(b"abcdef")
                trace.append((label, await outcome(loop.sock_recv(a, n))))
                trace.append(("rest", await wait(loop.sock_recv(a, 100))))

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_recv_waits_then_gets_exactly_n(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            t = loop.create_task(loop.sock_recv(a, 5))
            await asyncio.sleep(0)
            trace.append(("pending", t.done()))
            b.send(b"0123456789")
            trace.append(("got", await wait(t)))
            trace.append(("rest", await wait(loop.sock_recv(a, 100))))
            big = payload(300_000)
            send = loop.create_task(loop.sock_sendall(b, big))
            got = bytearray()
            while len(got) < len(big):
                got += await wait(loop.sock_recv(a, 65536))
            await wait(send)
            trace.append(("big", digest(got) == digest(big)))
            b.close()
            trace.append(("eof", await wait(loop.sock_recv(a, 10))))

        run_with_pair(loop, tcp_pair, main, 10)
        return trace

    compare(scenario)


def test_recv_errors(compare):
    """A reset connection, a closed socket, a shut-down one."""
    def scenario(loop):
        trace = []

        async def main():
            a, b = tcp_pair()
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            b.close()
            trace.append(("reset", await outcome(loop.sock_recv(a, 10))))
            a.close()
            trace.append(("closed", await outcome(loop.sock_recv(a, 10))))
            trace.append(("closed send",
                          await outcome(loop.sock_sendall(a, b"x"))))
            a, b = tcp_pair()
            a.shutdown(socket.SHUT_WR)
            trace.append(("send after shutdown",
                          await outcome(loop.sock_sendall(a, b"x"))))
            a.close()
            b.close()
            # A reset while waiting.
            a, b = tcp_pair()
            t = loop.create_task(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            b.close()
            trace.append(("reset while waiting", await outcome(t)))
            a.close()

        run_until(loop, main(), 10)
        return trace

    compare(scenario)


def test_sendall_kinds_of_data(compare):
    """bytes and bytearray (sent by sockops.c), memoryview and array (by
    sock.send()), immediate and partial sends.  (Not an array of wider
    items: asyncio compares the bytes sent with len(data) and never
    finishes.)"""
    import array

    def scenario(loop):
        trace = []

        async def drain(b, n):
            got = bytearray()
            while len(got) < n:
                got += await wait(loop.sock_recv(b, 65536))
            return digest(got)

        async def main(a, b):
            big = payload(200_000, 1)
            for label, data in (
                    ("bytes", b"hello"), ("bytearray", bytearray(b"world")),
                    ("memoryview", memoryview(b"xyz")),
                    ("memoryview slice", memoryview(b"0123456789")[2:7]),
                    ("array of bytes", array.array("b", [1, 2, 3])),
                    ("memoryview cast", memoryview(big).cast("c")),
                    ("big bytes", big), ("big bytearray", bytearray(big)),
                    ("big memoryview", memoryview(big)[1:])):
                n = memoryview(data).nbytes
                send = loop.create_task(loop.sock_sendall(a, data))
                got = await drain(b, n)
                trace.append((label, await outcome(send), got))
            released = memoryview(b"gone")
            released.release()
            for label, data in (("str", "text"), ("int", 5), ("none", None),
                                ("empty", b""), ("released", released)):
                trace.append((label, await outcome(loop.sock_sendall(a, data))))

        run_with_pair(loop, small_sndbuf_pair, main, 20)
        return trace

    compare(scenario)


def test_sendall_mutated_bytearray_while_pending(compare):
    """asyncio keeps a memoryview of the data while waiting: resizing the
    bytearray fails, changing its bytes sends the new ones."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            data = bytearray(payload(2_000_000, 2))
            send = loop.create_task(loop.sock_sendall(a, data))
            await asyncio.sleep(0)
            trace.append(("pending", send.done()))
            try:
                data.extend(b"more")
            except BufferError as exc:
                trace.append(("resize", type(exc).__name__, str(exc)))
            data[-4:] = b"tail"
            got = bytearray()
            while len(got) < len(data):
                got += await wait(loop.sock_recv(b, 65536))
            trace.append(("sent", await outcome(send), got[-4:],
                          digest(got) == digest(data)))

        run_with_pair(loop, small_sndbuf_pair, main, 20)
        return trace

    compare(scenario)


def test_socket_subclass_and_timeouts(compare):
    """A socket.socket subclass's overridden methods are called; a socket
    with a timeout is used through its methods (outside debug mode
    asyncio does not refuse it)."""
    calls = []

    class Traced(socket.socket):
        def recv(self, n, *args):
            calls.append(("recv", n))
            return super().recv(n, *args)

        def send(self, data, *args):
            calls.append(("send", bytes(data)))
            return super().send(data, *args)

        def recv_into(self, buf, *args):
            calls.append(("recv_into", len(buf)))
            return super().recv_into(buf, *args)

    def scenario(loop):
        del calls[:]
        trace = []
        x, y = socket.socketpair()
        a = Traced(fileno=x.detach())
        b = y
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            t = loop.create_task(loop.sock_recv(a, 4))
            await asyncio.sleep(0)
            b.send(b"ping")
            trace.append(("recv", await wait(t)))
            trace.append(("sendall", await wait(loop.sock_sendall(a, b"pong"))))
            trace.append(("peer", b.recv(10)))
            b.send(b"into")
            buf = bytearray(8)
            trace.append(("recv_into", await wait(loop.sock_recv_into(a, buf)),
                          bytes(buf)))
            trace.append(("calls", list(calls)))
            a.settimeout(5.0)
            b.send(b"timeout")
            trace.append(("timeout recv", await wait(loop.sock_recv(a, 7))))
            trace.append(("timeout sendall",
                          await wait(loop.sock_sendall(a, b"t"))))
            trace.append(("peer", b.recv(10)))

        try:
            run_until(loop, main(), 10)
        finally:
            a.close()
            b.close()
        return trace

    compare(scenario)


def test_recv_into_direct_and_pending(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            buf = bytearray(6)
            b.send(b"abc")
            trace.append(("ready", await wait(loop.sock_recv_into(a, buf)),
                          bytes(buf)))
            view = memoryview(buf)[2:]
            t = loop.create_task(loop.sock_recv_into(a, view))
            await asyncio.sleep(0)
            b.send(b"0123456789")
            trace.append(("pending", await wait(t), bytes(buf)))
            trace.append(("read-only", await outcome(
                loop.sock_recv_into(a, b"zz"))))
            trace.append(("rest", await wait(loop.sock_recv(a, 100))))

        run_with_pair(loop, tcp_pair, main, 10)
        return trace

    compare(scenario)


@pytest.mark.parametrize("op", ["recv", "recv_into", "sendall"])
def test_cancel_leaves_no_watch(new_loop, kind, op):
    """A cancelled operation (also one cancelled in the iteration where its
    fd became ready) leaves no reader or writer behind and no data eaten
    or sent; the next operation on the socket works."""
    loop = new_loop()

    def watched(a):
        if kind == "tideloop":
            return loop._fd_events(a.fileno())
        key = loop._selector.get_map().get(a.fileno())
        return key.events if key is not None else 0

    async def main(a, b):
        for ready_too in (False, True):
            if op == "sendall":
                # Fill the send buffer so that sendall waits.
                try:
                    while True:
                        a.send(b"\0" * 65536)
                except BlockingIOError:
                    pass
                coro = loop.sock_sendall(a, b"S" * 100_000)
            elif op == "recv":
                coro = loop.sock_recv(a, 10)
            else:
                coro = loop.sock_recv_into(a, bytearray(10))
            t = loop.create_task(coro)
            await asyncio.sleep(0)
            assert not t.done() and watched(a)
            if ready_too:
                # Ready, and cancelled before the loop polls again.
                if op == "sendall":
                    try:
                        while b.recv(1 << 20):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    b.send(b"data")
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            assert not watched(a)
            if op == "sendall":
                # Nothing of the cancelled data went out.
                try:
                    while b.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
                await wait(loop.sock_sendall(a, b"after"))
                assert await wait(loop.sock_recv(b, 100)) == b"after"
            elif ready_too:
                assert await wait(loop.sock_recv(a, 100)) == b"data"
        assert not loop._sock_waiters if kind == "tideloop" else True

    run_with_pair(loop, small_sndbuf_pair, main, 10)


def test_debug_mode_and_ssl_socket(compare):
    def scenario(loop):
        import ssl
        trace = []
        a, b = nb_socketpair()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        s = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False)

        async def main():
            trace.append(("ssl recv", await outcome(loop.sock_recv(s, 1))))
            trace.append(("ssl sendall",
                          await outcome(loop.sock_sendall(s, b"x"))))
            loop.set_debug(True)
            a.setblocking(True)
            trace.append(("blocking recv", await outcome(loop.sock_recv(a, 1))))
            trace.append(("blocking sendall",
                          await outcome(loop.sock_sendall(a, b"x"))))
            a.setblocking(False)
            b.send(b"dbg")
            trace.append(("debug recv", await wait(loop.sock_recv(a, 10))))
            loop.set_debug(False)

        try:
            run_until(loop, main(), 10)
        finally:
            s.close()
            a.close()
            b.close()
        return trace

    compare(scenario)


def recv_into_buffers():
    """(label, buffer, what shows the bytes received) for recv_into():
    writable C-contiguous ones (recv(2) by sockops.c) and the rest (the
    method's errors)."""
    import array
    import ctypes
    import mmap
    ba = bytearray(8)
    arr = array.array("i", [0, 0])
    m = mmap.mmap(-1, 8)
    cbuf = ctypes.create_string_buffer(8)
    released = memoryview(bytearray(4))
    released.release()
    grid = bytearray(8)
    strided = bytearray(8)
    return [
        ("bytearray", ba, ba),
        ("memoryview slice", memoryview(ba)[2:6], ba),
        ("array of ints", arr, arr),
        ("2-d memoryview", memoryview(grid).cast("B", (2, 4)), grid),
        ("mmap", m, m),
        ("ctypes", cbuf, cbuf),
        ("empty", bytearray(), None),
        ("strided", memoryview(strided)[::2], strided),
        ("read-only view", memoryview(bytearray(4)).toreadonly(), None),
        ("bytes", b"abcd", None),
        ("released", released, None),
        ("str", "abcd", None),
        ("none", None, None),
    ]


def test_recv_into_kinds_of_buffers(compare):
    """Every kind of buffer, data there at the first try and data that
    comes while the operation waits: the count, the bytes, the error."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            for pending in (False, True):
                for label, buf, shows in recv_into_buffers():
                    if pending:
                        t = loop.create_task(loop.sock_recv_into(a, buf))
                        await asyncio.sleep(0)
                        b.send(b"0123456789")
                        res = await outcome(t)
                    else:
                        b.send(b"0123456789")
                        res = await outcome(loop.sock_recv_into(a, buf))
                    got = bytes(shows) if shows is not None else None
                    rest = await outcome(loop.sock_recv(a, 100))
                    trace.append((label, pending, res, got, rest))

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_recv_into_does_not_call_the_method(new_loop, kind, monkeypatch):
    """On an exact non-blocking socket.socket, sock_recv_into() makes the
    recv(2) itself, first try and retry (a bad buffer still goes to the
    method, for its error)."""
    if kind != "tideloop":
        pytest.skip("what tideloop's C path does")
    loop = new_loop()
    calls = []
    method = socket.socket.recv_into

    def traced(self, buf, *args):
        calls.append(type(buf).__name__)
        return method(self, buf, *args)

    monkeypatch.setattr(socket.socket, "recv_into", traced)

    async def main(a, b):
        buf = bytearray(4)
        b.send(b"ab")
        assert await loop.sock_recv_into(a, buf) == 2
        loop.call_soon(b.send, b"cd")
        assert await loop.sock_recv_into(a, buf) == 2
        with pytest.raises(TypeError):
            await loop.sock_recv_into(a, b"xx")
        assert calls == ["bytes"], calls

    run_with_pair(loop, nb_socketpair, main, 10)
