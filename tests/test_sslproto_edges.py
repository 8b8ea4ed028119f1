"""Edge cases of the TLS protocol layer (asyncio's sslproto; tideloop's is
in C), compared with stock asyncio: data after close_notify, EOF without
close_notify, resets, the handshake and shutdown timeouts, aborting during
the handshake, flow control in both directions, BufferedProtocol apps,
errors raised by app callbacks, writelines and set_protocol.

The far side of most scenarios is ``TLSPeer``: a TLS endpoint over a raw
socket driven with the loop's sock_* methods and an ssl.SSLObject, so the
test decides exactly which records (or plain bytes, or a FIN, or a reset)
go on the wire and when."""
import asyncio
import gc
import inspect
import socket
import ssl
import struct
import weakref

import pytest

from support import PY, capture_asyncio_log, run_until
from netsupport import (HOST4, NET_MARKS, KiB, MiB, Recorder, Scrub, call_ev,
                        client_ssl, digest, exc_ev, outcome, payload,
                        server_ssl, tls_files, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS + [pytest.mark.skipif(
    PY < (3, 11), reason="asyncio's SSLProtocol of 3.9/3.10 is another "
    "design (no shutdown timeout, read limits, ...); tideloop uses it "
    "unchanged there")]


@pytest.fixture(autouse=True)
def _need_certificate():
    tls_files()


def stock_ssl(kind):
    """True when this kind runs asyncio's own SSLProtocol: stock asyncio,
    or tideloop with TIDELOOP_SSL=python (or on 3.9/3.10)."""
    if kind == "asyncio":
        return True
    from tideloop import _sslproto
    return not _sslproto.USE_C


class TLSPeer:
    """One end of a TLS connection on a raw non-blocking socket."""

    def __init__(self, loop, sock, ctx, server_side):
        self.loop = loop
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side,
                                server_hostname=None if server_side
                                else "localhost")
        self.got = bytearray()
        self.close_notify_seen = False

    async def flush(self):
        data = self.out.read()
        if data:
            await wait(self.loop.sock_sendall(self.sock, data))

    async def feed(self):
        data = await wait(self.loop.sock_recv(self.sock, 256 * KiB))
        if not data:
            self.inc.write_eof()
            return False
        self.inc.write(data)
        return True

    async def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self.flush()
                if not await self.feed():
                    raise ConnectionResetError("peer closed in handshake")
        await self.flush()

    def records(self, data):
        """The TLS records of data, not sent."""
        self.obj.write(data)
        return self.out.read()

    def close_notify(self):
        """Our close_notify alert, not sent."""
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    async def send_raw(self, data):
        await wait(self.loop.sock_sendall(self.sock, data))

    async def send(self, data):
        await self.send_raw(self.records(data))

    def _drain(self):
        while True:
            try:
                chunk = self.obj.read(256 * KiB)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:  # after our own close_notify
                chunk = b""
            except ssl.SSLEOFError:         # EOF without close_notify
                return
            if not chunk:
                self.close_notify_seen = True
                return
            self.got += chunk

    async def recv_until(self, n=None):
        """Read plain data until n bytes, close_notify or EOF."""
        while True:
            self._drain()
            if self.close_notify_seen or (n is not None and
                                          len(self.got) >= n):
                return bytes(self.got)
            if not await self.feed():
                self._drain()
                return bytes(self.got)

    def reset(self):
        """Close with an RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()


async def connect_to_peer(loop, factory=None, **kw):
    """A TLS client of the loop connected to a TLSPeer server: returns
    (transport, protocol, peer) once both handshakes are done."""
    lsock = socket.socket()
    lsock.bind((HOST4, 0))
    lsock.listen(1)
    lsock.setblocking(False)
    try:
        accept = loop.create_task(loop.sock_accept(lsock))
        connect = loop.create_task(loop.create_connection(
            factory or (lambda: Recorder(loop)), *lsock.getsockname(),
            ssl=client_ssl(), server_hostname="localhost", **kw))
        conn, _ = await wait(accept)
        conn.setblocking(False)
        peer = TLSPeer(loop, conn, server_ssl(), server_side=True)
        await peer.handshake()
        tr, pr = await wait(connect)
    finally:
        lsock.close()
    return tr, pr, peer


async def serve_to_peer(loop, factory, **kw):
    """A TLS server of the loop and a TLSPeer client connected to it:
    returns (server, peer) once the peer's handshake is done."""
    server = await wait(loop.create_server(factory, HOST4, 0,
                                           ssl=server_ssl(), **kw))
    sock = socket.socket()
    sock.setblocking(False)
    await wait(loop.sock_connect(sock, server.sockets[0].getsockname()))
    peer = TLSPeer(loop, sock, client_ssl(), server_side=False)
    await peer.handshake()
    return server, peer


async def close_from_app(tr, app, peer):
    """tr.close(), the peer answering with its close_notify; waits for
    the app's connection_lost."""
    tr.close()
    await peer.recv_until()
    if not peer.close_notify_seen:
        return await wait(app.lost)
    await peer.send_raw(peer.close_notify())
    return await wait(app.lost)


async def close_all(server=None, peer=None):
    if peer is not None and peer.sock.fileno() != -1:
        peer.sock.close()
    if server is not None:
        server.close()
        await wait(server.wait_closed())


def with_handler(loop):
    """Record the exception handler's calls (message, exception, which
    keys), instead of logging them."""
    calls = []

    def handler(lp, ctx):
        calls.append((ctx.get("message"), exc_ev(ctx.get("exception")),
                      sorted(k for k in ctx if k not in (
                          "message", "exception"))))
    loop.set_exception_handler(handler)
    return calls


# -- close_notify and what comes after it --------------------------------

@pytest.mark.parametrize("after", ["nothing", "plain bytes", "fin"])
def test_peer_close_notify(compare, after):
    """The peer sends data and its close_notify in one segment, then (in
    the same segment) plain bytes, or a FIN: the app gets the data, then
    eof_received, then connection_lost(None); what follows close_notify is
    never delivered."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            wire = peer.records(b"hello") + peer.close_notify()
            if after == "plain bytes":
                wire += b"PLAIN TEXT AFTER TLS"
            await peer.send_raw(wire)
            if after == "fin":
                peer.sock.shutdown(socket.SHUT_WR)
            await wait(cl.lost)
            tail = await peer.recv_until()
            trace = [("client", cl.events, bytes(cl.data)),
                     ("peer got close_notify", peer.close_notify_seen,
                      tail),
                     ("is_closing", tr.is_closing()),
                     ("handler", calls)]
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[0][2] == b"hello"


def test_app_data_after_our_close_notify(compare):
    """We close(); the peer reads our close_notify, then still sends app
    data and its own close_notify: OpenSSL refuses data after close_notify
    and asyncio reports that error through connection_lost()."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            tr.write(b"bye")
            tr.close()
            got = await peer.recv_until()
            await peer.send(b"late data")
            await peer.send_raw(peer.close_notify())
            await wait(cl.lost)
            trace = [("peer got", got, peer.close_notify_seen),
                     ("client", cl.events, bytes(cl.data)),
                     ("handler", calls)]
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


@pytest.mark.parametrize("how", ["fin", "reset"])
def test_peer_gone_without_close_notify(compare, how):
    """The peer sends data then goes away without close_notify: with a FIN
    the app still gets eof_received (asyncio treats it like a close), with a
    reset connection_lost(ConnectionResetError)."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            await peer.send(b"last words")
            await cl.wait_for_bytes(10)
            if how == "fin":
                peer.sock.shutdown(socket.SHUT_WR)
            else:
                peer.reset()
            await wait(cl.lost)
            trace = [("client", cl.events, bytes(cl.data)),
                     ("writes after", call_ev(tr.write, b"x")),
                     ("handler", calls)]
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_peer_gone_during_handshake(compare):
    """The server side: a client connects, sends half a ClientHello and
    resets, or closes; no app protocol is ever made."""
    def scenario(loop):
        made = []
        calls = with_handler(loop)

        async def main():
            server = await wait(loop.create_server(
                lambda: made.append(1) or Recorder(loop), HOST4, 0,
                ssl=server_ssl()))
            addr = server.sockets[0].getsockname()
            trace = []
            for how in ("fin", "reset"):
                sock = socket.socket()
                sock.setblocking(False)
                await wait(loop.sock_connect(sock, addr))
                probe = TLSPeer(loop, sock, client_ssl(), server_side=False)
                try:
                    probe.obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                hello = probe.out.read()
                await probe.send_raw(hello[:len(hello) // 2])
                if how == "fin":
                    sock.shutdown(socket.SHUT_WR)
                    trace.append((how, await wait(loop.sock_recv(sock,
                                                                 100))))
                    sock.close()
                else:
                    probe.reset()
                    await asyncio.sleep(0.05)
            trace.append(("protocols made", len(made)))
            trace.append(("handler", calls))
            await close_all(server)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


# -- timeouts -------------------------------------------------------------

def test_shutdown_timeout(compare):
    """close() sends close_notify; the peer reads it but never answers:
    after ssl_shutdown_timeout the connection is aborted and the app gets
    connection_lost(TimeoutError('SSL shutdown timed out'))."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            tr, cl, peer = await connect_to_peer(loop,
                                                 ssl_shutdown_timeout=0.2)
            tr.close()
            got = await peer.recv_until()
            trace = [("peer got close_notify", got, peer.close_notify_seen),
                     ("is_closing", tr.is_closing())]
            exc = await wait(cl.lost)
            trace.append(("client", cl.events, exc_ev(exc)))
            trace.append(("peer sees EOF", await wait(
                loop.sock_recv(peer.sock, 100))))
            trace.append(("handler", calls))
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[2][2][0] == "TimeoutError"


def test_shutdown_timeout_unread_flush(kind, loop_factory):
    """The peer sends close_notify but never reads while our write buffer
    is full: asyncio 3.14 keeps the shutdown timeout running until the
    connection is lost; before 3.14 stock asyncio waits forever for the
    flush (CPython gh-129599), tideloop times out on every version."""
    if stock_ssl(kind) and PY < (3, 14):
        pytest.skip("asyncio's SSLProtocol before 3.14 never closes this "
                    "connection (the flush waits for the peer forever)")

    async def main(loop):
        tr, cl, peer = await connect_to_peer(loop, ssl_shutdown_timeout=0.3)
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                               socket.SO_SNDBUF, 4096)
        tr.write(payload(8 * MiB, 3))
        await peer.send_raw(peer.close_notify())
        exc = await wait(cl.lost, 15)
        peer.sock.close()
        return cl.events, exc_ev(exc)

    loop = loop_factory()
    try:
        events, exc = run_until(loop, main(loop), 30)
    finally:
        loop.close()
    assert exc[0] == "TimeoutError", (events, exc)
    assert ("eof",) in events


def test_handshake_timeout_server_peer_silent(compare):
    """A client whose server accepts and reads but never answers the
    ClientHello; also: the timeout must be positive."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            lsock.listen(1)
            lsock.setblocking(False)
            scrub = Scrub().port(lsock.getsockname()[1])
            accept = loop.create_task(loop.sock_accept(lsock))
            res = await outcome(loop.create_connection(
                lambda: Recorder(loop), *lsock.getsockname(),
                ssl=client_ssl(), server_hostname="localhost",
                ssl_handshake_timeout=0.2), scrub)
            conn, _ = await wait(accept)
            conn.setblocking(False)
            hello = await wait(loop.sock_recv(conn, 64 * KiB))
            eof = await wait(loop.sock_recv(conn, 64 * KiB))
            trace = [("client", res), ("hello is TLS", hello[:1] == b"\x16"),
                     ("then EOF", eof), ("handler", calls)]
            for bad in (0, -1.5):
                trace.append(("bad timeout", bad, await outcome(
                    loop.create_connection(
                        lambda: Recorder(loop), *lsock.getsockname(),
                        ssl=client_ssl(), server_hostname="localhost",
                        ssl_handshake_timeout=bad), scrub)))
            conn.close()
            lsock.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


# -- aborting during the handshake ---------------------------------------

def test_cancel_during_handshake(compare):
    """create_connection() cancelled (wait_for) while the TLS handshake is
    pending: the socket is closed, the peer sees EOF, nothing is logged and
    no exception handler runs."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            lsock.listen(1)
            lsock.setblocking(False)
            accept = loop.create_task(loop.sock_accept(lsock))
            with capture_asyncio_log() as records:
                res = await outcome(loop.create_connection(
                    lambda: Recorder(loop), *lsock.getsockname(),
                    ssl=client_ssl(), server_hostname="localhost"),
                    timeout=0.2)
                conn, _ = await wait(accept)
                conn.setblocking(False)
                data = bytearray()
                while True:
                    chunk = await wait(loop.sock_recv(conn, 64 * KiB))
                    if not chunk:
                        break
                    data += chunk
                await asyncio.sleep(0.05)
            trace = [("client", res), ("peer saw EOF after", data[:1]),
                     ("logged", [r.getMessage() for r in records]),
                     ("handler", calls)]
            conn.close()
            lsock.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_start_tls_cancelled_during_handshake(compare):
    """start_tls() cancelled while the handshake is pending closes the
    underlying transport; the old protocol gets connection_lost(None)."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            lsock.listen(1)
            lsock.setblocking(False)
            accept = loop.create_task(loop.sock_accept(lsock))
            tr, old = await wait(loop.create_connection(
                lambda: Recorder(loop), *lsock.getsockname()))
            conn, _ = await wait(accept)
            conn.setblocking(False)
            new = Recorder(loop)
            task = loop.create_task(loop.start_tls(
                tr, new, client_ssl(), server_hostname="localhost"))
            hello = await wait(loop.sock_recv(conn, 64 * KiB))
            task.cancel()
            res = await outcome(task)
            eof = await wait(loop.sock_recv(conn, 64 * KiB))
            await asyncio.sleep(0.05)
            trace = [("start_tls", res), ("hello", hello[:1]),
                     ("then EOF", eof), ("old", old.events),
                     ("new", new.events), ("closing", tr.is_closing()),
                     ("handler", calls)]
            conn.close()
            lsock.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


# -- flow control ---------------------------------------------------------

def test_read_flow_control(compare):
    """The app pauses reading while the peer sends 4 MiB: nothing is
    delivered, decrypted data is not buffered past the read limit (the
    underlying transport stops reading), and everything arrives after
    resume_reading()."""
    def scenario(loop):
        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            trace = [("limits", tr.get_read_buffer_limits()),
                     ("bad limits", call_ev(tr.set_read_buffer_limits,
                                            high=1, low=2)),
                     ("size", tr.get_read_buffer_size())]
            tr.set_read_buffer_limits(high=64 * KiB)
            trace.append(("limits now", tr.get_read_buffer_limits()))
            tr.pause_reading()
            trace.append(("is_reading", tr.is_reading()))
            data = payload(4 * MiB, 7)
            sender = loop.create_task(peer.send(data))
            low = tr._ssl_protocol._transport
            for _ in range(500):
                if not low.is_reading():
                    break
                await asyncio.sleep(0.01)
            trace.append(("transport stopped reading", not low.is_reading()))
            trace.append(("delivered while paused", len(cl.data)))
            trace.append(("buffered within limit",
                          0 < tr.get_read_buffer_size() <= 64 * KiB
                          + 256 * KiB))
            tr.resume_reading()
            trace.append(("is_reading again", tr.is_reading()))
            await cl.wait_for_bytes(len(data), 30)
            await wait(sender)
            trace.append(("got", digest(cl.data), bytes(cl.data) == data))
            trace.append(("transport reads again", low.is_reading()))
            await close_from_app(tr, cl, peer)
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 40)

    trace = compare(scenario)
    assert trace[-2][2] is True


def test_write_flow_control(compare):
    """The peer does not read: the app's writes pile up, pause_writing()
    comes once the buffer passes the high-water mark, resume_writing()
    once the peer reads everything; the buffer sizes and limits through
    the transport API."""
    def scenario(loop):
        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            trace = [("limits", tr.get_write_buffer_limits()),
                     ("bad limits", call_ev(tr.set_write_buffer_limits,
                                            high=1, low=2))]
            tr.set_write_buffer_limits(high=256 * KiB, low=16 * KiB)
            trace.append(("limits now", tr.get_write_buffer_limits()))
            trace.append(("size empty", tr.get_write_buffer_size()))
            data = payload(8 * MiB, 9)
            for i in range(0, len(data), 64 * KiB):
                tr.write(data[i:i + 64 * KiB])
            trace.append(("paused", cl.events[-1],
                          tr.get_write_buffer_size() >= 256 * KiB,
                          tr._protocol_paused))
            got = await peer.recv_until(len(data))
            for _ in range(200):
                if cl.events[-1] == ("resume_writing",):
                    break
                await asyncio.sleep(0.01)
            trace.append(("resumed", cl.events[-1],
                          tr.get_write_buffer_size(), tr._protocol_paused))
            trace.append(("peer got", digest(got), got == data))
            tr.set_write_buffer_limits(high=0)
            tr.write(b"x")
            trace.append(("high=0 pauses at once", cl.events[-1]))
            tr.abort()
            await wait(cl.lost)
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 40)

    compare(scenario)


# -- BufferedProtocol apps ------------------------------------------------

class SmallBuffered(asyncio.BufferedProtocol):
    """A BufferedProtocol with a small buffer, as memoryview or bytearray;
    records the size hints and the calls."""

    def __init__(self, loop, size, as_view):
        self.mem = bytearray(size)
        self.view = memoryview(self.mem)
        self.as_view = as_view
        self.data = bytearray()
        self.events = []
        self.hints = 0
        self.lost = loop.create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def get_buffer(self, sizehint):
        self.hints += 1
        return self.view if self.as_view else self.mem

    def buffer_updated(self, nbytes):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += self.mem[:nbytes]

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc_ev(exc)))
        self.lost.set_result(None)


def test_buffered_small_buffer_many_records(compare):
    """Many small records for an app buffer smaller than what is pending:
    the buffer is filled, the rest is read on the next loop iterations."""
    def scenario(loop):
        async def main():
            tr, app, peer = await connect_to_peer(
                loop, lambda: SmallBuffered(loop, 1000, True))
            chunks = [payload(300 + i, i) for i in range(200)]
            await peer.send_raw(b"".join(peer.records(c) for c in chunks)
                                + peer.close_notify())
            await wait(app.lost, 20)
            data = b"".join(chunks)
            trace = [("events", app.events),
                     ("got", digest(app.data), bytes(app.data) == data),
                     ("many get_buffer calls", app.hints > 60)]
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert trace[1][2] is True


def test_buffered_bytearray_buffer_keeps_all_data(kind, loop_factory):
    """An app returning a bytearray from get_buffer(): stock asyncio reads
    the second record of a batch into a copy (buf[offset:]) and loses it;
    tideloop reads into the app's memory and loses nothing."""
    async def main(loop):
        tr, app, peer = await connect_to_peer(
            loop, lambda: SmallBuffered(loop, 16 * KiB, False))
        chunks = [payload(1000, i) for i in range(50)]
        await peer.send_raw(b"".join(peer.records(c) for c in chunks)
                            + peer.close_notify())
        await wait(app.lost, 20)
        peer.sock.close()
        return bytes(app.data), b"".join(chunks)

    loop = loop_factory()
    try:
        got, sent = run_until(loop, main(loop), 30)
    finally:
        loop.close()
    if stock_ssl(kind) and PY >= (3, 11):
        # The known stock bug (the README's known differences): when this
        # starts to fail, CPython fixed it and the note can go.
        assert got != sent
    else:
        assert got == sent


# -- app callbacks that fail ---------------------------------------------

class Failing(Recorder):
    fail_in = ()

    def connection_made(self, transport):
        super().connection_made(transport)
        if "connection_made" in self.fail_in:
            raise ValueError("in connection_made")

    def data_received(self, data):
        super().data_received(data)
        if "data_received" in self.fail_in:
            raise ValueError("in data_received")

    def eof_received(self):
        super().eof_received()
        if "eof_received" in self.fail_in:
            raise ValueError("in eof_received")

    def pause_writing(self):
        super().pause_writing()
        if "pause_writing" in self.fail_in:
            raise ValueError("in pause_writing")


@pytest.mark.parametrize("where", ["connection_made", "data_received",
                                   "eof_received"])
def test_app_callback_raises(compare, where):
    def scenario(loop):
        calls = with_handler(loop)

        class App(Failing):
            fail_in = (where,)

        async def main():
            server, peer = await serve_to_peer(loop, lambda: App(loop))
            await peer.send(b"ping")
            if where == "eof_received":
                await peer.send_raw(peer.close_notify())
            got = await peer.recv_until()
            await asyncio.sleep(0.05)
            trace = [("peer got", got, peer.close_notify_seen),
                     ("handler", calls)]
            await close_all(server, peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_pause_writing_raises(compare):
    def scenario(loop):
        calls = with_handler(loop)

        class App(Failing):
            fail_in = ("pause_writing",)

        async def main():
            tr, cl, peer = await connect_to_peer(loop, lambda: App(loop))
            tr.set_write_buffer_limits(high=0)
            tr.write(b"x" * 100)
            await peer.recv_until(100)
            trace = [("events", cl.events), ("handler", calls)]
            await close_from_app(tr, cl, peer)
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


# -- writes and protocols --------------------------------------------------

def test_write_kinds_and_errors(compare):
    """write() and writelines() with bytes, bytearray, memoryview, empty
    data and bad types; a bad item in writelines() is a fatal error."""
    def scenario(loop):
        calls = with_handler(loop)

        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            trace = [("str", call_ev(tr.write, "text")),
                     ("int", call_ev(tr.write, 5)),
                     ("empty", call_ev(tr.write, b"")),
                     ("bytes", call_ev(tr.write, b"ab")),
                     ("bytearray", call_ev(tr.write, bytearray(b"cd"))),
                     ("memoryview", call_ev(tr.write, memoryview(b"efgh")[1:])),
                     ("writelines", call_ev(tr.writelines,
                                            [b"ij", bytearray(b"k"),
                                             memoryview(b"l")])),
                     ("writelines gen", call_ev(tr.writelines,
                                                (b"m" for _ in range(3)))),
                     ("can_write_eof", tr.can_write_eof()),
                     ("write_eof", call_ev(tr.write_eof))]
            got = await peer.recv_until(14)
            trace.append(("peer got", got))
            # len(7) fails after 7 is queued: the next write meets it.
            trace.append(("bad item", call_ev(tr.writelines, [b"n", 7])))
            trace.append(("next write", call_ev(tr.write, b"o")))
            await wait(cl.lost)
            trace.append(("client", cl.events))
            trace.append(("handler", calls))
            trace.append(("after", call_ev(tr.write, b"z"),
                          tr.is_closing()))
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_set_protocol_midstream(compare):
    """set_protocol() from a plain Protocol to a BufferedProtocol and back
    while data flows; get_protocol() follows."""
    def scenario(loop):
        async def main():
            tr, first, peer = await connect_to_peer(loop)
            await peer.send(b"one")
            await first.wait_for_bytes(3)
            second = SmallBuffered(loop, 4096, True)
            tr.set_protocol(second)
            trace = [("get_protocol", tr.get_protocol() is second)]
            await peer.send(b"two")
            for _ in range(200):
                if second.data:
                    break
                await asyncio.sleep(0.005)
            third = Recorder(loop)
            tr.set_protocol(third)
            await peer.send(b"three")
            await third.wait_for_bytes(5)
            await close_from_app(tr, third, peer)
            trace += [("first", first.events, bytes(first.data)),
                      ("second", second.events, bytes(second.data)),
                      ("third", third.events, bytes(third.data)),
                      ("after close", tr.get_protocol() is third,
                       tr.get_extra_info("peername") is None,
                       tr.get_extra_info("sslcontext") is not None)]
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_close_twice_and_abort(compare):
    """close() twice drops the protocol (asyncio's transport then fails
    with AttributeError), abort() after close is quiet."""
    def scenario(loop):
        async def main():
            tr, cl, peer = await connect_to_peer(loop)
            tr.close()
            trace = [("closing", tr.is_closing())]
            tr.close()
            trace += [("get_extra_info", call_ev(tr.get_extra_info,
                                                 "sslcontext")),
                      ("is_reading", call_ev(tr.is_reading)),
                      ("write", call_ev(tr.write, b"x")),
                      ("abort", call_ev(tr.abort))]
            await peer.recv_until()
            await peer.send_raw(peer.close_notify())
            await wait(cl.lost)
            trace.append(("client", cl.events))
            await close_all(peer=peer)
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


# -- one context per connection --------------------------------------------

def test_app_callbacks_run_in_the_connection_context(kind, loop_factory):
    """Every callback of a TLS app protocol runs in the connection's
    context (asyncio 3.15's per-connection context, on every version):
    a variable set in connection_made() is seen by data_received() even
    when the data comes after resume_reading() called from a task with
    another context, and by pause_writing(), eof_received() and
    connection_lost().  Stock asyncio runs the data delivered after
    resume_reading() in a copy of the caller's context instead."""
    import contextvars
    if PY < (3, 11):
        pytest.skip("create_task(context=) needs Python 3.11+")
    var = contextvars.ContextVar("var")

    class App(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.seen = [("made", var.get(None))]
            var.set("made")

        def data_received(self, data):
            super().data_received(data)
            self.seen.append(("data", var.get(None)))

        def pause_writing(self):
            super().pause_writing()
            self.seen.append(("pause_writing", var.get(None)))

        def eof_received(self):
            self.seen.append(("eof", var.get(None)))
            return super().eof_received()

        def connection_lost(self, exc):
            self.seen.append(("lost", var.get(None)))
            super().connection_lost(exc)

    async def main(loop):
        var.set("creator")
        tr, app, peer = await connect_to_peer(loop, lambda: App(loop))
        tr.pause_reading()

        async def other_task():
            var.set("other task")
            await peer.send(b"data")
            await asyncio.sleep(0.05)
            tr.resume_reading()
            await app.wait_for_bytes(4)
            tr.set_write_buffer_limits(high=0)
            tr.write(b"x")
            await peer.recv_until(1)
            await peer.send_raw(peer.close_notify())
        await wait(loop.create_task(other_task(), context=contextvars.Context()))
        await wait(app.lost)
        peer.sock.close()
        return app.seen

    loop = loop_factory()
    try:
        seen = run_until(loop, main(loop), 20)
    finally:
        loop.close()
    assert seen[0] == ("made", "creator")
    if stock_ssl(kind):
        assert ("data", "other task") in seen, seen
    else:
        assert {name for name, _ in seen[1:]} == {
            "data", "pause_writing", "eof", "lost"}, seen
        assert all(value == "made" for _, value in seen[1:]), seen


def test_pause_reading_in_connection_made(kind, loop_factory):
    """An app that pauses reading in connection_made(): the last flight of
    the client's TLS 1.3 handshake (its Finished) must still be sent, else
    the server never completes the handshake.  Stock asyncio 3.11+ leaves
    it in the outgoing buffer until the app writes or resumes reading."""
    if stock_ssl(kind) and PY >= (3, 11):
        pytest.skip("asyncio's SSLProtocol stalls the peer's handshake here "
                    "(it flushes only when the app reads or writes)")

    class App(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    async def main(loop):
        tr, app, peer = await connect_to_peer(loop, lambda: App(loop))
        await peer.send(b"while paused")
        await asyncio.sleep(0.05)
        delivered = bytes(app.data)
        tr.resume_reading()
        await app.wait_for_bytes(12)
        tr.close()
        await peer.recv_until()
        await peer.send_raw(peer.close_notify())
        await wait(app.lost)
        peer.sock.close()
        return delivered, app.events

    loop = loop_factory()
    try:
        delivered, events = run_until(loop, main(loop), 20)
    finally:
        loop.close()
    assert delivered == b""
    assert events == [("made",), ("data",), ("eof",), ("lost", None)], events



def _stock_frees_failed_connections():
    """CPython gh-159049: asyncio's _create_connection_transport() drops
    its waiter when the handshake fails (3.14.x, 3.15); before, the
    exception's traceback keeps that frame, the waiter and so the whole
    connection in a reference cycle."""
    from asyncio import base_events
    src = inspect.getsource(
        base_events.BaseEventLoop._create_connection_transport)
    return "waiter = None" in src


def remember_socket_transports(kind, monkeypatch):
    """Weak references to the socket transports under the loop's new SSL
    protocols: asyncio's SSLProtocol gets it in connection_made (what
    test_sslproto patches), tideloop's C one from make_socket_transport."""
    refs = []
    if stock_ssl(kind):
        made = asyncio.sslproto.SSLProtocol.connection_made

        def connection_made(proto, transport):
            refs.append(weakref.ref(transport))
            made(proto, transport)
        monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "connection_made",
                            connection_made)
    else:
        from tideloop import _transports
        make = _transports.make_socket_transport

        def make_socket_transport(*args, **kwargs):
            transport = make(*args, **kwargs)
            refs.append(weakref.ref(transport))
            return transport
        monkeypatch.setattr(_transports, "make_socket_transport",
                            make_socket_transport)
    return refs


async def refused_certificate(loop):
    """create_connection() to a TLSPeer server whose certificate the
    client does not trust; returns the exception's name."""
    lsock = socket.socket()
    lsock.bind((HOST4, 0))
    lsock.listen(1)
    lsock.setblocking(False)
    conn = None

    async def connect():
        # The exception is caught where it is raised: awaiting a failed
        # task would put this frame, which holds the task, in a cycle.
        try:
            await loop.create_connection(
                asyncio.Protocol, *lsock.getsockname(),
                ssl=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                server_hostname="localhost")
        except ssl.SSLCertVerificationError as exc:
            return type(exc).__name__
        return "connected"
    try:
        accept = loop.create_task(loop.sock_accept(lsock))
        connecting = loop.create_task(connect())
        conn, _ = await wait(accept)
        conn.setblocking(False)
        peer = TLSPeer(loop, conn, server_ssl(), server_side=True)
        try:
            await peer.handshake()
        except (ssl.SSLError, ConnectionError):
            pass
        return await wait(connecting)
    finally:
        lsock.close()
        if conn is not None:
            conn.close()


def test_failed_certificate_leaves_no_cycles(kind, loop_factory,
                                             monkeypatch):
    """test_sslproto's ..._failed_certificate_no_cycles (gh-159049) for
    both SSL protocols: once create_connection() raised
    SSLCertVerificationError, reference counting alone (the collector is
    off) frees the socket transport under the SSL protocol."""
    if stock_ssl(kind) and not _stock_frees_failed_connections():
        pytest.skip("this asyncio keeps a failed connection in a cycle "
                    "(its create_connection frame, gh-159049)")
    refs = remember_socket_transports(kind, monkeypatch)
    loop = loop_factory()
    gc.collect()
    gc.disable()
    try:
        outcome = run_until(loop, refused_certificate(loop), 20)
        alive = [ref() for ref in refs]
    finally:
        gc.enable()
        loop.close()
    assert outcome == "SSLCertVerificationError"
    assert len(alive) == 1 and alive == [None], alive
