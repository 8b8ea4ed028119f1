"""The SSL protocol object itself, driven by hand: asyncio's
sslproto.SSLProtocol on stock asyncio, tideloop's (C) on tideloop, over a
recording fake transport and an in-memory TLS peer.  Every call the
protocol makes on its transport and on the app protocol is traced, so the
traces compare the state machines step by step: the handshake, data both
ways, close_notify, EOF in every state, abort, pause/resume of both
sides, errors and misuse (calls in the wrong state, bad arguments)."""
import asyncio
import ssl

import pytest

from support import PY, run_until
from netsupport import (NET_MARKS, KiB, call_ev, client_ssl, exc_ev,
                        server_ssl, tls_files)

pytestmark = NET_MARKS + [pytest.mark.skipif(
    PY < (3, 11), reason="asyncio's SSLProtocol of 3.9/3.10 is another "
    "design; tideloop uses it unchanged there")]


@pytest.fixture(autouse=True)
def _need_certificate():
    tls_files()


def protocol_class(loop):
    if type(loop).__module__.startswith("tideloop"):
        from tideloop import _sslproto
        return _sslproto.SSLProtocol
    from asyncio import sslproto
    return sslproto.SSLProtocol


class FakeTransport(asyncio.Transport):
    """Records what the SSL protocol asks of its transport; what it
    writes goes to the peer."""

    def __init__(self, trace, peer):
        super().__init__()
        self.trace = trace
        self.peer = peer
        self.closing = False
        self.reading = True

    def write(self, data):
        self.trace.append(("tr.write", type(data).__name__))
        self.peer.inc.write(data)

    def pause_reading(self):
        self.trace.append(("tr.pause_reading",))
        self.reading = False

    def resume_reading(self):
        self.trace.append(("tr.resume_reading",))
        self.reading = True

    def is_reading(self):
        return self.reading

    def close(self):
        self.trace.append(("tr.close",))
        self.closing = True

    def abort(self):
        self.trace.append(("tr.abort",))
        self.closing = True

    def _force_close(self, exc):
        self.trace.append(("tr._force_close", exc_ev(exc)))
        self.closing = True

    def is_closing(self):
        return self.closing

    def get_extra_info(self, name, default=None):
        return {"peername": ("peer", 1)}.get(name, default)


class App(asyncio.Protocol):
    def __init__(self, trace, name="app"):
        self.trace = trace
        self.name = name
        self.transport = None
        self.eof_result = None

    def connection_made(self, transport):
        self.transport = transport
        self.trace.append((self.name + ".connection_made",))

    def data_received(self, data):
        self.trace.append((self.name + ".data_received", bytes(data)))

    def eof_received(self):
        self.trace.append((self.name + ".eof_received",))
        return self.eof_result

    def connection_lost(self, exc):
        self.trace.append((self.name + ".connection_lost", exc_ev(exc)))

    def pause_writing(self):
        self.trace.append((self.name + ".pause_writing",))

    def resume_writing(self):
        self.trace.append((self.name + ".resume_writing",))


class BufApp(asyncio.BufferedProtocol, App):
    def __init__(self, trace, size):
        App.__init__(self, trace, "buf")
        self.mem = bytearray(size)

    def get_buffer(self, sizehint):
        self.trace.append(("buf.get_buffer", type(sizehint).__name__))
        return memoryview(self.mem)

    def buffer_updated(self, nbytes):
        self.trace.append(("buf.buffer_updated", bytes(self.mem[:nbytes])))


class Peer:
    """The other end, in memory."""

    def __init__(self, server_side):
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        ctx = server_ssl() if server_side else client_ssl()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side,
                                server_hostname=None if server_side
                                else "localhost")

    def step(self):
        try:
            self.obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def read(self):
        out = bytearray()
        while True:
            try:
                chunk = self.obj.read(64 * KiB)
            except ssl.SSLWantReadError:
                return bytes(out)
            except ssl.SSLZeroReturnError:
                return bytes(out) + b"<close_notify>"
            if not chunk:
                return bytes(out) + b"<close_notify>"
            out += chunk

    def close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass


def feed(proto, data, trace):
    """Deliver record bytes the way a transport does (get_buffer then
    buffer_updated), in pieces no bigger than the buffer."""
    while data:
        buf = proto.get_buffer(-1)
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        data = data[n:]
        res = call_ev(proto.buffer_updated, n)
        if res != ("ok", None):
            trace.append(("buffer_updated", res))


def flush_peer(peer, proto, trace):
    data = peer.out.read()
    if data:
        feed(proto, data, trace)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


class Harness:
    """An SSLProtocol (client side unless server_side) connected to a Peer
    through a FakeTransport, with everything traced."""

    def __init__(self, loop, app=None, *, server_side=False, **kw):
        self.loop = loop
        self.trace = []
        self.peer = Peer(server_side=not server_side)
        self.app = app or App(self.trace)
        self.waiter = loop.create_future()
        cls = protocol_class(loop)
        ctx = server_ssl() if server_side else client_ssl()
        self.proto = cls(loop, self.app, ctx, self.waiter,
                         server_side=server_side,
                         server_hostname=None if server_side
                         else "localhost", **kw)
        self.tr = FakeTransport(self.trace, self.peer)
        self.app_tr = self.proto._app_transport

    async def handshake(self):
        self.proto.connection_made(self.tr)
        for _ in range(10):
            self.peer.step()
            flush_peer(self.peer, self.proto, self.trace)
            await settle()
            if self.waiter.done():
                break
        self.trace.append(("waiter", self.waiter.done()
                           and exc_ev(self.waiter.exception())))
        self.peer.step()

    def send(self, data):
        self.peer.obj.write(data)
        flush_peer(self.peer, self.proto, self.trace)

    def lose(self, exc=None):
        self.proto.connection_lost(exc)


def compare_driven(compare, body):
    def scenario(loop):
        calls = []
        loop.set_exception_handler(
            lambda lp, ctx: calls.append((ctx.get("message"),
                                          exc_ev(ctx.get("exception")))))

        async def main():
            trace = await body(loop)
            await settle()
            trace.append(("exception handler", calls))
            return trace
        return run_until(loop, main(), 20)
    return compare(scenario)


def test_handshake_data_and_close_notify(compare):
    async def body(loop):
        h = Harness(loop)
        await h.handshake()
        h.app_tr.write(b"to peer")
        h.trace.append(("peer read", h.peer.read()))
        h.send(b"from peer")
        h.peer.close_notify()
        flush_peer(h.peer, h.proto, h.trace)
        await settle()
        h.trace.append(("peer read", h.peer.read()))
        h.lose()
        await settle()
        h.trace.append(("state", str(h.proto._state),
                        h.app_tr.is_closing()))
        return h.trace

    compare_driven(compare, body)


@pytest.mark.parametrize("state", ["handshake", "wrapped", "paused",
                                   "flushing", "shutdown"])
def test_eof_in_each_state(compare, state):
    async def body(loop):
        h = Harness(loop)
        if state == "handshake":
            h.proto.connection_made(h.tr)
        else:
            await h.handshake()
        if state == "paused":
            h.app_tr.pause_reading()
            h.send(b"pending")
        if state == "flushing":
            h.tr.reading = True
            h.proto.pause_writing()
            h.app_tr.write(b"x" * 100)
            h.app_tr.close()
        if state == "shutdown":
            h.app_tr.close()
        h.trace.append(("before eof", str(h.proto._state)))
        h.trace.append(("eof_received", call_ev(h.proto.eof_received)))
        h.trace.append(("after eof", str(h.proto._state)))
        h.trace.append(("waiter", h.waiter.done() and
                        exc_ev(h.waiter.exception())))
        await settle()
        if state == "paused":
            h.app_tr.resume_reading()
            await settle()
        h.lose()
        await settle()
        return h.trace

    compare_driven(compare, body)


def test_abort_and_fatal_paths(compare):
    async def body(loop):
        h = Harness(loop)
        await h.handshake()
        h.app_tr.abort()
        h.trace.append(("after abort", str(h.proto._state),
                        h.app_tr.is_closing()))
        h.trace.append(("write after abort", call_ev(h.app_tr.write,
                                                     b"x")))
        h.lose(ConnectionResetError("gone"))
        await settle()
        # A second connection: garbage instead of records.
        h2 = Harness(loop)
        await h2.handshake()
        feed(h2.proto, b"\x17\x03\x03\x00\x10" + b"\x00" * 16, h2.trace)
        await settle()
        h2.lose()
        await settle()
        return h.trace + [("second",)] + h2.trace

    compare_driven(compare, body)


def test_handshake_failure_and_timeout(compare):
    async def body(loop):
        trace = []
        # The peer is not TLS at all.
        h = Harness(loop)
        h.proto.connection_made(h.tr)
        feed(h.proto, b"HTTP/1.1 400 Bad Request\r\n\r\n", h.trace)
        await settle()
        h.trace.append(("waiter", exc_ev(h.waiter.exception())))
        h.lose()
        trace += h.trace
        # The handshake timeout fires while the peer is silent.
        h = Harness(loop, ssl_handshake_timeout=0.05)
        h.proto.connection_made(h.tr)
        await asyncio.sleep(0.2)
        h.trace.append(("waiter done", h.waiter.done()))
        h.lose(ConnectionAbortedError("from force close"))
        await settle()
        h.trace.append(("waiter", exc_ev(h.waiter.exception())))
        return trace + [("timeout",)] + h.trace

    compare_driven(compare, body)


def test_write_flow_control_from_transport(compare):
    async def body(loop):
        h = Harness(loop)
        await h.handshake()
        h.app_tr.set_write_buffer_limits(high=4 * KiB, low=KiB)
        h.proto.pause_writing()      # the transport's buffer is full
        for i in range(4):
            h.app_tr.write(b"%d" % i * 2000)
            h.trace.append(("size", h.app_tr.get_write_buffer_size() > 0,
                            h.app_tr._protocol_paused))
        h.trace.append(("pause twice", call_ev(h.proto.pause_writing)))
        h.proto.resume_writing()
        h.trace.append(("after resume", h.app_tr.get_write_buffer_size(),
                        h.app_tr._protocol_paused))
        h.trace.append(("resume twice", call_ev(h.proto.resume_writing)))
        h.trace.append(("peer got", len(h.peer.read())))
        h.app_tr.close()
        h.peer.close_notify()
        flush_peer(h.peer, h.proto, h.trace)
        await settle()
        h.lose()
        await settle()
        return h.trace

    compare_driven(compare, body)


def test_read_flow_control_to_transport(compare):
    async def body(loop):
        h = Harness(loop)
        await h.handshake()
        h.app_tr.set_read_buffer_limits(high=8 * KiB, low=2 * KiB)
        h.trace.append(("limits", h.app_tr.get_read_buffer_limits()))
        h.app_tr.pause_reading()
        for i in range(8):
            h.send(bytes([65 + i]) * 4000)
        h.trace.append(("buffered", h.app_tr.get_read_buffer_size() > 0,
                        h.app_tr.is_reading()))
        h.app_tr.resume_reading()
        await settle()
        h.trace.append(("buffered after", h.app_tr.get_read_buffer_size()))
        h.lose()
        await settle()
        return h.trace

    compare_driven(compare, body)


def test_buffered_app_and_set_protocol(compare):
    async def body(loop):
        trace = []
        h = Harness(loop, BufApp(trace, 1000))
        h.trace = trace
        h.tr.trace = trace
        await h.handshake()
        h.send(b"a" * 2500)
        await settle()
        h.app_tr.set_protocol(App(trace, "plain"))
        h.send(b"plain data")
        h.app_tr.set_protocol(BufApp(trace, 50))
        h.send(b"b" * 120)
        await settle()
        h.lose()
        await settle()
        return trace

    compare_driven(compare, body)


def test_misuse(compare):
    """Calls in the wrong state or with odd arguments raise what asyncio
    raises (or nothing), and never crash."""
    async def body(loop):
        cls = protocol_class(loop)
        trace = []
        app = App(trace)
        for kw in ({"ssl_handshake_timeout": 0},
                   {"ssl_shutdown_timeout": -1},
                   {"ssl_handshake_timeout": "soon"},
                   {"server_side": True}):
            trace.append(("ctor", sorted(kw), call_ev(
                cls, loop, app, None, None, **kw)))
        trace.append(("ctor bad context", call_ev(cls, loop, app, 5,
                                                  None)))
        h = Harness(loop)
        p, t = h.proto, h.app_tr
        trace.append(("buffer_updated before made",
                      call_ev(p.buffer_updated, 0)))
        trace.append(("get_buffer", len(p.get_buffer(0)),
                      len(p.get_buffer(10 ** 9))))
        trace.append(("eof before made", call_ev(p.eof_received)))
        trace.append(("resume_writing", call_ev(p.resume_writing)))
        trace.append(("extra", t.get_extra_info("peername"),
                      t.get_extra_info("nope", 7),
                      type(t.get_extra_info("sslcontext")).__name__))
        trace.append(("read limits 0", call_ev(t.set_read_buffer_limits,
                                               high=0)))
        trace.append(("write limits", call_ev(t.set_write_buffer_limits,
                                              high=-1)))
        for i in range(7):
            trace.append(("write unwrapped", call_ev(t.write, b"x")))
        trace.append(("writelines", call_ev(t.writelines, 5)))
        trace.append(("is_reading", t.is_reading(), t.is_closing()))
        p.connection_made(h.tr)
        trace.append(("made twice", call_ev(p.connection_made, h.tr)))
        trace.append(("lost", call_ev(p.connection_lost, None)))
        trace.append(("lost twice", call_ev(p.connection_lost, None)))
        trace.append(("buffer_updated after lost",
                      call_ev(p.buffer_updated, 10)))
        trace.append(("after lost", t.get_protocol(),
                      t.get_extra_info("peername"), t.is_closing()))
        t.close()
        t.close()
        trace.append(("closed twice", call_ev(t.get_extra_info, "x"),
                      call_ev(t.get_write_buffer_size),
                      call_ev(t.set_protocol, app),
                      call_ev(t.resume_reading), call_ev(t.abort)))
        await settle()
        return trace + h.trace

    compare_driven(compare, body)
