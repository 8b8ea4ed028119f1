"""Leak check: TCP connections on 127.0.0.1 through ONE long-lived loop and
two long-lived servers, one made with asyncio.start_server() (streams), the
other with loop.create_server() (a Protocol); rounds alternate between
them.  Each client connects, sends 16 bytes, reads the 16-byte reply and
then EOF, and closes; at most CONCURRENCY clients are open at a time.

    python tests/isolated/leak_tcp.py asyncio|tideloop [--scale S]

At scale 1: 100,000 connections in 10 rounds.

The server closes first, so the TIME_WAIT state stays with the server's
side of each connection (keyed by the server's port): the clients'
ephemeral ports (~28,000 of them) are free again at once, and 100,000
connections in under a minute do not run out of them.
"""
import asyncio
import socket

import _leakcheck as lc

ROUNDS = 10
CONCURRENCY = 200
BACKLOG = 1024      # > CONCURRENCY: no SYN is dropped (a 1 s retransmit)
MSG = 16


async def stream_handler(reader, writer):
    try:
        data = await reader.readexactly(MSG)
        writer.write(data[::-1])
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


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


class Client(asyncio.Protocol):
    def __init__(self, payload, done):
        self.payload = payload
        self.done = done
        self.buf = b""

    def connection_made(self, transport):
        transport.write(self.payload)

    def data_received(self, data):
        self.buf += data

    def eof_received(self):
        return False    # close on EOF

    def connection_lost(self, exc):
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self.done.set_result(self.buf)


async def stream_client(port, i):
    payload = b"%016d" % i
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(MSG)
        assert got == payload[::-1], got
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def protocol_client(port, i):
    loop = asyncio.get_running_loop()
    payload = b"%016d" % i
    done = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: Client(payload, done), "127.0.0.1", port)
    try:
        got = await done
    finally:
        transport.close()
    assert got == payload[::-1], got


async def run_clients(client, port, n):
    # CONCURRENCY workers take the next connection number: memory stays
    # bounded by the concurrency, not by n (no n tasks made up front).
    errors = []
    next_i = iter(range(n))

    async def worker():
        for i in next_i:
            try:
                await client(port, i)
            except OSError as exc:   # reported, and fails the scenario
                errors.append(repr(exc))

    await asyncio.gather(*(worker() for _ in range(min(n, CONCURRENCY))))
    # Let the transports' close callbacks (call_soon) run.
    for _ in range(3):
        await asyncio.sleep(0)
    if errors:
        raise AssertionError("%d client errors, e.g. %s"
                             % (len(errors), errors[:3]))


def main():
    args = lc.parse_args(__doc__)
    lc.quiet()
    lc.watchdog(600)
    report = lc.Report("tcp", args.kind, args.scale, args.inject_leak)
    loop = lc.loop_factory(args.kind)()
    lc.check_kind(args.kind, loop)
    asyncio.set_event_loop(loop)

    async def start():
        s1 = await asyncio.start_server(stream_handler, "127.0.0.1", 0,
                                        backlog=BACKLOG)
        s2 = await loop.create_server(EchoReversed, "127.0.0.1", 0,
                                      backlog=BACKLOG,
                                      family=socket.AF_INET)
        return s1, s2

    servers = loop.run_until_complete(start())
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    counter = [0]

    def one_round(n):
        k = counter[0]
        counter[0] += 1
        # The warm-up (first call) uses both servers and both client kinds;
        # then rounds alternate.
        kinds = (0, 1) if k == 0 else (k % 2,)
        for j in kinds:
            client = (stream_client, protocol_client)[j]
            loop.run_until_complete(asyncio.wait_for(
                run_clients(client, ports[j], n // len(kinds)), 300))
        return {"connections": n}

    def close_servers():
        async def stop():
            for s in servers:
                s.close()
            for s in servers:
                await s.wait_closed()
        loop.run_until_complete(stop())

    try:
        per_round = lc.scaled(10_000, args.scale)
        report.phase("connections", rounds=ROUNDS, ops_per_round=per_round,
                     warmup_ops=lc.scaled(2_000, args.scale),
                     run_round=one_round, after=close_servers)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    report.finish()


if __name__ == "__main__":
    main()
