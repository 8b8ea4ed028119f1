"""Server objects of create_server/create_unix_server/start_server:
AbstractServer API, serving state, close/wait_closed, serve_forever,
start_serving, async with, close_clients/abort_clients (3.13), socket
options (reuse_address, reuse_port, backlog), dual stack, Unix socket file
handling and argument errors.  Compared with stock asyncio."""
import asyncio
import os
import pathlib
import socket
import stat

import pytest

from support import run_until
from netsupport import (HOST4, HOST6, NET_MARKS, WHERE_PARAMS, Echo, Recorder,
                        Scrub, call_ev, close_server, exc_ev, has_ipv6,
                        outcome, requires_reuse_port, serve, server_made,
                        skip_before, temp_dir, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


def _server_repr_free(msg, server):
    """asyncio puts repr(server) in some messages: replace it."""
    return msg.replace(repr(server), "<SERVER>")


async def try_connect(loop, where, address, scrub):
    """Connect a plain socket; the outcome with the connection closed."""
    if where == "unix":
        s = socket.socket(socket.AF_UNIX)
    else:
        s = socket.socket(socket.AF_INET6 if ":" in address[0]
                          else socket.AF_INET)
    s.setblocking(False)
    try:
        return await outcome(loop.sock_connect(s, address), scrub, timeout=5)
    finally:
        s.close()


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_server_api(compare, where):
    def scenario(loop):
        async def main(d):
            ep = await serve(loop, where, Echo, d)
            server = ep.server
            trace = [
                ("isinstance AbstractServer",
                 isinstance(server, asyncio.AbstractServer)),
                ("get_loop", server.get_loop() is loop),
                ("is_serving", server.is_serving()),
                ("sockets type", type(server.sockets).__name__,
                 [type(s).__name__ for s in server.sockets]),
                ("socket is listening",
                 server.sockets[0].getsockopt(socket.SOL_SOCKET,
                                              socket.SO_ACCEPTCONN)),
                ("sockname", ep.scrub(server.sockets[0].getsockname())),
                ("repr is str", isinstance(repr(server), str)),
            ]
            trace.append(("connect", await try_connect(
                loop, where, ep.address, ep.scrub)))
            trace.append(("start_serving while serving", await outcome(
                server.start_serving())))
            trace.append(("close", call_ev(server.close)))
            trace.append(("is_serving after close", server.is_serving()))
            trace.append(("sockets after close", server.sockets))
            trace.append(("close again", call_ev(server.close)))
            trace.append(("wait_closed", await outcome(server.wait_closed())))
            trace.append(("wait_closed again",
                          await outcome(server.wait_closed())))
            trace.append(("connect after close", await try_connect(
                loop, where, ep.address, ep.scrub)))
            res = await outcome(server.serve_forever())
            if res[0] == "raised":
                res = res[:2] + (_server_repr_free(res[2], server),) + res[3:]
            trace.append(("serve_forever after close", res))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert trace[0] == ("isinstance AbstractServer", True)


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_start_serving_false(compare, where):
    """start_serving=False: the socket is bound but not listening (connects
    are refused) until start_serving() or serve_forever()."""
    def scenario(loop):
        async def main(d):
            ep = await serve(loop, where, Echo, d, start_serving=False)
            server = ep.server
            trace = [("is_serving", server.is_serving()),
                     ("listening", server.sockets[0].getsockopt(
                         socket.SOL_SOCKET, socket.SO_ACCEPTCONN))]
            trace.append(("connect before", await try_connect(
                loop, where, ep.address, ep.scrub)))
            trace.append(("start_serving", await outcome(
                server.start_serving())))
            trace.append(("is_serving now", server.is_serving()))
            trace.append(("connect after", await try_connect(
                loop, where, ep.address, ep.scrub)))
            await close_server(server)
            trace.append(("is_serving closed", server.is_serving()))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert trace[0] == ("is_serving", False)


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_serve_forever(compare, where):
    def scenario(loop):
        async def main(d):
            ep = await serve(loop, where, Echo, d, start_serving=False)
            server = ep.server
            trace = []
            task = loop.create_task(server.serve_forever())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            trace.append(("serving", server.is_serving()))
            res = await outcome(server.serve_forever())
            if res[0] == "raised":
                res = res[:2] + (_server_repr_free(res[2], server),) + res[3:]
            trace.append(("second serve_forever", res))
            trace.append(("connect", await try_connect(
                loop, where, ep.address, ep.scrub)))
            task.cancel()
            trace.append(("task", await outcome(task)))
            trace.append(("serving after cancel", server.is_serving(),
                          server.sockets))
            trace.append(("wait_closed", await outcome(server.wait_closed())))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert trace[0] == ("serving", True)


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_async_with_server(compare, where):
    def scenario(loop):
        async def main(d):
            ep = await serve(loop, where, Echo, d)
            trace = []
            async with ep.server as s:
                trace.append(("as target is server", s is ep.server))
                trace.append(("serving inside", s.is_serving()))
            trace.append(("serving after", ep.server.is_serving()))
            trace.append(("connect after", await try_connect(
                loop, where, ep.address, ep.scrub)))
            trace.append(("wait_closed", await outcome(
                ep.server.wait_closed())))
            # an exception inside the block propagates and still closes
            ep2 = await serve(loop, where, Echo, d)
            try:
                async with ep2.server:
                    raise KeyError("inside")
            except KeyError as exc:
                trace.append(("raised through", exc_ev(exc)))
            trace.append(("closed after exception",
                          ep2.server.is_serving()))
            await close_server(ep2.server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert ("serving after", False) in trace


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_close_with_live_connections(compare, where):
    """server.close() stops accepting but leaves accepted connections
    alone; whether wait_closed() waits for them depends on the Python
    version (3.12.1+ waits) and must match."""
    def scenario(loop):
        servers = []

        def factory():
            p = Recorder(loop)
            servers.append(p)
            return p

        async def main(d):
            ep = await serve(loop, where, factory, d)
            tr, cl = await wait(ep.connect(lambda: Recorder(loop)))
            await server_made(servers)
            ep.server.close()
            waiter = loop.create_task(ep.server.wait_closed())
            await asyncio.sleep(0.05)
            trace = [("wait_closed done with live connection",
                      waiter.done())]
            tr.write(b"still works")
            await servers[0].wait_for_bytes(11)
            trace.append(("server protocol got", bytes(servers[0].data)))
            servers[0].transport.write(b"reply")
            await cl.wait_for_bytes(5)
            trace.append(("client got", bytes(cl.data)))
            tr.close()
            await wait(servers[0].lost)
            trace.append(("wait_closed", await outcome(waiter)))
            trace.append(("server events", servers[0].events))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario)


@skip_before((3, 13), "Server.close_clients/abort_clients")
@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_close_abort_clients(compare, where, method):
    def scenario(loop):
        servers = []

        def factory():
            p = Recorder(loop)
            servers.append(p)
            return p

        async def main(d):
            ep = await serve(loop, where, factory, d)
            clients = []
            for _ in range(3):
                clients.append(await wait(ep.connect(
                    lambda: Recorder(loop))))
            while len(servers) < 3:
                await asyncio.sleep(0.001)
            for p in servers:
                await wait(p.made)
            # unsent data in one server transport's buffer
            servers[0].transport.write(b"pending")
            ep.server.close()
            trace = [(method, call_ev(getattr(ep.server, method)))]
            for p in servers:
                await wait(p.lost)
            for _, cl in clients:
                await wait(cl.lost)
            trace.append(("server events",
                          [(p.events, p.lost_count) for p in servers]))
            trace.append(("client events", sorted(
                [(tuple(cl.events), bytes(cl.data)) for _, cl in clients],
                key=repr)))
            trace.append(("wait_closed", await outcome(
                ep.server.wait_closed())))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario)


def test_socket_options(compare):
    def scenario(loop):
        async def main(d):
            trace = []
            for kw in ({}, {"reuse_address": True},
                       {"reuse_address": False}, {"backlog": 1},
                       {"backlog": 2}):
                server = await wait(loop.create_server(Echo, HOST4, 0, **kw))
                s = server.sockets[0]
                trace.append((kw, s.getsockopt(socket.SOL_SOCKET,
                                               socket.SO_REUSEADDR) != 0,
                              s.getsockopt(socket.SOL_SOCKET,
                                           socket.SO_ACCEPTCONN)))
                # a few connections, one after the other (a tiny backlog
                # overflowed by concurrent SYNs costs 1 s retransmits)
                port = s.getsockname()[1]
                conns = []
                for _ in range(5):
                    conns.append(await wait(loop.create_connection(
                        lambda: Recorder(loop), HOST4, port)))
                for tr, pr in conns:
                    tr.write(b"ping")
                    tr.write_eof()
                for tr, pr in conns:
                    await wait(pr.lost)
                trace.append(("echoed", [bytes(pr.data) for _, pr in conns]))
                await close_server(server)
            if hasattr(socket, "SO_REUSEPORT"):
                server = await wait(loop.create_server(Echo, HOST4, 0))
                trace.append(("default SO_REUSEPORT", server.sockets[
                    0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
                    != 0))
                await close_server(server)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario)


@requires_reuse_port
def test_reuse_port(compare):
    def scenario(loop):
        async def main():
            s1 = await wait(loop.create_server(Echo, HOST4, 0,
                                               reuse_port=True))
            port = s1.sockets[0].getsockname()[1]
            scrub = Scrub().port(port)
            trace = [("SO_REUSEPORT", s1.sockets[0].getsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0)]
            res = await outcome(loop.create_server(Echo, HOST4, port,
                                                   reuse_port=True), scrub)
            if res[0] == "ok":
                s2 = res[1]
                res = ("ok", s2.sockets[0].getsockname()[1] == port)
                await close_server(s2)
            trace.append(("second with reuse_port", res))
            res = await outcome(loop.create_server(Echo, HOST4, port), scrub)
            if res[0] == "ok":
                await close_server(res[1])
                res = ("ok",)
            trace.append(("second without reuse_port", res))
            await close_server(s1)
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[1] == ("second with reuse_port", ("ok", True))


def test_create_server_errors(compare):
    def scenario(loop):
        trace = []
        busy = socket.socket()
        busy.bind((HOST4, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        scrub = Scrub().port(port)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        async def attempt(label, make):
            res = await outcome(make, scrub)
            if res[0] == "ok":
                await close_server(res[1])
                res = ("ok",)
            trace.append((label, res))

        async def main():
            await attempt("port in use", lambda: loop.create_server(
                Echo, HOST4, port))
            await attempt("host and sock", lambda: loop.create_server(
                Echo, HOST4, 0, sock=busy))
            await attempt("neither host nor sock", lambda:
                          loop.create_server(Echo))
            await attempt("udp sock", lambda: loop.create_server(
                Echo, sock=udp))
            await attempt("unresolvable", lambda: loop.create_server(
                Echo, "nonexistent.invalid", 0))
            await attempt("ssl_handshake_timeout without ssl", lambda:
                          loop.create_server(Echo, HOST4, 0,
                                             ssl_handshake_timeout=1))
            await attempt("ssl_shutdown_timeout without ssl", lambda:
                          loop.create_server(Echo, HOST4, 0,
                                             ssl_shutdown_timeout=1))
            await attempt("bad ssl", lambda: loop.create_server(
                Echo, HOST4, 0, ssl=1))
            await attempt("port str", lambda: loop.create_server(
                Echo, HOST4, "0"))
            await attempt("family v6 for v4 host", lambda:
                          loop.create_server(Echo, HOST4, 0,
                                             family=socket.AF_INET6))
            await attempt("reuse_address=True", lambda: loop.create_server(
                Echo, HOST4, 0, reuse_address=True))
            await attempt("empty host list", lambda: loop.create_server(
                Echo, [], 0))

        try:
            run_until(loop, main(), 20)
        finally:
            busy.close()
            udp.close()
        return trace

    trace = compare(scenario)
    assert trace[0][1][1] == "OSError"


def test_create_server_sock(compare):
    def scenario(loop):
        async def main():
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            scrub = Scrub().port(lsock.getsockname()[1])
            server = await wait(loop.create_server(Echo, sock=lsock))
            trace = [("same fd",
                      server.sockets[0].fileno() == lsock.fileno()),
                     ("listening", lsock.getsockopt(
                         socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
                     ("nonblocking", lsock.getblocking())]
            tr, pr = await wait(loop.create_connection(
                lambda: Recorder(loop), *lsock.getsockname()))
            tr.write(b"echo")
            tr.write_eof()
            await wait(pr.lost)
            trace.append(("echo", bytes(pr.data)))
            await close_server(server)
            trace.append(("socket closed by server", lsock.fileno()))
            return scrub(trace)

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert ("echo", b"echo") in trace


@pytest.mark.parametrize("host", ["None", "empty", "list"])
def test_multiple_sockets_dual_stack(compare, host):
    """host=None / '' binds every family getaddrinfo gives for a passive
    address (IPv4 and IPv6 when available); a list of hosts binds each."""
    def scenario(loop):
        async def main():
            if host == "list":
                hosts = [HOST4, HOST6] if has_ipv6() else [HOST4]
            else:
                hosts = None if host == "None" else ""
            server = await wait(loop.create_server(Echo, hosts, 0))
            trace = []
            for s in server.sockets:
                addr = s.getsockname()
                v6only = None
                if s.family == socket.AF_INET6:
                    v6only = s.getsockopt(socket.IPPROTO_IPV6,
                                          socket.IPV6_V6ONLY)
                trace.append((s.family.name, addr[0], v6only))
                target = HOST4 if s.family == socket.AF_INET else HOST6
                tr, pr = await wait(loop.create_connection(
                    lambda: Recorder(loop), target, addr[1]))
                tr.write(b"x")
                tr.write_eof()
                await wait(pr.lost)
                trace.append(("echo via", s.family.name, bytes(pr.data)))
            await close_server(server)
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert ("echo via", "AF_INET", b"x") in trace


def test_unix_server_socket_file(compare):
    def scenario(loop):
        async def main(d):
            scrub = Scrub().add(d, "DIR")
            path = os.path.join(d, "srv")
            trace = []
            server = await wait(loop.create_unix_server(Echo, path))
            trace.append(("is socket", stat.S_ISSOCK(os.stat(path).st_mode)))
            trace.append(("sockname", scrub(
                server.sockets[0].getsockname())))
            await close_server(server)
            trace.append(("exists after close", os.path.exists(path)))
            # a stale socket file is replaced
            if not os.path.exists(path):
                stale = socket.socket(socket.AF_UNIX)
                stale.bind(path)
                stale.close()
            server = await wait(loop.create_unix_server(Echo, path))
            trace.append(("reused stale path", True))
            # a path already served: the stale check finds a live socket?
            res = await outcome(loop.create_unix_server(Echo, path), scrub)
            if res[0] == "ok":
                await close_server(res[1])
                res = ("ok",)
            trace.append(("second server same path", res))
            await close_server(server)
            # a regular file at the path is not removed
            fpath = os.path.join(d, "file")
            open(fpath, "w").close()
            trace.append(("regular file", await outcome(
                loop.create_unix_server(Echo, fpath), scrub)))
            trace.append(("file kept", os.path.exists(fpath)))
            # path-like and bytes paths
            for label, p in (("pathlib", pathlib.Path(d) / "pl"),
                             ("bytes", os.fsencode(os.path.join(d, "by")))):
                res = await outcome(loop.create_unix_server(Echo, p), scrub)
                if res[0] == "ok":
                    srv = res[1]
                    res = ("ok", scrub(srv.sockets[0].getsockname()))
                    await close_server(srv)
                trace.append((label, res))
            trace.append(("no path no sock", await outcome(
                loop.create_unix_server(Echo), scrub)))
            trace.append(("missing dir", await outcome(
                loop.create_unix_server(Echo, os.path.join(d, "no", "x")),
                scrub)))
            # sock= with a bound Unix socket
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(d, "viasock"))
            srv = await wait(loop.create_unix_server(Echo, sock=s))
            trace.append(("sock= listening", s.getsockopt(
                socket.SOL_SOCKET, socket.SO_ACCEPTCONN)))
            await close_server(srv)
            trace.append(("sock= file after close",
                          os.path.exists(os.path.join(d, "viasock"))))
            inet = socket.socket()
            trace.append(("inet sock", await outcome(
                loop.create_unix_server(Echo, sock=inet), scrub)))
            inet.close()
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario)


@skip_before((3, 13), "create_unix_server(cleanup_socket=)")
def test_unix_server_cleanup_socket(compare):
    def scenario(loop):
        async def main(d):
            trace = []
            for cleanup in (True, False):
                path = os.path.join(d, "c%d" % cleanup)
                server = await wait(loop.create_unix_server(
                    Echo, path, cleanup_socket=cleanup))
                await close_server(server)
                trace.append((cleanup, os.path.exists(path)))
            # replaced file: not removed by the server
            path = os.path.join(d, "replaced")
            server = await wait(loop.create_unix_server(Echo, path))
            os.unlink(path)
            open(path, "w").close()
            await close_server(server)
            trace.append(("replaced kept", os.path.exists(path)))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    compare(scenario)


@pytest.mark.parametrize("where", WHERE_PARAMS)
def test_start_server_streams(compare, where):
    """start_server/start_unix_server return Server objects too; the
    client_connected_cb can be a coroutine or a plain function."""
    def scenario(loop):
        seen = []

        async def handler(reader, writer):
            line = await reader.readline()
            seen.append(("coroutine handler", line,
                         type(writer.transport).__mro__[0] is not None,
                         writer.can_write_eof()))
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        def plain(reader, writer):
            seen.append(("plain handler",))
            writer.write(b"plain\n")
            writer.close()

        async def main(d):
            trace = []
            for label, cb in (("coroutine", handler), ("plain", plain)):
                if where == "unix":
                    path = os.path.join(d, "s-" + label)
                    server = await wait(asyncio.start_unix_server(cb, path))
                    reader, writer = await wait(
                        asyncio.open_unix_connection(path))
                else:
                    host = HOST4 if where == "tcp4" else HOST6
                    server = await wait(asyncio.start_server(cb, host, 0))
                    reader, writer = await wait(asyncio.open_connection(
                        host, server.sockets[0].getsockname()[1]))
                trace.append((label, "AbstractServer",
                              isinstance(server, asyncio.AbstractServer),
                              server.is_serving()))
                if label == "coroutine":
                    # (the plain handler closes without reading: a client
                    # write could race with that close and be reset)
                    writer.write(b"hello\n")
                    await wait(writer.drain())
                trace.append((label, "reply", await wait(reader.read())))
                writer.close()
                await wait(writer.wait_closed())
                server.close()
                await wait(server.wait_closed())
            trace.extend(seen)
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 20)

    trace = compare(scenario)
    assert ("coroutine", "reply", b"HELLO\n") in trace
