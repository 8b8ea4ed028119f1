"""Networking rows (group "net"): loopback TCP/Unix/UDP echo, pipes."""

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile

from _common import (TLS_HOSTNAME, BenchFailure, KIB, LOOPBACK, Stopwatch, _bounded,
                     _payloads, bench, check, tls_client_context, tls_server_context)


class _EchoServer(asyncio.Protocol):
    """Echoes every chunk back as it arrives; counts bytes, records errors."""

    def __init__(self, stats):
        self.stats = stats
        self.tr = None

    def connection_made(self, tr):
        self.tr = tr
        self.stats["conns"] += 1

    def data_received(self, data):
        self.stats["bytes"] += len(data)
        self.tr.write(data)

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc):
        if exc is not None:
            self.stats["errors"].append(f"server connection_lost({exc!r})")


class _BufferedEchoServer(asyncio.BufferedProtocol):
    """The echo server with the BufferedProtocol API: receives into its
    own buffer (get_buffer/buffer_updated), writes back each chunk."""

    def __init__(self, stats):
        self.stats = stats
        self.tr = None
        self.buf = bytearray(256 * KIB)
        self.view = memoryview(self.buf)

    def connection_made(self, tr):
        self.tr = tr
        self.stats["conns"] += 1

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.stats["bytes"] += nbytes
        self.tr.write(self.buf[:nbytes])

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc):
        if exc is not None:
            self.stats["errors"].append(f"server connection_lost({exc!r})")


class _EchoClient(asyncio.Protocol):
    """Sends msgs[i % k], waits for exactly that many bytes back, compares,
    repeats `rounds` times; everything driven from data_received."""

    def __init__(self, msgs, rounds, done):
        self.msgs = msgs
        self.k = len(msgs)
        self.size = len(msgs[0])
        self.rounds = rounds
        self.done = done
        self.i = 0
        self.buf = bytearray()
        self.tr = None
        self.lost_exc = None

    def connection_made(self, tr):
        self.tr = tr
        tr.write(self.msgs[0])

    def data_received(self, data):
        buf = self.buf
        if not buf and len(data) == self.size:
            got = data
        else:
            buf += data
            if len(buf) < self.size:
                return
            got = bytes(buf)
            buf.clear()
        expect = self.msgs[self.i % self.k]
        if got != expect:
            self._fail(f"round trip {self.i}: echo differs from what was sent "
                       f"({len(got)} vs {len(expect)} bytes)")
            return
        self.i += 1
        if self.i == self.rounds:
            if not self.done.done():
                self.done.set_result(self.i)
        else:
            self.tr.write(self.msgs[self.i % self.k])

    def _fail(self, msg):
        if not self.done.done():
            self.done.set_exception(BenchFailure(msg))

    def connection_lost(self, exc):
        self.lost_exc = exc
        if not self.done.done():
            self._fail(f"client connection lost after {self.i} round trips ({exc!r})")


async def _proto_echo(loop, n, size, clients=1, unix=False, tls=False,
                      buffered=False):
    msgs = _payloads(size)
    server_proto = _BufferedEchoServer if buffered else _EchoServer
    # TLS: certificate made before the server starts; the client verifies it
    sctx = tls_server_context() if tls else None
    cctx = tls_client_context() if tls else None
    per = max(1, n // clients)
    stats = {"conns": 0, "bytes": 0, "errors": []}
    tmpdir = None
    if unix:
        tmpdir = tempfile.mkdtemp(prefix="tideloop-bench-")
        path = os.path.join(tmpdir, "echo.sock")
        server = await loop.create_unix_server(lambda: server_proto(stats), path)
        connect = lambda f: loop.create_unix_connection(f, path)  # noqa: E731
    else:
        server = await loop.create_server(lambda: server_proto(stats), LOOPBACK, 0,
                                         ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        kw = {"ssl": cctx, "server_hostname": TLS_HOSTNAME} if tls else {}
        connect = lambda f: loop.create_connection(f, LOOPBACK, port, **kw)  # noqa: E731
    try:
        dones = [loop.create_future() for _ in range(clients)]
        protos = [_EchoClient(msgs, per, d) for d in dones]

        async def hot():
            # connecting is part of the timed work (the same for all loops,
            # and negligible next to n round trips)
            conns = await asyncio.gather(*[connect(lambda p=p: p) for p in protos])
            await asyncio.gather(*dones)
            return conns

        sw = Stopwatch().start()
        conns = await _bounded(hot(), f"{clients} echo client(s)")
        elapsed = sw.stop()
        for tr, _ in conns:
            tr.close()
        await asyncio.sleep(0)
    finally:
        server.close()
        await server.wait_closed()
        if tmpdir:
            try:
                os.unlink(path)
            except OSError:
                pass
            os.rmdir(tmpdir)
    # let the server side see the close
    for _ in range(3):
        await asyncio.sleep(0)
    total = per * clients
    check(all(p.i == per for p in protos),
          f"round trips per client {[p.i for p in protos]} != {per}")
    check(stats["conns"] == clients, f"server saw {stats['conns']} connections, expected {clients}")
    check(stats["bytes"] == total * size,
          f"server echoed {stats['bytes']} bytes, expected {total * size}")
    check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
    return elapsed, {"round_trips": total, "clients": clients, "msg_bytes": size}


def _proto_bench(name, size, n, clients=1, unix=False, tls=False,
                 buffered=False, rounds=1):
    where = "Unix socket in a temp dir" if unix else "127.0.0.1"
    if tls:
        where += (" over TLS (self-signed certificate made at run time, verified by "
                  "the client; the handshake is in the timed part)")
    who = f"{clients} concurrent clients, n/{clients} round trips each" if clients > 1 \
        else "one client, n round trips"
    desc = (f"Protocol API echo over {where}, {size // KIB} KiB messages, {who}; "
            f"server writes back each chunk from "
            f"{'buffer_updated (BufferedProtocol)' if buffered else 'data_received'}; "
            f"client compares "
            f"every echo byte for byte; server byte count checked")

    @bench(name, n, desc, unit="round trips", group="net", rounds=rounds)
    async def b(loop, n_):
        return await _proto_echo(loop, n_, size, clients, unix, tls, buffered)
    return b


_proto_bench("tcp_proto_1k", 1 * KIB, 20_000)
_proto_bench("tcp_proto_10k", 10 * KIB, 10_000, rounds=2)
_proto_bench("tcp_proto_100k", 100 * KIB, 2_000, rounds=4)
_proto_bench("tcp_proto_1k_c10", 1 * KIB, 30_000, clients=10)
_proto_bench("tcp_proto_10k_c10", 10 * KIB, 15_000, clients=10, rounds=2)
_proto_bench("tcp_proto_100k_c10", 100 * KIB, 2_500, clients=10,
             rounds=3)
_proto_bench("unix_proto_1k", 1 * KIB, 20_000, unix=True, rounds=2)
_proto_bench("tcp_bufproto_1k", 1 * KIB, 20_000, buffered=True)
_proto_bench("tls_proto_1k", 1 * KIB, 10_000, tls=True, rounds=2)
_proto_bench("tls_proto_100k", 100 * KIB, 1_000, tls=True, rounds=2)


def _streams_bench(name, size, n, rounds=1):
    desc = (f"streams echo over 127.0.0.1 (asyncio.start_server / open_connection), "
            f"{size // KIB} KiB messages, n round trips: client write+drain then "
            f"readexactly; server readexactly then write+drain; echoes compared")

    @bench(name, n, desc, unit="round trips", group="net", rounds=rounds)
    async def b(loop, n_):
        msgs = _payloads(size)
        k = len(msgs)
        stats = {"conns": 0, "rounds": 0, "errors": []}

        async def handler(reader, writer):
            stats["conns"] += 1
            try:
                while True:
                    try:
                        data = await reader.readexactly(size)
                    except asyncio.IncompleteReadError as e:
                        if e.partial:
                            stats["errors"].append(f"server got a partial message "
                                                   f"({len(e.partial)} bytes) at EOF")
                        break
                    stats["rounds"] += 1
                    writer.write(data)
                    await writer.drain()
            except Exception as e:
                stats["errors"].append(f"server: {e!r}")
            finally:
                writer.close()

        server = await asyncio.start_server(handler, LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async def client():
                reader, writer = await asyncio.open_connection(LOOPBACK, port)
                rx = reader.readexactly
                for i in range(n_):
                    msg = msgs[i % k]
                    writer.write(msg)
                    await writer.drain()
                    got = await rx(size)
                    if got != msg:
                        raise BenchFailure(f"round trip {i}: echo differs from what was sent")
                return reader, writer

            sw = Stopwatch().start()
            reader, writer = await _bounded(client(), "streams echo client")
            elapsed = sw.stop()
            writer.close()
            await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)
        check(stats["conns"] == 1, f"server saw {stats['conns']} connections, expected 1")
        check(stats["rounds"] == n_, f"server echoed {stats['rounds']} messages, expected {n_}")
        check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
        return elapsed, {"round_trips": n_, "msg_bytes": size}
    return b


_streams_bench("tcp_streams_1k", 1 * KIB, 10_000, rounds=2)
_streams_bench("tcp_streams_10k", 10 * KIB, 6_000, rounds=3)
_streams_bench("tcp_streams_100k", 100 * KIB, 2_500, rounds=3)


def _tune_sock(s):
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # generous buffers: the client sends a whole message before it reads
    # the echo, so small buffers could deadlock the 100 KiB case
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        s.setsockopt(socket.SOL_SOCKET, opt, 1 << 20)


def _sock_bench(name, size, n, rounds=1):
    desc = (f"sock_* echo over 127.0.0.1 on non-blocking sockets (TCP_NODELAY, 1 MiB "
            f"buffers), {size // KIB} KiB messages, n round trips: server "
            f"sock_recv(256 KiB) + sock_sendall; client sock_sendall then sock_recv "
            f"until the whole echo is back; echoes compared")

    @bench(name, n, desc, unit="round trips", group="net", rounds=rounds)
    async def b(loop, n_):
        msgs = _payloads(size)
        k = len(msgs)
        stats = {"bytes": 0, "errors": []}
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((LOOPBACK, 0))
        lsock.listen(8)
        lsock.setblocking(False)
        addr = lsock.getsockname()
        csock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _tune_sock(csock)
        conn_box = []

        async def server():
            conn, _ = await loop.sock_accept(lsock)
            conn_box.append(conn)
            _tune_sock(conn)
            recv, sendall = loop.sock_recv, loop.sock_sendall
            try:
                while True:
                    data = await recv(conn, 256 * KIB)
                    if not data:
                        break
                    stats["bytes"] += len(data)
                    await sendall(conn, data)
            except Exception as e:
                stats["errors"].append(f"server: {e!r}")

        try:
            srv = loop.create_task(server())

            async def client():
                await loop.sock_connect(csock, addr)
                recv, sendall = loop.sock_recv, loop.sock_sendall
                for i in range(n_):
                    msg = msgs[i % k]
                    await sendall(csock, msg)
                    got = await recv(csock, size)
                    if len(got) < size:
                        parts = [got]
                        have = len(got)
                        while have < size:
                            chunk = await recv(csock, size - have)
                            if not chunk:
                                raise BenchFailure(f"round trip {i}: EOF mid-echo")
                            parts.append(chunk)
                            have += len(chunk)
                        got = b"".join(parts)
                    if got != msg:
                        raise BenchFailure(f"round trip {i}: echo differs from what was sent")

            sw = Stopwatch().start()
            await _bounded(client(), "sock_* echo client")
            elapsed = sw.stop()
            csock.shutdown(socket.SHUT_WR)
            await _bounded(srv, "sock_* echo server")
        finally:
            csock.close()
            lsock.close()
            for c in conn_box:
                c.close()
        check(stats["bytes"] == n_ * size,
              f"server echoed {stats['bytes']} bytes, expected {n_ * size}")
        check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
        return elapsed, {"round_trips": n_, "msg_bytes": size}
    return b


_sock_bench("tcp_sock_1k", 1 * KIB, 8_000, rounds=2)
_sock_bench("tcp_sock_10k", 10 * KIB, 6_000, rounds=2)
_sock_bench("tcp_sock_100k", 100 * KIB, 2_000, rounds=3)


class _UdpEchoServer(asyncio.DatagramProtocol):
    def __init__(self, stats):
        self.stats = stats

    def connection_made(self, tr):
        self.tr = tr

    def datagram_received(self, data, addr):
        self.stats["datagrams"] += 1
        self.tr.sendto(data, addr)

    def error_received(self, exc):
        self.stats["errors"].append(f"server error_received({exc!r})")


class _UdpEchoClient(asyncio.DatagramProtocol):
    def __init__(self, msgs, rounds, done):
        self.msgs, self.k, self.rounds, self.done = msgs, len(msgs), rounds, done
        self.i = 0

    def connection_made(self, tr):
        self.tr = tr

    def start(self):
        self.tr.sendto(self.msgs[0])

    def datagram_received(self, data, addr):
        if data != self.msgs[self.i % self.k]:
            if not self.done.done():
                self.done.set_exception(BenchFailure(
                    f"datagram {self.i}: echo differs from what was sent"))
            return
        self.i += 1
        if self.i == self.rounds:
            if not self.done.done():
                self.done.set_result(self.i)
        else:
            self.tr.sendto(self.msgs[self.i % self.k])

    def error_received(self, exc):
        if not self.done.done():
            self.done.set_exception(BenchFailure(f"client error_received({exc!r})"))


@bench("udp_1k", 15_000,
       "UDP echo over 127.0.0.1 (create_datagram_endpoint; client connected "
       "with remote_addr), 1 KiB datagrams, one in flight, n round trips; "
       "every echo compared, server datagram count checked",
       unit="round trips", group="net", rounds=2)
async def b_udp_1k(loop, n):
    msgs = _payloads(1 * KIB)
    stats = {"datagrams": 0, "errors": []}
    srv_tr, _ = await loop.create_datagram_endpoint(
        lambda: _UdpEchoServer(stats), local_addr=(LOOPBACK, 0))
    addr = srv_tr.get_extra_info("sockname")
    done = loop.create_future()
    cli_tr, cli = await loop.create_datagram_endpoint(
        lambda: _UdpEchoClient(msgs, n, done), remote_addr=addr)
    try:
        sw = Stopwatch().start()
        cli.start()
        await _bounded(done, "UDP echo (a datagram lost?)")
        elapsed = sw.stop()
    finally:
        cli_tr.close()
        srv_tr.close()
        await asyncio.sleep(0)
    check(cli.i == n, f"{cli.i} datagrams echoed, expected {n}")
    check(stats["datagrams"] == n, f"server got {stats['datagrams']} datagrams, expected {n}")
    check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
    return elapsed, {"round_trips": n, "msg_bytes": 1 * KIB}



class _PipeSink(asyncio.Protocol):
    """Read end: counts the bytes and spot-checks each chunk's first and
    last byte against the repeated pattern (O(1) per call: a checksum
    would cost more than the loop under test)."""

    def __init__(self, done, pattern):
        self.n = 0
        self.bad = 0
        self.done = done
        self.pattern = pattern

    def data_received(self, data):
        p = self.pattern
        k = len(p)
        if data[0] != p[self.n % k] or data[-1] != p[(self.n + len(data) - 1) % k]:
            self.bad += 1
        self.n += len(data)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


class _PipeSource(asyncio.Protocol):
    """Write end: pause_writing/resume_writing gate the producer."""

    def __init__(self, loop):
        self.loop = loop
        self.resumed = None
        self.lost = loop.create_future()

    def pause_writing(self):
        self.resumed = self.loop.create_future()

    def resume_writing(self):
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.resumed = None

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


@bench("pipe_64k", 6_000,
       "n writes of 64 KiB through an os.pipe(): connect_write_pipe -> "
       "connect_read_pipe on the same loop, producer gated by "
       "pause_writing/resume_writing (default limits); byte count and "
       "each chunk's ends checked", unit="writes", group="net", rounds=3)
async def b_pipe_64k(loop, n):
    chunk = _payloads(64 * KIB, 1)[0]
    r, w = os.pipe()
    rf, wf = os.fdopen(r, "rb", buffering=0), os.fdopen(w, "wb", buffering=0)
    done = loop.create_future()
    sink = _PipeSink(done, chunk)
    src = _PipeSource(loop)
    await loop.connect_read_pipe(lambda: sink, rf)
    wtr, _ = await loop.connect_write_pipe(lambda: src, wf)

    async def produce():
        write = wtr.write
        for _ in range(n):
            write(chunk)
            if src.resumed is not None:
                await src.resumed
        wtr.close()
        await done

    sw = Stopwatch().start()
    await _bounded(produce(), "pipe producer")
    elapsed = sw.stop()
    await _bounded(src.lost, "pipe writer close")
    check(done.result() is None, f"read pipe lost: {done.result()!r}")
    check(sink.n == n * len(chunk), f"read {sink.n} bytes, expected {n * len(chunk)}")
    check(sink.bad == 0, f"{sink.bad} chunks read differ from what was written")
    return elapsed, {"bytes": sink.n}


@bench("subprocess_cat", 12,
       "n times: create_subprocess_exec('cat') with stdin/stdout pipes and "
       "communicate() 10 MiB through it; output compared (CPU time is this "
       "process's only, not cat's)", unit="processes", group="net",
       warmup=lambda n: 1)
async def b_subprocess_cat(loop, n):
    data = _payloads(10 * 1024 * KIB, 1)[0]
    cat = shutil.which("cat")
    check(cat is not None, "cat not found")
    sw = Stopwatch().start()
    for i in range(n):
        proc = await asyncio.create_subprocess_exec(
            cat, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = await _bounded(proc.communicate(data), "cat communicate")
        check(out == data, f"process {i}: output differs from input")
        check(proc.returncode == 0, f"process {i}: returncode {proc.returncode}")
    elapsed = sw.stop()
    return elapsed, {"bytes_each_way": n * len(data)}
