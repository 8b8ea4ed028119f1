"""The loop's low-level socket methods: sock_recv, sock_recv_into,
sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect,
sock_accept and sock_sendfile, their errors and cancellation.  Compared with
stock asyncio."""
import asyncio
import io
import os
import socket
import ssl
import tempfile

import pytest

from support import PY, run_until, run_with_pair
from netsupport import (HOST4, HOST6, NET_MARKS, MiB, Scrub, closed_port,
                        digest, nb_socketpair, outcome, payload, requires_ipv6,
                        skip_before, temp_dir, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


def udp_pair(host=HOST4):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    a = socket.socket(family, socket.SOCK_DGRAM)
    b = socket.socket(family, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind((host, 0))
        s.setblocking(False)
    scrub = Scrub().port(a.getsockname()[1], "PORT_A").port(
        b.getsockname()[1], "PORT_B")
    return a, b, scrub


def test_sock_recv(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            b.send(b"ready")
            trace.append(("immediate", await wait(loop.sock_recv(a, 100))))
            loop.call_later(0.01, b.send, b"later")
            trace.append(("delayed", await wait(loop.sock_recv(a, 100))))
            b.send(b"0123456789")
            trace.append(("partial", await wait(loop.sock_recv(a, 4))))
            trace.append(("rest", await wait(loop.sock_recv(a, 100))))
            trace.append(("zero bytes", await outcome(loop.sock_recv(a, 0))))
            trace.append(("negative", await outcome(loop.sock_recv(a, -1))))
            # a pending recv completes with b"" when the peer closes
            loop.call_later(0.01, b.close)
            trace.append(("peer closed", await wait(loop.sock_recv(a, 100))))
            trace.append(("again", await wait(loop.sock_recv(a, 100))))
            trace.append(("reader left", loop.remove_reader(a)))

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    assert compare(scenario)[:2] == [("immediate", b"ready"),
                                     ("delayed", b"later")]


def test_sock_recv_into(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            buf = bytearray(8)
            b.send(b"abc")
            n = await wait(loop.sock_recv_into(a, buf))
            trace.append(("immediate", n, bytes(buf)))
            loop.call_later(0.01, b.send, b"0123456789AB")
            n = await wait(loop.sock_recv_into(a, memoryview(buf)[2:6]))
            trace.append(("delayed into view", n, bytes(buf)))
            n = await wait(loop.sock_recv_into(a, buf))
            trace.append(("rest", n, bytes(buf[:n])))
            trace.append(("empty buffer",
                          await outcome(loop.sock_recv_into(a, bytearray()))))
            trace.append(("read-only buffer",
                          await outcome(loop.sock_recv_into(a, b"xxxx"))))
            b.close()
            trace.append(("eof", await wait(loop.sock_recv_into(a, buf))))
            trace.append(("reader left", loop.remove_reader(a)))

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    assert compare(scenario)[0] == ("immediate", 3, b"abc\0\0\0\0\0")


@skip_before((3, 11), "sock_recvfrom/sock_sendto")
@pytest.mark.parametrize("host", [HOST4, pytest.param(
    HOST6, marks=requires_ipv6)])
def test_sock_recvfrom_sendto(compare, host):
    def scenario(loop):
        trace = []
        a, b, scrub = udp_pair(host)

        async def main():
            addr_a = a.getsockname()
            sent = await wait(loop.sock_sendto(b, b"dgram-1", addr_a))
            trace.append(("sendto returned", sent))
            data, addr = await wait(loop.sock_recvfrom(a, 100))
            trace.append(("immediate", data, addr == b.getsockname(),
                          scrub(addr)))
            loop.call_later(0.01, b.sendto, b"dgram-2", addr_a)
            data, addr = await wait(loop.sock_recvfrom(a, 100))
            trace.append(("delayed", data, scrub(addr)))
            await wait(loop.sock_sendto(b, b"0123456789", addr_a))
            trace.append(("truncated", scrub(
                await wait(loop.sock_recvfrom(a, 4)))))
            await wait(loop.sock_sendto(b, b"", addr_a))
            trace.append(("empty datagram", scrub(
                await wait(loop.sock_recvfrom(a, 10)))))
            big = payload(60000)
            trace.append(("big sent",
                          await wait(loop.sock_sendto(b, big, addr_a))))
            data, _ = await wait(loop.sock_recvfrom(a, 65536))
            trace.append(("big", digest(data)))
            trace.append(("sendto bad address", await outcome(
                loop.sock_sendto(b, b"x", ("not an address",)), scrub)))
            trace.append(("sendto str", await outcome(
                loop.sock_sendto(b, "text", addr_a), scrub)))
            trace.append(("reader left", loop.remove_reader(a)))

        try:
            run_until(loop, main(), 10)
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario)[0] == ("sendto returned", 7)


@skip_before((3, 11), "sock_recvfrom_into")
def test_sock_recvfrom_into(compare):
    def scenario(loop):
        trace = []
        a, b, scrub = udp_pair()

        async def main():
            addr_a = a.getsockname()
            buf = bytearray(10)
            b.sendto(b"hello", addr_a)
            n, addr = await wait(loop.sock_recvfrom_into(a, buf))
            trace.append(("immediate", n, bytes(buf), scrub(addr)))
            loop.call_later(0.01, b.sendto, b"abcdefgh", addr_a)
            n, addr = await wait(loop.sock_recvfrom_into(a, buf, 3))
            trace.append(("nbytes=3", n, bytes(buf), scrub(addr)))
            b.sendto(b"XYZ", addr_a)
            n, addr = await wait(loop.sock_recvfrom_into(
                a, memoryview(buf)[5:], 0))
            trace.append(("view", n, bytes(buf)))
            trace.append(("nbytes too big", await outcome(
                loop.sock_recvfrom_into(a, bytearray(2), 5), scrub)))
            trace.append(("reader left", loop.remove_reader(a)))

        try:
            run_until(loop, main(), 10)
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario)[0][:3] == ("immediate", 5,
                                        b"hello\0\0\0\0\0")


@pytest.mark.slow
@pytest.mark.parametrize("via", ["socketpair", "tcp"])
def test_sock_sendall_10mib(compare, via):
    def scenario(loop):
        trace = []
        data = payload(10 * MiB)

        async def pair():
            if via == "socketpair":
                return nb_socketpair()
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            lsock.listen(1)
            lsock.setblocking(False)
            c = socket.socket()
            c.setblocking(False)
            accept = loop.create_task(loop.sock_accept(lsock))
            await wait(loop.sock_connect(c, lsock.getsockname()))
            s, _ = await wait(accept)
            lsock.close()
            return c, s

        async def main():
            a, b = await pair()
            try:
                async def reader():
                    got = bytearray()
                    while True:
                        chunk = await loop.sock_recv(b, 256 * 1024)
                        if not chunk:
                            return got
                        got += chunk

                rtask = loop.create_task(reader())
                trace.append(("sendall", await wait(
                    loop.sock_sendall(a, data), 30)))
                trace.append(("sendall empty",
                              await wait(loop.sock_sendall(a, b""))))
                trace.append(("sendall memoryview", await wait(
                    loop.sock_sendall(a, memoryview(b"-tail-")[1:]))))
                trace.append(("sendall bytearray", await wait(
                    loop.sock_sendall(a, bytearray(b"!")))))
                trace.append(("writer left", loop.remove_writer(a)))
                a.shutdown(socket.SHUT_WR)
                got = await wait(rtask, 30)
                trace.append(("received", digest(got),
                              bytes(got) == data + b"tail-!"))
            finally:
                a.close()
                b.close()

        run_until(loop, main(), 40)
        return trace

    trace = compare(scenario)
    assert trace[-1][2] is True


def test_sock_sendall_errors(compare):
    def scenario(loop):
        trace = []

        async def main(a, b):
            trace.append(("str", await outcome(loop.sock_sendall(a, "text"))))
            trace.append(("int", await outcome(loop.sock_sendall(a, 5))))
            b.close()
            # the peer is gone: EPIPE (maybe after a first write)
            results = []
            for _ in range(3):
                results.append(await outcome(
                    loop.sock_sendall(a, b"x" * 1000)))
            trace.append(("to closed peer", results))

        run_with_pair(loop, nb_socketpair, main, 10)
        return trace

    compare(scenario)


def test_sock_connect(compare):
    def scenario(loop):
        trace = []
        lsock = socket.socket()
        lsock.bind((HOST4, 0))
        lsock.listen(5)
        port = lsock.getsockname()[1]
        # bound but not listening: refuses
        bound = socket.socket()
        bound.bind((HOST4, 0))
        closed = closed_port()
        scrub = (Scrub().port(port).port(bound.getsockname()[1], "BOUND")
                 .port(closed, "CLOSED"))

        async def connect(label, addr, family=socket.AF_INET,
                          type=socket.SOCK_STREAM):
            s = socket.socket(family, type)
            s.setblocking(False)
            try:
                res = await outcome(loop.sock_connect(s, addr), scrub)
                peer = None
                if res[0] == "ok":
                    peer = scrub(s.getpeername())
                trace.append((label, res, peer))
            finally:
                s.close()

        async def main():
            await connect("listening", (HOST4, port))
            await connect("by name localhost", ("localhost", port))
            await connect("refused", bound.getsockname())
            await connect("closed port", (HOST4, closed))
            await connect("bad address", ("x",))
            await connect("bad port", (HOST4, "notaport"))
            await connect("port out of range", (HOST4, 70000))
            await connect("unresolvable", ("nonexistent.invalid", port))
            await connect("udp", (HOST4, closed), type=socket.SOCK_DGRAM)

        try:
            run_until(loop, main(), 20)
        finally:
            lsock.close()
            bound.close()
        return trace

    trace = compare(scenario)
    assert trace[0] == ("listening", ("ok", None), ("127.0.0.1", "PORT"))
    assert trace[2][1][1] == "ConnectionRefusedError"


@requires_ipv6
def test_sock_connect_ipv6(compare):
    def scenario(loop):
        trace = []
        lsock = socket.socket(socket.AF_INET6)
        lsock.bind((HOST6, 0))
        lsock.listen(5)
        port = lsock.getsockname()[1]
        closed = closed_port(HOST6)
        scrub = Scrub().port(port).port(closed, "CLOSED")

        async def main():
            for label, addr in (("listening", (HOST6, port)),
                                ("4-tuple", (HOST6, port, 0, 0)),
                                ("closed port", (HOST6, closed))):
                s = socket.socket(socket.AF_INET6)
                s.setblocking(False)
                try:
                    res = await outcome(loop.sock_connect(s, addr), scrub)
                    trace.append((label, res, scrub(
                        s.getpeername() if res[0] == "ok" else None)))
                finally:
                    s.close()
            # IPv4 address on an IPv6 socket
            s = socket.socket(socket.AF_INET6)
            s.setblocking(False)
            try:
                trace.append(("v4 addr on v6 socket", await outcome(
                    loop.sock_connect(s, (HOST4, closed)), scrub)))
            finally:
                s.close()

        try:
            run_until(loop, main(), 20)
        finally:
            lsock.close()
        return trace

    trace = compare(scenario)
    assert trace[0][1] == ("ok", None)


def test_sock_connect_unix(compare):
    def scenario(loop):
        trace = []
        with temp_dir() as d:
            path = os.path.join(d, "s")
            scrub = Scrub().add(d, "DIR")
            lsock = socket.socket(socket.AF_UNIX)
            lsock.bind(path)
            lsock.listen(1)

            async def main():
                s = socket.socket(socket.AF_UNIX)
                s.setblocking(False)
                try:
                    trace.append(("connect", await outcome(
                        loop.sock_connect(s, path), scrub),
                        scrub(s.getpeername())))
                finally:
                    s.close()
                s = socket.socket(socket.AF_UNIX)
                s.setblocking(False)
                try:
                    trace.append(("missing", await outcome(
                        loop.sock_connect(s, path + "-missing"), scrub)))
                finally:
                    s.close()

            try:
                run_until(loop, main(), 10)
            finally:
                lsock.close()
        return trace

    assert compare(scenario)[0] == ("connect", ("ok", None), "DIR/s")


def test_sock_accept(compare):
    def scenario(loop):
        trace = []
        lsock = socket.socket()
        lsock.bind((HOST4, 0))
        lsock.listen(5)
        lsock.setblocking(False)
        scrub = Scrub().port(lsock.getsockname()[1])

        async def main():
            # pending accept, then a connection arrives
            task = loop.create_task(loop.sock_accept(lsock))
            await asyncio.sleep(0)
            c = socket.socket()
            c.setblocking(False)
            await wait(loop.sock_connect(c, lsock.getsockname()))
            conn, addr = await wait(task)
            trace.append(("accepted", type(conn).__name__,
                          conn.gettimeout(), addr == c.getsockname(),
                          conn.getpeername() == c.getsockname(),
                          conn.family == socket.AF_INET,
                          conn.type == socket.SOCK_STREAM))
            await wait(loop.sock_sendall(conn, b"from server"))
            trace.append(("client got", await wait(loop.sock_recv(c, 100))))
            conn.close()
            c.close()
            # a connection already waiting
            c2 = socket.create_connection(lsock.getsockname())
            conn2, _ = await wait(loop.sock_accept(lsock))
            trace.append(("immediate", conn2.gettimeout()))
            conn2.close()
            c2.close()
            trace.append(("reader left", loop.remove_reader(lsock)))
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.setblocking(False)
            trace.append(("accept on udp", await outcome(
                loop.sock_accept(udp), scrub)))
            udp.close()

        try:
            run_until(loop, main(), 10)
        finally:
            lsock.close()
        return trace

    trace = compare(scenario)
    assert trace[0] == ("accepted", "socket", 0.0, True, True, True, True)


def test_debug_blocking_socket_refused(compare):
    def scenario(loop):
        trace = []
        loop.set_debug(True)
        a, b = socket.socketpair()  # blocking
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        l = socket.socket()  # noqa: E741
        l.bind((HOST4, 0))
        l.listen(1)
        scrub = Scrub().port(l.getsockname()[1])

        async def main():
            ops = [("sock_recv", lambda: loop.sock_recv(a, 1)),
                   ("sock_recv_into",
                    lambda: loop.sock_recv_into(a, bytearray(1))),
                   ("sock_sendall", lambda: loop.sock_sendall(a, b"x")),
                   ("sock_connect", lambda: loop.sock_connect(
                       socket.socket(), l.getsockname())),
                   ("sock_accept", lambda: loop.sock_accept(l))]
            if PY >= (3, 11):
                ops += [("sock_recvfrom", lambda: loop.sock_recvfrom(u, 1)),
                        ("sock_recvfrom_into", lambda:
                         loop.sock_recvfrom_into(u, bytearray(1))),
                        ("sock_sendto", lambda: loop.sock_sendto(
                            u, b"x", (HOST4, 9)))]
            with tempfile.TemporaryFile() as f:
                f.write(b"x")
                f.flush()
                ops.append(("sock_sendfile",
                            lambda: loop.sock_sendfile(a, f)))
                for name, make in ops:
                    trace.append((name, await outcome(make, scrub,
                                                      timeout=2)))

        try:
            run_until(loop, main(), 20)
        finally:
            for s in (a, b, u, l):
                s.close()
        return trace

    trace = compare(scenario)
    assert trace[0] == ("sock_recv", ("raised", "ValueError",
                                      "the socket must be non-blocking",
                                      None))


def test_ssl_socket_refused(compare):
    def scenario(loop):
        trace = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        raw = socket.socket()
        s = ctx.wrap_socket(raw, server_hostname="localhost",
                            do_handshake_on_connect=False)
        s.setblocking(False)

        async def main():
            ops = [("sock_recv", lambda: loop.sock_recv(s, 1)),
                   ("sock_recv_into",
                    lambda: loop.sock_recv_into(s, bytearray(1))),
                   ("sock_sendall", lambda: loop.sock_sendall(s, b"x")),
                   ("sock_connect", lambda: loop.sock_connect(
                       s, (HOST4, 9))),
                   ("sock_accept", lambda: loop.sock_accept(s))]
            if PY >= (3, 11):
                ops += [("sock_recvfrom", lambda: loop.sock_recvfrom(s, 1)),
                        ("sock_sendto", lambda: loop.sock_sendto(
                            s, b"x", (HOST4, 9)))]
            for name, make in ops:
                trace.append((name, await outcome(make, timeout=2)))

        try:
            run_until(loop, main(), 20)
        finally:
            s.close()
        return trace

    assert compare(scenario)[0] == (
        "sock_recv", ("raised", "TypeError",
                      "Socket cannot be of type SSLSocket", None))


def test_closed_socket_errors(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        a.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.close()

        async def main():
            ops = [("sock_recv", lambda: loop.sock_recv(a, 1)),
                   ("sock_recv_into",
                    lambda: loop.sock_recv_into(a, bytearray(1))),
                   ("sock_sendall", lambda: loop.sock_sendall(a, b"x")),
                   ("sock_connect", lambda: loop.sock_connect(
                       a, (HOST4, 9))),
                   ("sock_accept", lambda: loop.sock_accept(a))]
            if PY >= (3, 11):
                ops += [("sock_recvfrom", lambda: loop.sock_recvfrom(u, 1)),
                        ("sock_recvfrom_into", lambda:
                         loop.sock_recvfrom_into(u, bytearray(1))),
                        ("sock_sendto", lambda: loop.sock_sendto(
                            u, b"x", (HOST4, 9)))]
            for name, make in ops:
                trace.append((name, await outcome(make, timeout=2)))

        try:
            run_until(loop, main(), 20)
        finally:
            b.close()
        return trace

    assert compare(scenario)[0] == ("sock_recv", (
        "raised", "OSError", "[Errno 9] Bad file descriptor", 9))


def test_socket_closed_while_recv_pending(new_loop, kind):
    """Closing the socket under a pending sock_recv whose reader was
    removed first: asyncio leaves the future pending; tideloop fails it
    with OSError(EBADF) (tests/test_sock_pending_close.py, README known
    differences).  The watcher must not crash either way."""
    loop = new_loop()

    async def main(a, b):
        task = loop.create_task(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        loop.remove_reader(a)
        a.close()
        if kind == "tideloop":
            return await outcome(task)
        # A bound for the stock side only: it cannot fail on a slow machine.
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        return await outcome(task)

    result = run_with_pair(loop, nb_socketpair, main, 10)
    if kind == "tideloop":
        assert result[:2] == ("raised", "OSError") and result[-1] == 9, result
    else:
        assert result == ("raised", "CancelledError", "", None), result


def test_cancel_pending_recv_then_reuse(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        u1, u2, scrub = udp_pair()
        lsock = socket.socket()
        lsock.bind((HOST4, 0))
        lsock.listen(5)
        lsock.setblocking(False)

        async def cancel_then(label, make, after):
            task = loop.create_task(make())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            task.cancel()
            trace.append((label, "cancelled", await outcome(task)))
            trace.append((label, "watcher left", loop.remove_reader(
                make.sock)))
            await after()

        async def main():
            def recv():
                return loop.sock_recv(a, 100)
            recv.sock = a

            async def after_recv():
                loop.call_later(0.01, b.send, b"after cancel")
                trace.append(("recv reuse",
                              await wait(loop.sock_recv(a, 100))))
            await cancel_then("sock_recv", recv, after_recv)

            buf = bytearray(20)

            def recv_into():
                return loop.sock_recv_into(a, buf)
            recv_into.sock = a

            async def after_recv_into():
                b.send(b"into")
                n = await wait(loop.sock_recv_into(a, buf))
                trace.append(("recv_into reuse", n, bytes(buf[:n])))
            await cancel_then("sock_recv_into", recv_into, after_recv_into)

            def accept():
                return loop.sock_accept(lsock)
            accept.sock = lsock

            async def after_accept():
                c = socket.create_connection(lsock.getsockname())
                conn, _ = await wait(loop.sock_accept(lsock))
                trace.append(("accept reuse", conn.gettimeout()))
                conn.close()
                c.close()
            await cancel_then("sock_accept", accept, after_accept)

            if PY >= (3, 11):
                def recvfrom():
                    return loop.sock_recvfrom(u1, 100)
                recvfrom.sock = u1

                async def after_recvfrom():
                    u2.sendto(b"dgram", u1.getsockname())
                    trace.append(("recvfrom reuse", scrub(
                        await wait(loop.sock_recvfrom(u1, 100)))))
                await cancel_then("sock_recvfrom", recvfrom, after_recvfrom)

            # Data that arrived while nobody waited stays in the socket.
            task = loop.create_task(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            task.cancel()
            b.send(b"kept")
            await outcome(task)
            trace.append(("kept", await wait(loop.sock_recv(a, 100))))

        try:
            run_until(loop, main(), 20)
        finally:
            for s in (a, b, u1, u2, lsock):
                s.close()
        return trace

    trace = compare(scenario)
    assert ("recv reuse", b"after cancel") in trace


def test_cancel_pending_sendall_then_reuse(compare):
    """sock_sendall blocked on a full buffer, cancelled; the writer is
    removed and the socket still usable (data sent before the cancel is
    not recalled: only the tail after draining is compared)."""
    def scenario(loop):
        trace = []

        async def main(a, b):
            task = loop.create_task(loop.sock_sendall(a, b"z" * (32 * MiB)))
            for _ in range(5):
                await asyncio.sleep(0)
            trace.append(("pending", not task.done()))
            task.cancel()
            trace.append(("cancelled", await outcome(task)))
            trace.append(("writer left", loop.remove_writer(a)))
            # drain what was sent, then the socket still works
            while True:
                try:
                    chunk = b.recv(1024 * 1024)
                except BlockingIOError:
                    break
                if not chunk:
                    break
            await wait(loop.sock_sendall(a, b"after"))
            await asyncio.sleep(0.01)
            got = b""
            while not got.endswith(b"after"):
                got += await wait(loop.sock_recv(b, 1024 * 1024))
            trace.append(("tail", got[-5:]))

        run_with_pair(loop, nb_socketpair, main, 20)
        return trace

    trace = compare(scenario)
    assert trace[0] == ("pending", True)


def _sendfile_scenario(loop, fn):
    """Run fn(sock, peer) with a connected TCP pair; a reader task on the
    peer collects everything until EOF."""
    async def main():
        lsock = socket.socket()
        lsock.bind((HOST4, 0))
        lsock.listen(1)
        lsock.setblocking(False)
        c = socket.socket()
        c.setblocking(False)
        accept = loop.create_task(loop.sock_accept(lsock))
        await wait(loop.sock_connect(c, lsock.getsockname()))
        s, _ = await wait(accept)
        lsock.close()
        got = bytearray()

        async def reader():
            while True:
                chunk = await loop.sock_recv(s, 256 * 1024)
                if not chunk:
                    return
                got.extend(chunk)

        rtask = loop.create_task(reader())
        try:
            await fn(c)
        finally:
            c.shutdown(socket.SHUT_WR)
            await wait(rtask, 30)
            c.close()
            s.close()
        return got

    return run_until(loop, main(), 40)


def test_sock_sendfile(compare):
    def scenario(loop):
        trace = []
        data = payload(3 * MiB + 123, seed=7)
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.flush()

            async def fn(sock):
                f.seek(0)
                for label, kw in (("whole", {}),
                                  ("offset", {"offset": 1000}),
                                  ("count", {"count": 4096}),
                                  ("offset+count",
                                   {"offset": MiB, "count": 70000}),
                                  ("count past end",
                                   {"offset": len(data) - 10,
                                    "count": 100}),
                                  ("offset at end",
                                   {"offset": len(data)}),
                                  ("no fallback",
                                   {"offset": 5, "count": 5,
                                    "fallback": False})):
                    res = await outcome(loop.sock_sendfile(sock, f, **kw),
                                        timeout=30)
                    trace.append((label, res, f.tell()))

            got = _sendfile_scenario(loop, fn)
        expected = (data + data[1000:] + data[:4096]
                    + data[MiB:MiB + 70000] + data[-10:] + data[5:10])
        trace.append(("received", digest(got), bytes(got) == expected))
        return trace

    trace = compare(scenario)
    assert trace[0] == ("whole", ("ok", 3 * MiB + 123), 3 * MiB + 123)
    assert trace[-1][2] is True


def test_sock_sendfile_fallback_and_errors(compare):
    def scenario(loop):
        trace = []
        with tempfile.TemporaryFile() as f, \
                tempfile.TemporaryFile("w+") as text:
            f.write(b"regular file")
            f.flush()
            text.write("text")
            text.flush()
            r, w = os.pipe()
            os.write(w, b"from pipe")
            os.close(w)
            pipe_file = os.fdopen(r, "rb")

            async def fn(sock):
                bio = io.BytesIO(b"in memory")
                trace.append(("BytesIO no fallback", await outcome(
                    loop.sock_sendfile(sock, bio, fallback=False)),
                    bio.tell()))
                trace.append(("BytesIO fallback", await outcome(
                    loop.sock_sendfile(sock, bio)), bio.tell()))
                bio.seek(0)
                trace.append(("BytesIO offset count", await outcome(
                    loop.sock_sendfile(sock, bio, 3, 2)), bio.tell()))
                trace.append(("pipe no fallback", await outcome(
                    loop.sock_sendfile(sock, pipe_file, fallback=False))))
                trace.append(("text file", await outcome(
                    loop.sock_sendfile(sock, text))))
                for label, kw in (("count=0", {"count": 0}),
                                  ("count=-1", {"count": -1}),
                                  ("count='x'", {"count": "x"}),
                                  ("offset=-1", {"offset": -1}),
                                  ("offset=1.5", {"offset": 1.5})):
                    trace.append((label, await outcome(
                        loop.sock_sendfile(sock, f, **kw))))
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                udp.setblocking(False)
                trace.append(("udp socket", await outcome(
                    loop.sock_sendfile(udp, f))))
                udp.close()
                trace.append(("not a file", await outcome(
                    loop.sock_sendfile(sock, object(), fallback=False))))

            try:
                got = _sendfile_scenario(loop, fn)
            finally:
                pipe_file.close()
        trace.append(("received", bytes(got)))
        return trace

    trace = compare(scenario)
    assert trace[0][1][1] == "SendfileNotAvailableError"
