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
import sys
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

# name -> (coroutine function, default n, short description)
BENCHES = {}


def bench(name, default_n, desc):
    def deco(fn):
        BENCHES[name] = (fn, default_n, desc)
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
       "callback that queues the next batch; checks count and FIFO order")
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
       "in shuffled order, then two loop iterations; none may fire")
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
       "the last fires; checks count and deadline order (2.5 ms tolerance)")
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
       "checks every task finished all its iterations")
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
       "call_soon(fut.set_result, i); await fut; checks the sum")
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
       "while the loop runs; time until all delivered; checks count + order")
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
       "process pinned to one CPU (cross-core placement noise is otherwise ~2x)")
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
       "checks every result in order")
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
            try:
                from tideloop import _core
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
    fn, _, _ = BENCHES[bench_name]
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

    if warmup:
        # small run on a separate loop: imports, code paths, allocator
        one(max(10, n // 20))
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
        print(json.dumps({k: {"default_n": v[1], "desc": v[2]} for k, v in BENCHES.items()}))
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
