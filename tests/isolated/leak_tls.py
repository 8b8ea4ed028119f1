"""Leak check: TLS connections on 127.0.0.1 through ONE long-lived loop
and two long-lived TLS servers, one made with loop.create_server() (a
Protocol that answers and closes first), the other with
asyncio.start_server() (streams, the client closes first); rounds
alternate between them.  Each client connects, completes the handshake,
sends 16 bytes, reads the 16-byte reply, and the TLS shutdown runs; at most
CONCURRENCY clients are open at a time.  Every connection also reads its
peer certificate and cipher (the extra info made at the handshake).

    python tests/isolated/leak_tls.py asyncio|tideloop [--scale S]

with the certificate and key in TIDELOOP_TLS_CERTFILE and
TIDELOOP_TLS_KEYFILE (tests/test_sslproto_leaks.py sets them).

At scale 1: 2,000 connections in 5 rounds (after 400 of warm-up).
"""
import asyncio
import os
import ssl

import _leakcheck as lc

ROUNDS = 5
CONCURRENCY = 50
BACKLOG = 1024
MSG = 16


class EchoReversed(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        if len(self.buf) >= MSG:
            self.transport.write(self.buf[:MSG][::-1])
            self.transport.close()

    def connection_lost(self, exc):
        self.transport = None


async def stream_handler(reader, writer):
    try:
        data = await reader.readexactly(MSG)
        writer.write(data[::-1])
        await writer.drain()
        await reader.read()         # the client closes first
    finally:
        writer.close()
        await writer.wait_closed()


class Client(asyncio.Protocol):
    def __init__(self, payload, done):
        self.payload = payload
        self.done = done
        self.buf = b""

    def connection_made(self, transport):
        assert transport.get_extra_info("peercert") is not None
        assert transport.get_extra_info("cipher") is not None
        transport.write(self.payload)

    def data_received(self, data):
        self.buf += data

    def connection_lost(self, exc):
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self.done.set_result(self.buf)


async def protocol_client(port, i, cctx):
    loop = asyncio.get_running_loop()
    payload = b"%016d" % i
    done = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: Client(payload, done), "127.0.0.1", port, ssl=cctx,
        server_hostname="localhost")
    try:
        got = await done
    finally:
        transport.close()
    assert got == payload[::-1], got


async def stream_client(port, i, cctx):
    payload = b"%016d" % i
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=cctx, server_hostname="localhost")
    try:
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(MSG)
        assert got == payload[::-1], got
    finally:
        writer.close()
        await writer.wait_closed()


async def run_clients(client, port, n, cctx):
    errors = []
    next_i = iter(range(n))

    async def worker():
        for i in next_i:
            try:
                await client(port, i, cctx)
            except OSError as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(worker() for _ in range(min(n, CONCURRENCY))))
    for _ in range(3):
        await asyncio.sleep(0)
    if errors:
        raise AssertionError("%d client errors, e.g. %s"
                             % (len(errors), errors[:3]))


def main():
    cert = os.environ["TIDELOOP_TLS_CERTFILE"]
    key = os.environ["TIDELOOP_TLS_KEYFILE"]
    args = lc.parse_args(__doc__)
    lc.quiet()
    lc.watchdog(600)
    report = lc.Report("tls", args.kind, args.scale, args.inject_leak)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cert)
    loop = lc.loop_factory(args.kind)()
    lc.check_kind(args.kind, loop)
    asyncio.set_event_loop(loop)

    async def start():
        s1 = await loop.create_server(EchoReversed, "127.0.0.1", 0,
                                      backlog=BACKLOG, ssl=sctx)
        s2 = await asyncio.start_server(stream_handler, "127.0.0.1", 0,
                                        backlog=BACKLOG, ssl=sctx)
        return s1, s2

    servers = loop.run_until_complete(start())
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    counter = [0]

    def one_round(n):
        k = counter[0]
        counter[0] += 1
        kinds = (0, 1) if k == 0 else (k % 2,)
        for j in kinds:
            client = (protocol_client, stream_client)[j]
            loop.run_until_complete(asyncio.wait_for(
                run_clients(client, ports[j], n // len(kinds), cctx), 300))
        return {"connections": n}

    def close_servers():
        async def stop():
            for s in servers:
                s.close()
            for s in servers:
                await s.wait_closed()
        loop.run_until_complete(stop())

    try:
        report.phase("connections", rounds=ROUNDS,
                     ops_per_round=lc.scaled(400, args.scale),
                     warmup_ops=lc.scaled(400, args.scale),
                     run_round=one_round, after=close_servers)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    report.finish()


if __name__ == "__main__":
    main()
