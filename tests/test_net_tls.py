"""TLS over TCP and Unix sockets: echo round trips, extra info, close and
EOF semantics, handshake errors and timeouts, start_tls (protocols and
streams), sendfile fallback, BufferedProtocol and flow control.  The
certificate is self-signed and made in the test (``cryptography`` or
``openssl``).  Compared with stock asyncio."""
import asyncio
import os
import socket
import ssl
import tempfile

import pytest

from support import capture_asyncio_log, run_until
from netsupport import (HOST4, NET_MARKS, WHERE_PARAMS, Echo, KiB, MiB,
                        Recorder, Scrub, call_ev, client_ssl, close_server,
                        digest, echo_exchange, exc_ev, outcome, payload, serve,
                        server_made, server_ssl, skip_before, temp_dir,
                        tls_files, transport_extra, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS

SIZES = [1, KiB, 64 * KiB, MiB, 10 * MiB]

EXTRA_KEYS = ("socket", "sockname", "peername", "sslcontext", "peercert",
              "cipher", "compression", "ssl_object", "nonexistent")


@pytest.fixture(autouse=True)
def _need_certificate():
    tls_files()  # skips (with the reason) when no certificate can be made


def recorder_factory(loop, registry, cls=Recorder):
    def factory():
        p = cls(loop)
        registry.append(p)
        return p
    return factory


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_tls_echo_round_trips(compare, where):
    def scenario(loop):
        async def main(d):
            ep = await serve(loop, where, Echo, d, tls=True)
            trace = []
            try:
                for i, n in enumerate(SIZES):
                    trace.append(await echo_exchange(
                        loop, ep.connect, n, use_eof=False, seed=i))
            finally:
                await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 40)

    trace = compare(scenario, min_events=len(SIZES))
    for ev in trace:
        assert ("equal", True) in ev, ev


@pytest.mark.slow
@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_tls_streams_round_trip(compare, where):
    def scenario(loop):
        async def handle(reader, writer):
            data = await reader.readexactly(4 * MiB)
            writer.write(data[::-1])
            await writer.drain()
            writer.close()

        async def main(d):
            sctx, cctx = server_ssl(), client_ssl()
            if where == "unix":
                path = os.path.join(d, "s")
                server = await wait(asyncio.start_unix_server(
                    handle, path, ssl=sctx))
                reader, writer = await wait(asyncio.open_unix_connection(
                    path, ssl=cctx, server_hostname="localhost"))
            else:
                host = "127.0.0.1" if where == "tcp4" else "::1"
                server = await wait(asyncio.start_server(
                    handle, host, 0, ssl=sctx))
                reader, writer = await wait(asyncio.open_connection(
                    host, server.sockets[0].getsockname()[1], ssl=cctx,
                    server_hostname="localhost"))
            data = payload(4 * MiB, 4)
            writer.write(data)
            await wait(writer.drain(), 30)
            got = await wait(reader.read(), 30)
            trace = [("got", digest(got), got == data[::-1]),
                     ("at_eof", reader.at_eof())]
            writer.close()
            await wait(writer.wait_closed())
            server.close()
            await wait(server.wait_closed())
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 40)

    trace = compare(scenario)
    assert trace[0][2] is True


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_tls_extra_info(compare, where):
    def scenario(loop):
        servers = []

        async def main(d):
            sctx = server_ssl()
            cctx = client_ssl()
            ep = await serve(loop, where, recorder_factory(loop, servers), d,
                             ssl=sctx, tls=True)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop), ssl=cctx))
            await server_made(servers)
            sv = servers[0].transport
            trace = [("client keys", transport_extra(tr, EXTRA_KEYS)),
                     ("server keys", transport_extra(sv, EXTRA_KEYS)),
                     ("client sslcontext is ours",
                      tr.get_extra_info("sslcontext") is cctx),
                     ("server sslcontext is ours",
                      sv.get_extra_info("sslcontext") is sctx)]
            peercert = tr.get_extra_info("peercert")
            trace.append(("client peercert subject",
                          peercert and peercert.get("subject"),
                          peercert and peercert.get("subjectAltName")))
            trace.append(("server peercert", sv.get_extra_info("peercert")))
            trace.append(("same cipher", tr.get_extra_info("cipher")
                          == sv.get_extra_info("cipher")))
            trace.append(("cipher", tr.get_extra_info("cipher")))
            trace.append(("ssl_object version",
                          tr.get_extra_info("ssl_object").version()))
            trace.append(("server_hostname",
                          tr.get_extra_info("ssl_object").server_hostname,
                          sv.get_extra_info("ssl_object").server_side))
            trace.append(("isinstance Transport",
                          isinstance(tr, asyncio.Transport),
                          isinstance(sv, asyncio.Transport)))
            trace.append(("can_write_eof", tr.can_write_eof()))
            trace.append(("write_eof", call_ev(tr.write_eof)))
            trace.append(("get_write_buffer_limits",
                          tr.get_write_buffer_limits()))
            trace.append(("is_reading", tr.is_reading()))
            trace.append(("repr is str", isinstance(repr(tr), str)))
            trace.append(("start_tls compatible",
                          getattr(tr, "_start_tls_compatible", None)))
            tr.close()
            await wait(cl.lost)
            await wait(servers[0].lost)
            trace.append(("client events", cl.events, cl.lost_count))
            trace.append(("server events", servers[0].events,
                          servers[0].lost_count))
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert ("sslcontext", "SSLContext") in trace[0][1]


@pytest.mark.parametrize("closer", ["client", "server"])
def test_tls_close_and_eof(compare, closer):
    """Orderly TLS close from either side: the other side gets
    eof_received then connection_lost(None); returning True from
    eof_received is logged and has no effect."""
    def scenario(loop):
        servers = []

        class KeepOpen(Recorder):
            eof_result = True

        async def main(d):
            ep = await serve(loop, "tcp4",
                             recorder_factory(loop, servers, KeepOpen), d,
                             tls=True)
            with capture_asyncio_log() as records:
                tr, cl = await wait(ep.connect(lambda: KeepOpen(loop)))
                await server_made(servers)
                sv = servers[0]
                tr.write(b"hello")
                await sv.wait_for_bytes(5)
                sv.transport.write(b"world")
                await cl.wait_for_bytes(5)
                (tr if closer == "client" else sv.transport).close()
                await wait(cl.lost)
                await wait(sv.lost)
            trace = [("client events", cl.events, cl.lost_count),
                     ("server events", sv.events, sv.lost_count),
                     ("logged", sorted(r.getMessage() for r in records))]
            with capture_asyncio_log() as records:
                results = [call_ev(tr.write, b"late") for _ in range(7)]
            trace.append(("writes after close", results,
                          [r.getMessage() for r in records]))
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario)


def test_tls_abort(compare):
    def scenario(loop):
        servers = []

        async def main(d):
            ep = await serve(loop, "tcp4", recorder_factory(loop, servers),
                             d, tls=True)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop)))
            await server_made(servers)
            tr.write(b"x" * 1000)
            tr.abort()
            trace = [("is_closing", tr.is_closing())]
            await wait(cl.lost)
            await wait(servers[0].lost)
            trace.append(("client events", cl.events, cl.lost_count))
            # the server sees the connection go away without close_notify
            trace.append(("server lost once", servers[0].lost_count))
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert trace[1] == ("client events", [("made",), ("lost", None)], 1)


@pytest.mark.parametrize("case", ["untrusted", "wrong hostname",
                                  "plain server"])
def test_tls_handshake_errors(compare, case):
    def scenario(loop):
        servers = []
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        async def main(d):
            ep = await serve(loop, "tcp4", recorder_factory(loop, servers),
                             d, ssl=None if case == "plain server"
                             else server_ssl())
            host, port = ep.address
            if case == "untrusted":
                kw = {"ssl": ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                      "server_hostname": "localhost"}
            elif case == "wrong hostname":
                kw = {"ssl": client_ssl(),
                      "server_hostname": "wrong.invalid"}
            else:
                kw = {"ssl": client_ssl(), "server_hostname": "localhost",
                      "ssl_handshake_timeout": 0.3}
            with capture_asyncio_log():  # (keeps expected errors quiet)
                res = await outcome(loop.create_connection(
                    lambda: Recorder(loop), host, port, **kw), ep.scrub)
                await asyncio.sleep(0.1)
                for p in servers:
                    if not p.lost.done() and p.transport is not None:
                        p.transport.close()
            trace = [("client", res)]
            trace.append(("server protocols made",
                          [p.events for p in servers]))
            trace.append(("exception handler", sorted(
                (c.get("message"), type(c.get("exception")).__name__)
                for c in contexts)))
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert trace[0][1][0] == "raised"


@pytest.mark.parametrize("side", ["client", "server"])
def test_tls_handshake_timeout(compare, side):
    """The peer accepts TCP but never speaks TLS."""
    def scenario(loop):
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        async def main(d):
            trace = []
            if side == "client":
                lsock = socket.socket()
                lsock.bind((HOST4, 0))
                lsock.listen(5)
                scrub = Scrub().port(lsock.getsockname()[1])
                res = await outcome(loop.create_connection(
                    lambda: Recorder(loop), *lsock.getsockname(),
                    ssl=client_ssl(), server_hostname="localhost",
                    ssl_handshake_timeout=0.2), scrub)
                trace.append(("client", res))
                lsock.close()
            else:
                servers = []
                ep = await serve(loop, "tcp4",
                                 recorder_factory(loop, servers), d,
                                 ssl=server_ssl(),
                                 ssl_handshake_timeout=0.2)
                s = socket.socket()
                s.setblocking(False)
                await wait(loop.sock_connect(s, ep.address))
                got = await wait(loop.sock_recv(s, 100))
                trace.append(("raw client got", got))
                s.close()
                trace.append(("server protocols",
                              [p.events for p in servers]))
                for ctx in contexts:
                    trace.append(("context", ctx.get("message"),
                                  exc_ev(ctx.get("exception"))))
                await close_server(ep.server)
            trace.append(("bad timeout", await outcome(
                loop.create_connection(lambda: Recorder(loop), HOST4, 1,
                                       ssl=client_ssl(),
                                       server_hostname="localhost",
                                       ssl_handshake_timeout=0))))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario, min_events=2)


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_start_tls_upgrade(compare, where):
    """Plain text first, then both sides call loop.start_tls() and go on
    over TLS on the same connection."""
    def scenario(loop):
        servers = []

        async def main(d):
            ep = await serve(loop, where, recorder_factory(loop, servers), d)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop)))
            await server_made(servers)
            sv = servers[0]
            trace = [("compatible", getattr(tr, "_start_tls_compatible",
                                            None))]
            tr.write(b"STARTTLS\n")
            await sv.wait_for_bytes(9)
            sv.transport.write(b"OK\n")
            await cl.wait_for_bytes(3)
            trace.append(("plain", bytes(sv.data), bytes(cl.data)))
            stls_server = Recorder(loop)
            stls_client = Recorder(loop)
            # The old protocols stay attached to the old transports; new
            # recorders receive the TLS payload.
            new_sv, new_cl = await wait(asyncio.gather(
                loop.start_tls(sv.transport, stls_server, server_ssl(),
                               server_side=True),
                loop.start_tls(tr, stls_client, client_ssl(),
                               server_hostname="localhost")))
            trace.append(("new transports", isinstance(new_cl,
                                                       asyncio.Transport),
                          new_cl is not tr, new_sv is not sv.transport))
            trace.append(("client sslcontext",
                          type(new_cl.get_extra_info("sslcontext")).__name__,
                          new_cl.get_extra_info("peercert") is not None))
            trace.append(("old transport is_closing", tr.is_closing()))
            # the new protocols' connection_made is not called by start_tls
            trace.append(("new protocol events", stls_client.events,
                          stls_server.events))
            data = payload(MiB, 8)
            new_cl.write(data)
            await stls_server.wait_for_bytes(len(data))
            new_sv.write(data[::-1])
            await stls_client.wait_for_bytes(len(data))
            trace.append(("tls data", digest(stls_server.data),
                          bytes(stls_server.data) == data,
                          bytes(stls_client.data) == data[::-1]))
            trace.append(("old protocols saw", bytes(sv.data),
                          bytes(cl.data)))
            new_cl.close()
            await wait(stls_client.lost)
            await wait(stls_server.lost)
            trace.append(("client events", stls_client.events))
            trace.append(("server events", stls_server.events))
            trace.append(("old protocol events", cl.events, sv.events))
            trace.append(("old transport closing", tr.is_closing(),
                          sv.transport.is_closing()))
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 30)

    trace = compare(scenario)
    assert trace[0] == ("compatible", True)


def test_start_tls_errors(compare):
    def scenario(loop):
        servers = []

        async def main(d):
            ep = await serve(loop, "tcp4", recorder_factory(loop, servers),
                             d)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop)))
            await server_made(servers)
            trace = []
            res = await outcome(loop.start_tls(tr, cl, "not a context"))
            trace.append(("bad context", res))

            class Fake(asyncio.Transport):
                pass

            fake = Fake()
            res = await outcome(loop.start_tls(fake, cl, client_ssl()),
                                Scrub().add(repr(fake), "<FAKE>"))
            trace.append(("incompatible transport", res))
            tr.close()
            await wait(cl.lost)
            await wait(servers[0].lost)
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 30)

    compare(scenario)


@skip_before((3, 11), "StreamWriter.start_tls")
def test_streams_start_tls(compare):
    def scenario(loop):
        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(b"GO " + line)
            await writer.drain()
            await writer.start_tls(server_ssl())
            data = await reader.readexactly(100 * KiB)
            writer.write(digest(data)[1].encode() + b"\n")
            await writer.drain()
            writer.close()

        async def main():
            server = await wait(asyncio.start_server(handle, HOST4, 0))
            reader, writer = await wait(asyncio.open_connection(
                HOST4, server.sockets[0].getsockname()[1]))
            writer.write(b"hello\n")
            trace = [("plain", await wait(reader.readline()))]
            await wait(writer.start_tls(client_ssl(),
                                        server_hostname="localhost"))
            trace.append(("sslcontext", type(writer.get_extra_info(
                "sslcontext")).__name__))
            data = payload(100 * KiB, 1)
            writer.write(data)
            await wait(writer.drain())
            trace.append(("digest line", await wait(reader.readline()),
                          digest(data)[1]))
            trace.append(("eof", await wait(reader.read())))
            writer.close()
            await wait(writer.wait_closed())
            server.close()
            await wait(server.wait_closed())
            return trace

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert trace[0] == ("plain", b"GO hello\n")


def test_tls_sendfile(compare):
    def scenario(loop):
        servers = []

        async def main(d):
            ep = await serve(loop, "tcp4", recorder_factory(loop, servers),
                             d, tls=True)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop)))
            await server_made(servers)
            sv = servers[0]
            data = payload(MiB + 3, 13)
            scrub = Scrub().add(repr(tr), "<TRANSPORT>")
            trace = []
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.flush()
                f.seek(0)
                trace.append(("fallback", await outcome(loop.sendfile(tr, f),
                                                        timeout=30),
                              f.tell()))
                trace.append(("offset count", await outcome(
                    loop.sendfile(tr, f, 10, 20)), f.tell()))
                res = await outcome(loop.sendfile(tr, f, fallback=False),
                                    scrub)
                trace.append(("no fallback", res))
            expected = data + data[10:30]
            await sv.wait_for_bytes(len(expected), 30)
            trace.append(("server got", digest(sv.data),
                          bytes(sv.data) == expected))
            tr.close()
            await wait(sv.lost)
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 40)

    trace = compare(scenario)
    assert trace[0] == ("fallback", ("ok", MiB + 3), MiB + 3)


class BufferedRec(asyncio.BufferedProtocol):
    def __init__(self, loop):
        self.buf = bytearray(16 * KiB)
        self.data = bytearray()
        self.events = []
        self.hint_types = set()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")

    def get_buffer(self, sizehint):
        self.hint_types.add(type(sizehint).__name__)
        return self.buf

    def buffer_updated(self, nbytes):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += self.buf[:nbytes]

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc_ev(exc)))
        self.lost.set_result(None)


def test_tls_buffered_protocol(compare):
    def scenario(loop):
        servers = []

        async def main(d):
            ep = await serve(loop, "tcp4", recorder_factory(loop, servers),
                             d, tls=True)
            tr, cl = await wait(ep.connect(lambda: BufferedRec(loop)))
            await server_made(servers)
            data = payload(2 * MiB, 14)
            servers[0].transport.write(data)
            servers[0].transport.close()
            await wait(cl.lost, 30)
            await wait(servers[0].lost)
            await close_server(ep.server)
            return [("events", cl.events), ("hint types",
                                            sorted(cl.hint_types)),
                    ("got", digest(cl.data), bytes(cl.data) == data)]

        with temp_dir() as d:
            return run_until(loop, main(d), 30)

    trace = compare(scenario)
    assert trace[2][2] is True


@pytest.mark.slow
def test_tls_flow_control(compare):
    def scenario(loop):
        servers = []

        class Slow(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                transport.pause_reading()

        async def main(d):
            ep = await serve(loop, "tcp4",
                             recorder_factory(loop, servers, Slow), d,
                             tls=True)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop)))
            await server_made(servers)
            sv = servers[0]
            trace = [("server is_reading", sv.transport.is_reading())]
            tr.set_write_buffer_limits(high=64 * KiB)
            trace.append(("limits", tr.get_write_buffer_limits()))
            data = payload(16 * MiB, 15)
            tr.write(data)
            for _ in range(50):
                if ("pause_writing",) in cl.events:
                    break
                await asyncio.sleep(0.01)
            trace.append(("paused", ("pause_writing",) in cl.events))
            await asyncio.sleep(0.05)
            trace.append(("nothing delivered while paused",
                          len(sv.data) == 0))
            sv.transport.resume_reading()
            await sv.wait_for_bytes(len(data), 60)
            for _ in range(100):
                if cl.events[-1] != ("pause_writing",):
                    break
                await asyncio.sleep(0.01)
            flow = [e[0] for e in cl.events if e[0] != "made"]
            if flow:
                trace.append(("alternating",
                              all(a != b for a, b in zip(flow, flow[1:])),
                              flow[0], flow[-1]))
            else:
                trace.append(("no pause_writing/resume_writing",))
            trace.append(("got", digest(sv.data), bytes(sv.data) == data))
            tr.close()
            await wait(sv.lost)
            await close_server(ep.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 40)

    trace = compare(scenario)
    assert trace[-1][2] is True


def test_connect_accepted_socket_tls(compare):
    """connect_accepted_socket(ssl=...) on the server side of a raw accept,
    with a TLS client from create_connection."""
    def scenario(loop):
        async def main():
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            lsock.listen(5)
            lsock.setblocking(False)
            accept = loop.create_task(loop.sock_accept(lsock))
            client = loop.create_task(loop.create_connection(
                lambda: Recorder(loop), *lsock.getsockname(),
                ssl=client_ssl(), server_hostname="localhost"))
            conn, _ = await wait(accept)
            str_, spr = await wait(loop.connect_accepted_socket(
                lambda: Recorder(loop), conn, ssl=server_ssl()))
            ctr, cpr = await wait(client)
            trace = [("server sslcontext", type(str_.get_extra_info(
                "sslcontext")).__name__),
                     ("client peercert", ctr.get_extra_info(
                         "peercert") is not None)]
            ctr.write(b"over tls")
            await spr.wait_for_bytes(8)
            str_.write(b"reply")
            await cpr.wait_for_bytes(5)
            trace.append(("data", bytes(spr.data), bytes(cpr.data)))
            ctr.close()
            await wait(cpr.lost)
            await wait(spr.lost)
            trace.append(("events", cpr.events, spr.events))
            lsock.close()
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[2] == ("data", b"over tls", b"reply")
