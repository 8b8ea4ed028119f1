"""Shared pieces of the benchmark rows: the registry, the stopwatch, the
result checks and the loopback helpers.  Imported by _worker.py and by the
row modules (_rows_*.py); benchmarks/ is on sys.path when _worker.py runs."""

import asyncio
import random
import time

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

