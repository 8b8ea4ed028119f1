#!/usr/bin/env python3
"""Run ONE benchmark on ONE event loop in this (fresh) process.

Usage:
    python benchmarks/_worker.py --loop asyncio|uvloop|tideloop --bench NAME --n N
    python benchmarks/_worker.py --loop NAME --probe
    python benchmarks/_worker.py --list

Prints exactly one JSON line on stdout.  The elapsed wall time ("elapsed")
and process CPU time ("cpu") are measured inside this process around the benchmark's hot part only (setup that is identical
for every loop, e.g. generating random delays, is outside the timed region).

Every benchmark verifies its own result (counts, ordering, nothing reported
to the loop's exception handler, loop closes cleanly).  On a wrong result the
JSON line has "ok": false and the process exits with status 2, so a broken
loop can never show up as a fast one.  Driven by benchmarks/run.py.
"""

import argparse
import asyncio
import faulthandler
import gc
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

perf_counter = time.perf_counter
process_time = time.process_time


class Stopwatch:
    """Wall time (perf_counter) and process CPU time (all threads)."""
    __slots__ = ("w0", "c0", "wall", "cpu")

    def start(self):
        self.c0 = process_time()
        self.w0 = perf_counter()
        return self

    def stop(self):
        w = perf_counter()
        c = process_time()
        self.wall = w - self.w0
        self.cpu = c - self.c0
        return self

def _default_warmup(n):
    return max(10, n // 20)


# name -> (coroutine function, default n, short description, meta dict)
# meta: unit (what n counts), group ("core" or "net"), warmup (n -> size of
# the throwaway warm-up run, or None if the benchmark warms up by itself)
BENCHES = {}


def bench(name, default_n, desc, unit="operations", group="core",
          warmup=_default_warmup):
    def deco(fn):
        BENCHES[name] = (fn, default_n, desc,
                         {"unit": unit, "group": group, "warmup": warmup})
        return fn
    return deco


class BenchFailure(Exception):
    """The loop produced a wrong result."""


def check(cond, msg):
    if not cond:
        raise BenchFailure(msg)


# ---------------------------------------------------------------------------
# Benchmarks.  Each is `async def f(loop, n) -> (Stopwatch, info_dict)`.
# ---------------------------------------------------------------------------

@bench("call_soon", 500_000,
       "n callbacks via loop.call_soon, scheduled in batches of 1000 by a "
       "callback that queues the next batch; checks count and FIFO order",
       unit="callbacks")
async def b_call_soon(loop, n):
    BATCH = 1000
    done = loop.create_future()
    count = 0
    out_of_order = 0
    scheduled = 0

    def cb(i):
        nonlocal count, out_of_order
        if i != count:
            out_of_order += 1
        count += 1
        if count == n:
            done.set_result(None)

    def batch():
        nonlocal scheduled
        cs = loop.call_soon
        start = scheduled
        stop = min(start + BATCH, n)
        for i in range(start, stop):
            cs(cb, i)
        scheduled = stop
        if stop < n:
            cs(batch)

    sw = Stopwatch().start()
    loop.call_soon(batch)
    await done
    elapsed = sw.stop()
    check(count == n, f"expected {n} callbacks, got {count}")
    check(out_of_order == 0, f"{out_of_order} callbacks ran out of FIFO order")
    return elapsed, {"callbacks": count}


@bench("timers_churn", 100_000,
       "n loop.call_later timers with delays 1-10 s (seeded), all cancelled "
       "in shuffled order, then two loop iterations; none may fire",
       unit="timers")
async def b_timers_churn(loop, n):
    rng = random.Random(12345)
    delays = [rng.uniform(1.0, 10.0) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    fired = 0

    def cb():
        nonlocal fired
        fired += 1

    gc.collect()
    sw = Stopwatch().start()
    cl = loop.call_later
    handles = [cl(d, cb) for d in delays]
    for i in order:
        handles[i].cancel()
    # let the loop run so it has to deal with (skip/purge) the cancelled timers
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    elapsed = sw.stop()

    check(fired == 0, f"{fired} cancelled timers fired")
    check(all(h.cancelled() for h in handles), "handle.cancelled() is False after cancel()")
    # the timer machinery must still work after the churn (untimed)
    sentinel = loop.create_future()
    loop.call_later(0.001, sentinel.set_result, "ok")
    check(await asyncio.wait_for(sentinel, 5) == "ok", "sentinel timer did not fire")
    check(fired == 0, f"{fired} cancelled timers fired")
    return elapsed, {"timers": n}


@bench("timers_fire", 100_000,
       "n loop.call_later timers with delays 0-10 ms (seeded), time until "
       "the last fires; checks count and deadline order (2.5 ms tolerance)",
       unit="timers")
async def b_timers_fire(loop, n):
    rng = random.Random(54321)
    delays = [rng.uniform(0.0, 0.01) for _ in range(n)]
    done = loop.create_future()
    fired_order = []
    append = fired_order.append

    def cb(i):
        append(i)
        if len(fired_order) == n:
            done.set_result(None)

    gc.collect()
    sw = Stopwatch().start()
    cl = loop.call_later
    handles = [cl(delays[i], cb, i) for i in range(n)]
    await done
    elapsed = sw.stop()

    check(len(fired_order) == n, f"expected {n} timers to fire, got {len(fired_order)}")
    check(len(set(fired_order)) == n, "some timer fired more than once")
    check(elapsed.wall >= max(delays) - 0.0025,
          f"all timers done after {elapsed.wall:.4f}s < max delay {max(delays):.4f}s")
    # uvloop turns call_later(d) with d rounding to 0 ms into a plain Handle
    # (no when()); those are "run ASAP" and are left out of the order check.
    whens = [w for w in (getattr(handles[i], "when", None) for i in fired_order)
             if w is not None]
    whens = [w() for w in whens]
    bad = sum(1 for a, b in zip(whens, whens[1:]) if b < a - 0.0025)
    check(bad == 0, f"{bad} timers fired before a timer with an earlier deadline")
    return elapsed, {"timers": n}


@bench("sleep0", 200_000,
       "10 tasks doing `await asyncio.sleep(0)`, n sleeps in total; "
       "checks every task finished all its iterations",
       unit="sleeps")
async def b_sleep0(loop, n):
    TASKS = 10
    per = max(1, n // TASKS)
    sleep = asyncio.sleep

    async def worker():
        for _ in range(per):
            await sleep(0)
        return per

    tasks = [loop.create_task(worker()) for _ in range(TASKS)]
    sw = Stopwatch().start()
    res = await asyncio.gather(*tasks)
    elapsed = sw.stop()
    check(sum(res) == per * TASKS, f"expected {per * TASKS} sleeps, got {sum(res)}")
    return elapsed, {"sleeps": per * TASKS, "tasks": TASKS}


@bench("future_roundtrip", 200_000,
       "in one task, n times: fut = create_future(); "
       "call_soon(fut.set_result, i); await fut; checks the sum",
       unit="round trips")
async def b_future_roundtrip(loop, n):
    cf = loop.create_future
    cs = loop.call_soon
    total = 0
    sw = Stopwatch().start()
    for i in range(n):
        fut = cf()
        cs(fut.set_result, i)
        total += await fut
    elapsed = sw.stop()
    check(total == n * (n - 1) // 2, f"wrong sum of results {total}")
    return elapsed, {"roundtrips": n}


@bench("threadsafe", 150_000,
       "1 producer thread calls loop.call_soon_threadsafe(cb, i) n times "
       "while the loop runs; time until all delivered; checks count + order",
       unit="callbacks")
async def b_threadsafe(loop, n):
    done = loop.create_future()
    count = 0
    out_of_order = 0
    errors = []

    def cb(i):
        nonlocal count, out_of_order
        if i != count:
            out_of_order += 1
        count += 1
        if count == n:
            done.set_result(None)

    def producer():
        try:
            cst = loop.call_soon_threadsafe
            for i in range(n):
                cst(cb, i)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(repr(e))
            loop.call_soon_threadsafe(done.cancel)

    th = threading.Thread(target=producer)
    sw = Stopwatch().start()
    th.start()
    await done
    elapsed = sw.stop()
    th.join()
    check(not errors, f"producer thread failed: {errors}")
    check(count == n, f"expected {n} callbacks, got {count}")
    check(out_of_order == 0, f"{out_of_order} callbacks out of submission order")
    return elapsed, {"callbacks": count}


@bench("threadsafe_pingpong", 20_000,
       "a thread and the loop ping-pong n times: thread does "
       "call_soon_threadsafe(cb) then waits on a threading.Event set by cb; "
       "process pinned to one CPU (cross-core placement noise is otherwise ~2x)",
       unit="round trips")
async def b_threadsafe_pingpong(loop, n):
    # Pin the loop thread (and thus the thread created below) to one CPU.
    # Unpinned, the result depends mostly on whether the scheduler puts the
    # two threads on the same core or not (0.35-1.0 s for the same loop).
    pinned = None
    if hasattr(os, "sched_setaffinity"):
        try:
            pinned = max(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {pinned})
        except OSError:
            pinned = None
    done = loop.create_future()
    ev = threading.Event()
    count = 0
    errors = []

    def cb(i):
        nonlocal count
        if i == count:
            count += 1
        ev.set()

    def pinger():
        try:
            cst = loop.call_soon_threadsafe
            for i in range(n):
                ev.clear()
                cst(cb, i)
                if not ev.wait(30):
                    errors.append(f"no pong for ping {i} within 30 s")
                    break
        except BaseException as e:  # pragma: no cover
            errors.append(repr(e))
        loop.call_soon_threadsafe(done.set_result, None)

    th = threading.Thread(target=pinger)
    sw = Stopwatch().start()
    th.start()
    await done
    elapsed = sw.stop()
    th.join()
    check(not errors, f"pinger thread failed: {errors}")
    check(count == n, f"expected {n} pongs in order, got {count}")
    return elapsed, {"roundtrips": n, "pinned_cpu": pinned}


@bench("gather", 50_000,
       "loop.create_task on n trivial coroutines + asyncio.gather; "
       "checks every result in order",
       unit="tasks")
async def b_gather(loop, n):
    async def coro(i):
        return i

    gc.collect()
    sw = Stopwatch().start()
    ct = loop.create_task
    tasks = [ct(coro(i)) for i in range(n)]
    res = await asyncio.gather(*tasks)
    elapsed = sw.stop()
    check(len(res) == n, f"expected {n} results, got {len(res)}")
    check(res == list(range(n)), "gather returned wrong/misordered results")
    return elapsed, {"tasks": n}


# ---------------------------------------------------------------------------
# Networking benchmarks.  Loopback only: 127.0.0.1 and Unix sockets in a
# private temp dir -- never any other address.  Client and server both run on
# the loop under test in this one process, so "cpu" is the cost of both ends.
# Each timed part runs under a deadline (NET_DEADLINE) so a lost packet or a
# lost wakeup becomes a clear failure instead of a watchdog kill.
# ---------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
NET_DEADLINE = 40.0  # s, for the timed part of one network benchmark
KIB = 1024


def _payloads(size, k=4):
    """k distinct, seeded messages of `size` bytes (rotated per round trip,
    so an echo of stale or misplaced data is caught by the byte compare)."""
    rng = random.Random(size * 7919 + k)
    return [rng.randbytes(size) for _ in range(k)]


async def _bounded(aw, what):
    try:
        return await asyncio.wait_for(aw, NET_DEADLINE)
    except asyncio.TimeoutError:
        raise BenchFailure(f"{what} did not finish within {NET_DEADLINE:g}s "
                           f"(lost data or lost wakeup?)") from None


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


async def _proto_echo(loop, n, size, clients=1, unix=False):
    msgs = _payloads(size)
    per = max(1, n // clients)
    stats = {"conns": 0, "bytes": 0, "errors": []}
    tmpdir = None
    if unix:
        tmpdir = tempfile.mkdtemp(prefix="tideloop-bench-")
        path = os.path.join(tmpdir, "echo.sock")
        server = await loop.create_unix_server(lambda: _EchoServer(stats), path)
        connect = lambda f: loop.create_unix_connection(f, path)  # noqa: E731
    else:
        server = await loop.create_server(lambda: _EchoServer(stats), LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        connect = lambda f: loop.create_connection(f, LOOPBACK, port)  # noqa: E731
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


def _proto_bench(name, size, n, clients=1, unix=False):
    where = "Unix socket in a temp dir" if unix else "127.0.0.1"
    who = f"{clients} concurrent clients, n/{clients} round trips each" if clients > 1 \
        else "one client, n round trips"
    desc = (f"Protocol API echo over {where}, {size // KIB} KiB messages, {who}; "
            f"server writes back each chunk from data_received; client compares "
            f"every echo byte for byte; server byte count checked")

    @bench(name, n, desc, unit="round trips", group="net")
    async def b(loop, n_):
        return await _proto_echo(loop, n_, size, clients, unix)
    return b


_proto_bench("tcp_proto_1k", 1 * KIB, 20_000)
_proto_bench("tcp_proto_10k", 10 * KIB, 10_000)
_proto_bench("tcp_proto_100k", 100 * KIB, 2_000)
_proto_bench("tcp_proto_1k_c10", 1 * KIB, 30_000, clients=10)
_proto_bench("tcp_proto_10k_c10", 10 * KIB, 15_000, clients=10)
_proto_bench("tcp_proto_100k_c10", 100 * KIB, 2_500, clients=10)
_proto_bench("unix_proto_1k", 1 * KIB, 20_000, unix=True)


def _streams_bench(name, size, n):
    desc = (f"streams echo over 127.0.0.1 (asyncio.start_server / open_connection), "
            f"{size // KIB} KiB messages, n round trips: client write+drain then "
            f"readexactly; server readexactly then write+drain; echoes compared")

    @bench(name, n, desc, unit="round trips", group="net")
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


_streams_bench("tcp_streams_1k", 1 * KIB, 10_000)
_streams_bench("tcp_streams_10k", 10 * KIB, 6_000)
_streams_bench("tcp_streams_100k", 100 * KIB, 2_500)


def _tune_sock(s):
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # generous buffers: the client sends a whole message before it reads
    # the echo, so small buffers could deadlock the 100 KiB case
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        s.setsockopt(socket.SOL_SOCKET, opt, 1 << 20)


def _sock_bench(name, size, n):
    desc = (f"sock_* echo over 127.0.0.1 on non-blocking sockets (TCP_NODELAY, 1 MiB "
            f"buffers), {size // KIB} KiB messages, n round trips: server "
            f"sock_recv(256 KiB) + sock_sendall; client sock_sendall then sock_recv "
            f"until the whole echo is back; echoes compared")

    @bench(name, n, desc, unit="round trips", group="net")
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


_sock_bench("tcp_sock_1k", 1 * KIB, 8_000)
_sock_bench("tcp_sock_10k", 10 * KIB, 6_000)
_sock_bench("tcp_sock_100k", 100 * KIB, 2_000)


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
       unit="round trips", group="net")
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


# --- HTTP server under wrk ----------------------------------------------------

HTTP_BODY = b"Hello, World!\n"
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\n"
                 b"Server: bench\r\n"
                 b"Content-Type: text/plain\r\n"
                 b"Content-Length: " + str(len(HTTP_BODY)).encode() + b"\r\n"
                 b"Connection: keep-alive\r\n"
                 b"\r\n" + HTTP_BODY)
HTTP_BAD = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n")
WRK_THREADS = 1
WRK_CONNECTIONS = 50
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"lat_p50_us": %d, "lat_p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class _HttpServer(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: every `GET ...` request head
    (no body) gets the same fixed 200 response; anything else a 400 + close.
    Handles several (pipelined) requests per chunk."""

    __slots__ = ("stats", "tr", "buf")

    def __init__(self, stats):
        self.stats = stats
        self.buf = b""

    def connection_made(self, tr):
        self.tr = tr
        self.stats["conns"] += 1

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        start = 0
        count = 0
        while end >= 0:
            if not buf.startswith(b"GET ", start):
                self.stats["bad"] += 1
                self.tr.write(HTTP_BAD)
                self.tr.close()
                self.buf = b""
                return
            count += 1
            start = end + 4
            end = buf.find(b"\r\n\r\n", start)
        self.buf = buf[start:]
        self.stats["requests"] += count
        self.tr.write(HTTP_RESPONSE if count == 1 else HTTP_RESPONSE * count)

    def connection_lost(self, exc):
        if exc is not None and not isinstance(exc, ConnectionResetError):
            self.stats["errors"].append(f"server connection_lost({exc!r})")


def _http_pinning():
    """Opt-in (TIDELOOP_BENCH_HTTP_PIN=1): pin this process (the server) to
    the last usable CPU and return (server_cpus, wrk_cpus) -- wrk gets all the
    others -- else None.  Off by default: on the shared 2-core box pinning
    made req/s noisier, because the server can't flee another tenant."""
    if os.environ.get("TIDELOOP_BENCH_HTTP_PIN", "0") != "1":
        return None
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        srv, rest = {cpus[-1]}, set(cpus[:-1])
        os.sched_setaffinity(0, srv)
        return srv, rest
    except OSError:
        return None


async def _http_client_check(port, requests, conns=2):
    """Plain asyncio-streams client: keep-alive GETs, each response compared
    byte for byte.  Warms up the server path and proves it answers right."""
    req = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)

    async def one():
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            for _ in range(requests // conns):
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                clen = 0
                for h in head.split(b"\r\n"):
                    if h.lower().startswith(b"content-length:"):
                        clen = int(h.split(b":", 1)[1])
                got = head + await reader.readexactly(clen)
                if got != HTTP_RESPONSE:
                    raise BenchFailure(f"wrong HTTP response: {got[:80]!r}")
        finally:
            writer.close()
            await writer.wait_closed()
    await asyncio.gather(*[one() for _ in range(conns)])
    return (requests // conns) * conns


def _check_wrk(cp, served, stats):
    """Parse wrk's WRKJSON line (from WRK_LUA) and check it; returns the dict."""
    rep = None
    for line in cp.stdout.splitlines():
        if line.startswith("WRKJSON "):
            rep = json.loads(line[8:])
    check(cp.returncode == 0 and rep is not None,
          f"wrk failed rc={cp.returncode}: {cp.stdout[-300:]} {cp.stderr[-300:]}")
    errs = {k: rep[k] for k in ("connect", "read", "write", "status", "timeout") if rep[k]}
    check(not errs, f"wrk reported errors {errs} (of {rep['requests']} requests)")
    reqs = rep["requests"]
    check(reqs > 0, "wrk completed 0 requests")
    size = len(HTTP_RESPONSE)
    check(reqs * size <= rep["bytes"] <= (reqs + WRK_CONNECTIONS) * size,
          f"wrk read {rep['bytes']} bytes for {reqs} responses of {size} bytes")
    check(reqs <= served <= reqs + WRK_CONNECTIONS,
          f"server answered {served} requests, wrk completed {reqs}")
    check(stats["bad"] == 0, f"{stats['bad']} malformed requests")
    check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
    return rep


@bench("http_wrk", 2000,
       f"minimal Protocol-based HTTP/1.1 keep-alive server (fixed "
       f"{len(HTTP_RESPONSE)}-byte response) on the loop under test, loaded by "
       f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} for n ms (whole seconds, >= 1 s) "
       f"on 127.0.0.1. Time = 1/(req/s), so speedup = loop req/s / asyncio req/s; "
       f"cpu = server-process CPU per request. Checks: wrk zero errors (connect/"
       f"read/write/status/timeout), requests > 0, bytes = requests x response "
       f"size, server count matches, responses verified before and after",
       unit="ms of load", group="net", warmup=None)
async def b_http_wrk(loop, n):
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchFailure("wrk not found on PATH (apt-get install -y wrk)")
    seconds = max(1, int(round(n / 1000)))
    stats = {"conns": 0, "requests": 0, "bad": 0, "errors": []}
    server = await loop.create_server(lambda: _HttpServer(stats), LOOPBACK, 0,
                                      backlog=1024)
    port = server.sockets[0].getsockname()[1]
    tmpdir = tempfile.mkdtemp(prefix="tideloop-bench-")
    script = os.path.join(tmpdir, "report.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    pin = None
    try:
        # warm-up + correctness (not timed): 400 verified keep-alive requests
        warm = await _bounded(_http_client_check(port, 400), "HTTP warm-up client")
        base = stats["requests"]
        cmd = [wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s",
               "--timeout", "5s", "-s", script, f"http://{LOOPBACK}:{port}/"]
        fut = loop.create_future()
        pin = _http_pinning()

        def run_wrk():
            # a plain thread blocked in subprocess.run: no CPU in this process
            try:
                cp = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=seconds + 30,
                    preexec_fn=(lambda: os.sched_setaffinity(0, pin[1])) if pin else None)
                loop.call_soon_threadsafe(fut.set_result, cp)
            except BaseException as e:
                loop.call_soon_threadsafe(fut.set_exception, e)

        th = threading.Thread(target=run_wrk, daemon=True)
        sw = Stopwatch().start()
        th.start()
        cp = await _bounded(fut, "wrk")
        sw.stop()
        th.join()
        served = stats["requests"] - base
        rep = _check_wrk(cp, served, stats)
        # still answers correctly after the load (not timed)
        await _bounded(_http_client_check(port, 20), "HTTP check client")
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(tmpdir, ignore_errors=True)
    reqs = rep["requests"]
    dur = rep["duration_us"] / 1e6
    out = Stopwatch()
    out.wall = dur / reqs          # seconds per request = 1 / (req/s)
    out.cpu = sw.cpu / served      # server-process CPU seconds per request
    return out, {"rps": round(reqs / dur, 1), "requests": reqs, "served": served,
                 "wrk_seconds": round(dur, 3), "server_cpu_s": round(sw.cpu, 3),
                 "server_cpu_util": round(sw.cpu / sw.wall, 3),
                 "cpu_us_per_req": round(1e6 * sw.cpu / served, 2),
                 "lat_p50_ms": rep["lat_p50_us"] / 1000,
                 "lat_p99_ms": rep["lat_p99_us"] / 1000,
                 "pinned": [sorted(s) for s in pin] if pin else None,
                 "warmup_requests": warm,
                 "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds}s"}


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
       "each chunk's ends checked", unit="writes", group="net")
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


# ---------------------------------------------------------------------------
# Subprocesses (group "proc").  The parent's CPU time leaves out the
# children's, so compare these with --metric wall (the default).
# ---------------------------------------------------------------------------

@bench("spawn_true", 300,
       "n sequential asyncio.create_subprocess_exec('/bin/true') + wait(); "
       "every return code checked", unit="processes", group="proc")
async def b_spawn_true(loop, n):
    sw = Stopwatch().start()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        rc = await p.wait()
        check(rc == 0, f"/bin/true exited {rc}")
    return sw.stop(), {}


@bench("spawn_communicate", 200,
       "n sequential `cat` children with stdin/stdout pipes; communicate() "
       "sends 64 KiB and the echo is compared byte for byte",
       unit="processes", group="proc")
async def b_spawn_communicate(loop, n):
    data = random.Random(7).randbytes(64 * KIB) if hasattr(
        random.Random, "randbytes") else os.urandom(64 * KIB)
    sw = Stopwatch().start()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec(
            "/bin/cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = await p.communicate(data)
        check(out == data and p.returncode == 0,
              f"cat echoed {len(out)} bytes, exit {p.returncode}")
    return sw.stop(), {}


@bench("spawn_concurrent", 400,
       "n `/bin/true` children started 50 at a time (gather of create + "
       "wait); every return code checked", unit="processes", group="proc")
async def b_spawn_concurrent(loop, n):
    async def one():
        p = await asyncio.create_subprocess_exec("/bin/true")
        return await p.wait()

    sw = Stopwatch().start()
    left = n
    while left > 0:
        k = min(50, left)
        rcs = await asyncio.gather(*[one() for _ in range(k)])
        check(rcs == [0] * k, f"return codes {set(rcs)}")
        left -= k
    return sw.stop(), {}


# ---------------------------------------------------------------------------
# Loop construction / probing
# ---------------------------------------------------------------------------

LOOPS = ("asyncio", "uvloop", "tideloop")


def make_loop(name):
    if name == "asyncio":
        # the stock default loop (SelectorEventLoop/epoll on Linux)
        return asyncio.DefaultEventLoopPolicy().new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "tideloop":
        import tideloop
        return tideloop.new_event_loop()
    raise SystemExit(f"unknown loop {name!r}")


def loop_class(loop):
    t = type(loop)
    return f"{t.__module__}.{t.__qualname__}"


def probe(name):
    info = {"loop": name, "ok": False}
    try:
        loop = make_loop(name)
        try:
            info["loop_class"] = loop_class(loop)
            fut = loop.create_future()
            loop.call_soon(fut.set_result, 42)
            check(loop.run_until_complete(fut) == 42, "trivial future round trip failed")
        finally:
            loop.close()
        if name == "asyncio":
            info["version"] = sys.version.split()[0]
        elif name == "uvloop":
            import uvloop
            info["version"] = getattr(uvloop, "__version__", None)
        elif name == "tideloop":
            import tideloop
            info["version"] = getattr(tideloop, "__version__", None)
            info["path"] = os.path.dirname(os.path.abspath(tideloop.__file__))
            try:
                from tideloop import _core
                info["core_mtime"] = os.path.getmtime(_core.__file__)
                fn = getattr(_core, "libuv_version", None)
                if fn is not None:
                    v = fn()
                    if isinstance(v, int):  # UV_VERSION_HEX style
                        v = f"{v >> 16 & 0xff}.{v >> 8 & 0xff}.{v & 0xff}"
                    info["libuv_version"] = str(v)
            except Exception as e:
                info["libuv_version_error"] = repr(e)
        info["ok"] = True
    except BaseException as e:
        info["error"] = f"{type(e).__name__}: {e}"
    return info


def run_one(loop_name, bench_name, n, warmup):
    fn, _, _, meta = BENCHES[bench_name]
    reported = []

    def handler(loop, ctx):
        msg = ctx.get("message")
        exc = ctx.get("exception")
        reported.append(f"{msg!r} {exc!r}" if exc is not None else repr(msg))

    def one(n_):
        loop = make_loop(loop_name)
        loop.set_exception_handler(handler)
        asyncio.set_event_loop(loop)
        try:
            result = loop.run_until_complete(fn(loop, n_))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        return result, loop_class(loop)

    if warmup and meta["warmup"] is not None:
        # small run on a separate loop: imports, code paths, allocator
        one(meta["warmup"](n))
    reported.clear()
    gc.collect()
    (sw, info), cls = one(n)
    check(not reported, f"loop exception handler was called: {reported[:3]}")
    return {"elapsed": sw.wall, "cpu": sw.cpu, "info": info, "loop_class": cls}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", choices=LOOPS)
    p.add_argument("--bench", choices=sorted(BENCHES))
    p.add_argument("--n", type=int)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--timeout", type=float, default=0,
                   help="watchdog: dump tracebacks and exit(1) after this many seconds")
    p.add_argument("--probe", action="store_true")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()

    if a.list:
        print(json.dumps({k: {"default_n": v[1], "desc": v[2], "unit": v[3]["unit"],
                              "group": v[3]["group"]}
                          for k, v in BENCHES.items()}))
        return 0
    if a.loop is None:
        p.error("--loop is required")
    if a.probe:
        info = probe(a.loop)
        print(json.dumps(info))
        return 0 if info["ok"] else 3
    if a.bench is None:
        p.error("--bench is required")
    n = a.n if a.n is not None else BENCHES[a.bench][1]
    if a.timeout > 0:
        # a hung loop (lost callback / wakeup) must not hang the whole run
        faulthandler.dump_traceback_later(a.timeout, exit=True)
    out = {"loop": a.loop, "bench": a.bench, "n": n, "pid": os.getpid()}
    try:
        out.update(run_one(a.loop, a.bench, n, not a.no_warmup))
        out["ok"] = True
    except BenchFailure as e:
        out.update(ok=False, error=f"wrong result: {e}")
    except BaseException as e:
        out.update(ok=False, error=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc()[-2000:])
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
