"""call_soon_threadsafe from other threads; wake-ups; loops in threads."""
import asyncio
import sys
import threading
import time

from support import attempt, run_forever_guarded, run_until


def test_call_soon_threadsafe_from_many_threads(loop):
    n_threads, n_calls = 10, 1000
    received = {i: [] for i in range(n_threads)}
    done = []
    start = threading.Event()

    def record(tid, seq):
        received[tid].append(seq)
        if seq == n_calls - 1:
            done.append(tid)
            if len(done) == n_threads:
                loop.stop()

    def producer(tid):
        start.wait(5)
        for seq in range(n_calls):
            loop.call_soon_threadsafe(record, tid, seq)

    threads = [threading.Thread(target=producer, args=(i,))
               for i in range(n_threads)]
    for t in threads:
        t.start()
    loop.call_soon(start.set)
    try:
        run_forever_guarded(loop, timeout=20)
    finally:
        start.set()
        for t in threads:
            t.join(10)
    for tid, seqs in received.items():
        # All delivered, each thread's calls in its own order.
        assert seqs == list(range(n_calls)), (tid, len(seqs))


def test_call_soon_threadsafe_wakes_a_loop_blocked_on_a_timer(loop):
    wake_delays = []

    def from_thread():
        time.sleep(0.1)
        wake_delays.append(time.monotonic())
        loop.call_soon_threadsafe(loop.stop)

    # Only the wake-up can end the wait: the timer is an hour away, and a
    # loop that missed it fails through the guard (no latency margin).
    far = loop.call_later(3600, lambda: None)
    t = threading.Thread(target=from_thread)
    t.start()
    run_forever_guarded(loop)
    t.join(5)
    far.cancel()
    assert wake_delays


def test_call_soon_threadsafe_wakes_a_loop_with_nothing_to_do(loop):
    woken = []

    def from_thread():
        time.sleep(0.1)
        woken.append(time.monotonic())
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=from_thread)
    t.start()
    # Nothing else can end the wait: a loop that missed the wake-up fails
    # through the guard (no latency margin).
    run_forever_guarded(loop)
    t.join(5)
    assert woken


def test_future_completed_from_thread_wakes_loop(loop):
    async def main():
        fut = loop.create_future()

        def complete():
            time.sleep(0.05)
            loop.call_soon_threadsafe(fut.set_result, "from thread")

        threading.Thread(target=complete).start()
        return await fut

    # A loop that missed the wake-up fails through run_until's guard.
    assert run_until(loop, main()) == "from thread"


def test_run_coroutine_threadsafe(loop):
    results = []

    async def add(a, b):
        await asyncio.sleep(0.001)
        return a + b

    def worker():
        futs = [asyncio.run_coroutine_threadsafe(add(i, i), loop)
                for i in range(50)]
        results.extend(f.result(5) for f in futs)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    run_forever_guarded(loop, timeout=10)
    t.join(5)
    assert results == [2 * i for i in range(50)]


def test_call_soon_threadsafe_on_closed_loop(compare):
    def scenario(loop):
        trace = []
        loop.close()
        errors = []
        t = threading.Thread(target=lambda: attempt(
            errors, "call_soon_threadsafe", loop.call_soon_threadsafe,
            print))
        t.start()
        t.join(5)
        trace.extend(errors)
        attempt(trace, "same thread", loop.call_soon_threadsafe, print)
        return trace

    assert compare(scenario)[0] == ("raised", "call_soon_threadsafe",
                                    "RuntimeError", "Event loop is closed")


def test_call_soon_threadsafe_handle(compare):
    def scenario(loop):
        trace = []
        holder = []

        def from_thread():
            holder.append(loop.call_soon_threadsafe(trace.append, "cancelled"))
            holder[0].cancel()
            loop.call_soon_threadsafe(trace.append, "ran")
            loop.call_soon_threadsafe(loop.stop)

        t = threading.Thread(target=from_thread)
        t.start()
        t.join(5)
        run_forever_guarded(loop)
        trace.append(("cancelled()", holder[0].cancelled()))
        return trace

    assert compare(scenario) == ["ran", ("cancelled()", True)]


def test_loops_in_several_threads(loop_factory):
    results = {}
    errors = []

    def run(i):
        try:
            lp = loop_factory()
            asyncio.set_event_loop(lp)
            try:
                async def main():
                    await asyncio.sleep(0.01 * (i % 3))
                    return (i, asyncio.get_running_loop() is lp,
                            asyncio.get_event_loop() is lp)
                results[i] = lp.run_until_complete(
                    asyncio.wait_for(main(), 5))
            finally:
                asyncio.set_event_loop(None)
                lp.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert results == {i: (i, True, True) for i in range(8)}


def test_timer_added_from_thread_rearms_a_blocked_loop(loop):
    # The loop sleeps until a timer an hour away; a thread adds a 50 ms
    # timer (through call_soon_threadsafe): the loop must wake for it (or
    # fail through the guard), and not early.
    far = loop.call_later(3600, lambda: None)
    added = []

    def from_thread():
        time.sleep(0.05)
        added.append(time.monotonic())
        loop.call_soon_threadsafe(loop.call_later, 0.05, loop.stop)

    t = threading.Thread(target=from_thread)
    t.start()
    run_forever_guarded(loop)
    returned = time.monotonic()
    t.join(5)
    far.cancel()
    assert returned - added[0] >= 0.05, returned - added[0]


def test_threadsafe_handle_cancel_while_its_callback_runs(compare):
    """Python 3.14 gives call_soon_threadsafe() handles a lock
    (events._ThreadSafeHandle): cancel() and cancelled() from another
    thread wait until the running callback has finished.  Before 3.14
    they return at once.  tideloop follows the running version.

    The callback waits for cancel() to return: before 3.14 that happens
    at once; from 3.14 cancel() waits for the callback, so the callback's
    wait ends at its timeout (the deadlock breaker, taken only there)."""
    def scenario(loop):
        trace = []
        started = threading.Event()
        cancel_returned = threading.Event()

        def callback():
            started.set()
            trace.append(("callback: cancel() returned before I did",
                          cancel_returned.wait(3.0)))

        def other():
            h = loop.call_soon_threadsafe(callback)
            if started.wait(20):
                h.cancel()
                trace.append(("cancel() returned; cancelled()",
                              h.cancelled()))
            cancel_returned.set()
            loop.call_soon_threadsafe(loop.stop)

        t = threading.Thread(target=other)
        t.start()
        try:
            run_forever_guarded(loop, timeout=30)
        finally:
            started.set()
            cancel_returned.set()
            t.join(20)
        return trace

    trace = compare(scenario)
    waits = sys.version_info >= (3, 14)
    assert trace == ([("callback: cancel() returned before I did", False),
                      ("cancel() returned; cancelled()", True)] if waits else
                     [("cancel() returned; cancelled()", True),
                      ("callback: cancel() returned before I did", True)])


def test_threadsafe_handle_cancelled_by_its_own_callback(compare):
    """The callback's own thread never waits (3.14's lock is an RLock):
    it may cancel its handle while running; it still runs to the end."""
    def scenario(loop):
        trace = []
        holder = {}

        def callback():
            h = holder["h"]
            trace.append(("cancelled while running", h.cancelled()))
            h.cancel()
            trace.append(("cancelled after cancel()", h.cancelled()))
            loop.stop()

        holder["h"] = loop.call_soon_threadsafe(callback)
        run_forever_guarded(loop, timeout=30)
        trace.append(("cancelled afterwards", holder["h"].cancelled()))
        return trace

    compare(scenario)


def test_every_post_wakes_a_loop_blocked_on_a_far_timer(loop):
    # Many threads, each posting one call at a time to a loop that sleeps
    # in its poll (the only timer is an hour away) and waiting until it
    # ran: a lost wake-up (a write skipped because one was thought
    # pending) leaves a thread waiting, which fails through the guard.
    n_threads, rounds = 8, 200
    errors = []
    finished = []

    def ran(ev, tid, i, seen):
        seen.append((tid, i))
        ev.set()

    def producer(tid):
        seen = []
        try:
            for i in range(rounds):
                ev = threading.Event()
                loop.call_soon_threadsafe(ran, ev, tid, i, seen)
                if not ev.wait(30):
                    errors.append((tid, i))
                    break
        finally:
            finished.append(seen == [(tid, i) for i in range(rounds)])
            if len(finished) == n_threads:
                loop.call_soon_threadsafe(loop.stop)

    far = loop.call_later(3600, lambda: None)
    threads = [threading.Thread(target=producer, args=(i,))
               for i in range(n_threads)]
    loop.call_soon(lambda: [t.start() for t in threads])
    try:
        run_forever_guarded(loop, timeout=60)
    finally:
        for t in threads:
            t.join(10)
        far.cancel()
    assert not errors
    assert finished == [True] * n_threads
