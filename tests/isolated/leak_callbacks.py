"""Leak check: call_soon, call_later/call_at (half cancelled, half fired
with tiny delays) and call_soon_threadsafe from a thread, with contextvars
set in the callbacks, on ONE long-lived loop (leaks in long-running loops
are what users notice: uvloop #201, #220, #565).

    python tests/isolated/leak_callbacks.py asyncio|tideloop [--scale S]

At scale 1: 1,000,000 call_soon, 1,000,000 timers (call_later and call_at
alternating; every other one cancelled, some before and some after they
are due) and 1,000,000 call_soon_threadsafe, each in 10 rounds.
"""
import contextvars
import threading

import _leakcheck as lc

ROUNDS = 10
BATCH = 10_000          # callbacks queued before the loop runs them
VAR = contextvars.ContextVar("leak_var")
VAR2 = contextvars.ContextVar("leak_var2", default=None)


def soon_round(loop, n):
    done = [0]
    shared = contextvars.copy_context()

    def cb(i, payload):
        # A new Context value per callback: a leaked Context (or HAMT
        # node) per handle would show in the object count.
        VAR.set(i)
        VAR2.set(payload)
        done[0] += 1

    def chained(i):
        VAR.set(-i)
        done[0] += 1

    def cb_chain(i):
        # Scheduled from a callback: runs in the next iteration.
        VAR.set(i)
        done[0] += 1
        loop.call_soon(chained, i)

    expected = 0
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        for i in range(start, stop):
            m = i % 4
            if m == 0:
                loop.call_soon(cb, i, [i], context=contextvars.copy_context())
            elif m == 1:
                loop.call_soon(cb, i, (i,), context=shared)
            elif m == 2:
                loop.call_soon(cb, i, "x")
            else:
                loop.call_soon(cb_chain, i)
                expected += 1
            expected += 1
        loop.call_soon(loop.stop)
        loop.run_forever()
    # The chained callbacks of the last batch.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert done[0] == expected, (done[0], expected)
    return {"call_soon": expected}


def timer_round(loop, n):
    fired = [0]

    def cb(i):
        VAR.set(i)
        fired[0] += 1

    expected = cancelled = 0
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        now = loop.time()
        handles = []
        for i in range(start, stop):
            delay = (i % 50) * 2e-6          # 0 .. 98 microseconds
            if i % 2:
                h = loop.call_later(delay, cb, i)
            else:
                h = loop.call_at(now + delay, cb, i,
                                 context=contextvars.copy_context())
            handles.append(h)
        # Cancel half: i % 4 in (0, 1) covers call_at and call_later.
        for i, h in zip(range(start, stop), handles):
            if i % 4 < 2:
                h.cancel()
                if i % 8 == 0:
                    h.cancel()               # twice: a no-op
                cancelled += 1
            else:
                expected += 1
        # A far timer cancelled at once (heap removal of a non-root), and
        # one that outlives the batch until cancelled after it.
        far = loop.call_later(3600, cb, -1)
        far.cancel()
        late = loop.call_later(3600, cb, -2)
        # After every deadline of the batch (the last call_later() was made
        # at most 98 us before its deadline, and before this time()).
        loop.call_at(loop.time() + 1e-3, loop.stop)
        loop.run_forever()
        late.cancel()
        for h in handles[:8]:
            h.cancel()                       # cancel after it fired: no-op
    assert fired[0] == expected, (fired[0], expected)
    return {"timers_fired": expected, "timers_cancelled": cancelled}


def threadsafe_round(loop, n):
    got = [0]
    ready = threading.Event()

    def cb(i):
        VAR.set(i)
        got[0] += 1

    def producer():
        ready.wait()
        ctx = contextvars.copy_context()
        for i in range(n):
            if i % 2:
                loop.call_soon_threadsafe(cb, i)
            else:
                loop.call_soon_threadsafe(cb, i, context=ctx)
        loop.call_soon_threadsafe(loop.stop)

    t = lc.start_thread(producer)
    loop.call_soon(ready.set)
    loop.run_forever()
    t.join()
    # Callbacks queued between stop() and the producer's last call.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert got[0] == n, (got[0], n)
    return {"call_soon_threadsafe": n}


def main():
    args = lc.parse_args(__doc__)
    lc.quiet()
    lc.watchdog(600)
    report = lc.Report("callbacks", args.kind, args.scale,
                       args.inject_leak)
    loop = lc.loop_factory(args.kind)()
    lc.check_kind(args.kind, loop)
    try:
        for name, fn in (("call_soon", soon_round),
                         ("timers", timer_round),
                         ("threadsafe", threadsafe_round)):
            per_round = lc.scaled(100_000, args.scale)
            report.phase(name, rounds=ROUNDS, ops_per_round=per_round,
                         warmup_ops=per_round,
                         run_round=lambda k, fn=fn: fn(loop, k))
    finally:
        loop.close()
    report.finish()


if __name__ == "__main__":
    main()
