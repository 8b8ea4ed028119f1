"""call_soon_threadsafe floods (issue 15.1): eight threads posting in a
tight loop must neither starve the loop's timers nor grow memory without
bound, and producers must never deadlock with the loop.

Every scenario waits for events (ticks, callbacks run, threads finished),
never for a time margin; the guards only bound a broken loop.  Producers
start from inside the running loop, so that the flood meets a running loop
(on a loop that is not running, call_soon_threadsafe queues without limit,
as asyncio's does).
"""
import asyncio
import os
import threading

import pytest

from support import (
    GUARD_TIMEOUT, is_tideloop_loop, run_forever_guarded, run_until,
)

N_THREADS = 8

# Memory a flood may add while the loop runs 20 ticks.  Unbounded, it was
# 459-1065 MiB in 3 s; asyncio adds 1-11 MiB.
RSS_LIMIT_MIB = 200

# AddressSanitizer keeps freed blocks in a quarantine (256 MiB), so RSS
# says nothing there; the backlog (queued callbacks) is checked anyway.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_mib():
    """Resident memory of this process in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Flood:
    """N_THREADS threads calling loop.call_soon_threadsafe(cb) in a tight
    loop until halted or until the loop is closed; with ``barrier``, they
    all wait on it first."""

    def __init__(self, loop, n=N_THREADS, barrier=None):
        self.loop = loop
        self.barrier = barrier
        self.ran = 0
        self.posted = [0] * n
        self.errors = []
        self.closed_seen = [False] * n
        self.halted = False
        self.threads = [threading.Thread(target=self._post, args=(i,),
                                         daemon=True)
                        for i in range(n)]

    def _cb(self):
        self.ran += 1

    def _post(self, i):
        if self.barrier is not None:
            self.barrier.wait(GUARD_TIMEOUT)
        cst = self.loop.call_soon_threadsafe
        cb = self._cb
        posted = self.posted
        try:
            while not self.halted:
                cst(cb)
                posted[i] += 1
        except RuntimeError as exc:
            if str(exc) == "Event loop is closed":
                self.closed_seen[i] = True
            else:
                self.errors.append(exc)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.errors.append(exc)

    def start(self):
        for t in self.threads:
            t.start()

    def backlog(self):
        """Callbacks posted and not run yet (read in the loop's thread)."""
        return sum(self.posted) - self.ran

    def join(self):
        for t in self.threads:
            t.join(GUARD_TIMEOUT)
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, "%d producer threads hung" % len(alive)
        assert not self.errors, self.errors

    def finish(self):
        self.halted = True
        self.join()


@pytest.mark.watchdog(180)
def test_timer_keeps_ticking_during_flood(loop):
    # A 10 ms repeating timer must get its turn while eight threads flood:
    # it ticks 20 times, then stops the loop.  Unthrottled, tideloop ran 2
    # ticks in 10 s (the guard fails that); asyncio runs 26-222 in 3 s.
    if UNDER_ASAN and not is_tideloop_loop(loop):
        # Nothing paces asyncio but its GIL hand-overs: under ASan's
        # slowdown it ran fewer than 20 ticks in 60 s.
        pytest.skip("stock asyncio starves its timers under ASan")
    flood = Flood(loop)
    ticks = []
    backlog = []
    rss = []
    rss0 = rss_mib()

    def tick():
        ticks.append(flood.ran)
        backlog.append(flood.backlog())
        rss.append(rss_mib())
        if len(ticks) == 20:
            loop.stop()
        else:
            loop.call_later(0.01, tick)

    loop.call_soon(flood.start)
    loop.call_later(0.01, tick)
    try:
        run_forever_guarded(loop, timeout=60)
    finally:
        flood.finish()
    assert len(ticks) == 20
    # The flood really ran alongside the timer.
    assert ticks[-1] > ticks[0]
    # Each queued callback holds a handle; half a million of them would be
    # ~100 MiB.
    assert max(backlog) < 500_000, max(backlog)
    if rss0 is not None and not UNDER_ASAN:
        assert max(rss) - rss0 < RSS_LIMIT_MIB, (rss0, max(rss))


@pytest.mark.watchdog(180)
def test_stop_and_close_while_producers_are_held(new_loop):
    # A timer stops the flooded loop (tideloop's producers are then
    # waiting for it to drain), the loop closes, and every producer ends
    # with asyncio's RuntimeError('Event loop is closed'): nobody is left
    # waiting on a loop that no longer runs.
    for _ in range(10):
        loop = new_loop()
        flood = Flood(loop)
        stopped = []

        def stop():
            stopped.append(flood.ran)
            loop.stop()

        def started():
            flood.start()
            loop.call_later(0.02, stop)

        loop.call_soon(started)
        try:
            run_forever_guarded(loop)
            assert stopped
            # Producers still post to the stopped loop, then meet close().
            loop.close()
            flood.join()
        finally:
            flood.halted = True
        assert all(flood.closed_seen), flood.closed_seen


@pytest.mark.watchdog(600)
def test_posting_while_the_loop_closes_200_rounds(new_loop):
    # The round: eight threads post while the loop runs a short
    # sleep, then the loop closes under them.  Unthrottled, each round's
    # sleep waited for the whole backlog (132 s for 200 rounds).
    for _ in range(200):
        loop = new_loop()
        go = threading.Barrier(N_THREADS + 1)
        flood = Flood(loop, barrier=go)
        flood.start()
        try:
            go.wait(GUARD_TIMEOUT)
            run_until(loop, asyncio.sleep(0.01))
            loop.close()
            flood.join()
        finally:
            flood.halted = True
        assert all(flood.closed_seen), flood.closed_seen


def test_producer_never_blocks_on_a_loop_that_is_not_running(loop):
    # Far past any high-water mark, with nobody running the loop: the
    # producer must finish on its own (then the loop runs them all).
    n = 20_000
    got = []
    t = threading.Thread(
        target=lambda: [loop.call_soon_threadsafe(got.append, i)
                        for i in range(n)])
    t.start()
    t.join(GUARD_TIMEOUT)
    assert not t.is_alive()
    loop.call_soon(loop.stop)
    run_forever_guarded(loop)
    assert got == list(range(n))


def test_loop_thread_never_blocks_on_its_own_loop(loop):
    n = 20_000
    got = []

    def flood_self():
        for i in range(n):
            loop.call_soon_threadsafe(got.append, i)
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(flood_self)
    run_forever_guarded(loop)
    assert got == list(range(n))


def test_callback_joining_a_flooding_producer_does_not_deadlock(loop):
    # The loop thread waits for a producer that is still posting: the loop
    # cannot drain, so a producer waiting for it would wait forever.  (A
    # callback that blocks is poor style, but asyncio allows it.)
    n = 20_000
    got = []
    joined = []

    def produce():
        for i in range(n):
            loop.call_soon_threadsafe(got.append, i)

    def start_and_join():
        t = threading.Thread(target=produce, daemon=True)
        t.start()
        t.join(GUARD_TIMEOUT)
        joined.append(not t.is_alive())
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(start_and_join)
    run_forever_guarded(loop)
    assert joined == [True]
    assert got == list(range(n))


def test_thread_running_a_loop_never_blocks_posting_to_another(new_loop):
    # Loop B's callback posts a flood to loop A while A's thread is busy
    # in a callback that waits for B to finish: B's thread runs a loop, so
    # it must not wait for A to drain.
    a, b = new_loop(), new_loop()
    n = 20_000
    got = []
    posted = threading.Event()

    def post_to_a():
        for i in range(n):
            a.call_soon_threadsafe(got.append, i)
        posted.set()
        b.stop()

    def run_b():
        asyncio.set_event_loop(None)
        b.call_soon(post_to_a)
        b.run_forever()

    def wait_for_b():
        tb = threading.Thread(target=run_b, daemon=True)
        tb.start()
        posted.wait(GUARD_TIMEOUT)
        tb.join(GUARD_TIMEOUT)
        a.call_soon(a.stop)

    a.call_soon(wait_for_b)
    run_forever_guarded(a)
    assert posted.is_set()
    assert got == list(range(n))
