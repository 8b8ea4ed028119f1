"""The timer heap's bookkeeping against stock asyncio: cancel() only marks a
timer and counts it (loop._timer_cancelled_count); cancelled timers leave
the heap when they reach its front, or all at once when more than half of
more than 100 scheduled timers are cancelled (asyncio's
_MIN_SCHEDULED_TIMER_HANDLES and _MIN_CANCELLED_TIMER_HANDLES_FRACTION).
TimerHandle._scheduled tells whether a timer is still in the heap, so the
number of handles with it set is asyncio's len(loop._scheduled).

Timers that must fire are scheduled in the past and the others 1000 s
ahead: no scenario depends on how long an iteration takes."""
import asyncio
import gc
import sys

import pytest

from support import run_forever_guarded


def iterate(loop):
    """Run exactly one iteration of the loop."""
    loop.call_soon(loop.stop)
    run_forever_guarded(loop)


def state(loop, handles):
    return (loop._timer_cancelled_count,
            sum(h._scheduled for h in handles),
            sum(h.cancelled() for h in handles))


def check_pending(loop, handles):
    """tideloop's stats() counts the live timers in the heap."""
    if hasattr(loop, "stats"):
        live = sum(h._scheduled and not h.cancelled() for h in handles)
        assert loop.stats()["timers_pending"] == live


def cancel_pattern(n, pattern, ncancel):
    """Indices (by deadline rank) of the timers to cancel."""
    if pattern == "head":
        return list(range(ncancel))
    if pattern == "tail":
        return list(range(n - ncancel, n))
    # Spread out, the earliest timer kept.
    return [1 + (i * (n - 1)) // ncancel for i in range(ncancel)]


@pytest.mark.parametrize("n,ncancel", [
    (100, 60), (100, 100), (101, 50), (101, 51), (200, 100), (200, 101),
    (1000, 999), (1000, 400)])
@pytest.mark.parametrize("pattern", ["head", "tail", "spread"])
def test_cancel_many_counts_like_asyncio(compare, n, ncancel, pattern):
    def scenario(loop):
        trace = []
        fired = []
        base = loop.time() + 1000
        # Made in an order unlike their deadlines' (7919 is prime).
        ranks = [i * 7919 % n for i in range(n)]
        by_rank = {}
        for r in ranks:
            by_rank[r] = loop.call_at(base + r * 0.001, fired.append, r)
        handles = [by_rank[r] for r in range(n)]
        for r in cancel_pattern(n, pattern, ncancel):
            handles[r].cancel()
        trace.append(("cancelled", state(loop, handles)))
        iterate(loop)
        trace.append(("one iteration", state(loop, handles)))
        check_pending(loop, handles)
        iterate(loop)
        trace.append(("two iterations", state(loop, handles)))
        # Cancel the rest but one, from a callback this time.
        loop.call_soon(lambda: [h.cancel() for h in handles[:-1]])
        iterate(loop)
        trace.append(("rest cancelled", state(loop, handles)))
        iterate(loop)
        trace.append(("after", state(loop, handles)))
        check_pending(loop, handles)
        trace.append(("fired", fired))
        trace.append(("scheduled flags", [h._scheduled for h in handles]))
        return trace

    compare(scenario)


def test_cancel_front_timer(compare):
    def scenario(loop):
        trace = []
        base = loop.time() + 1000
        handles = [loop.call_at(base + i, trace.append, i) for i in range(5)]
        handles[0].cancel()
        trace.append(state(loop, handles))
        iterate(loop)
        trace.append(state(loop, handles))
        trace.append(handles[0]._scheduled)
        # The new front, and one behind it.
        handles[1].cancel()
        handles[3].cancel()
        iterate(loop)
        trace.append(state(loop, handles))
        check_pending(loop, handles)
        handles[2].cancel()
        iterate(loop)
        trace.append(state(loop, handles))
        trace.append([h._scheduled for h in handles])
        check_pending(loop, handles)
        return trace

    compare(scenario)


def test_equal_when_with_cancelled(compare):
    def scenario(loop):
        trace = []
        fired = []
        when = loop.time() - 1
        handles = [loop.call_at(when, fired.append, i) for i in range(8)]
        for i in (0, 3, 5):
            handles[i].cancel()
        trace.append(state(loop, handles))
        iterate(loop)
        trace.append(state(loop, handles))
        # asyncio's order of equal deadlines is undefined (tideloop's is
        # the order they were scheduled in): compare the set.
        trace.append(sorted(fired))
        return trace

    assert compare(scenario)[-1] == [1, 2, 4, 6, 7]


def test_cancel_from_callback(compare):
    def scenario(loop):
        trace = []
        now = loop.time()
        later = loop.call_at(now + 1000, trace.append, "later")
        due = loop.call_at(now - 1, trace.append, "due")

        def first():
            trace.append(("first", state(loop, handles)))
            # Already out of the heap (due this iteration): not counted.
            due.cancel()
            # Still in it.
            later.cancel()
            trace.append(("cancelled", state(loop, handles)))

        first_h = loop.call_at(now - 2, first)
        handles = [later, due, first_h]
        iterate(loop)
        trace.append(("after", state(loop, handles)))
        iterate(loop)
        trace.append(("next", state(loop, handles)))
        check_pending(loop, handles)
        return trace

    trace = compare(scenario)
    assert "due" not in trace


def test_cancel_after_firing(compare):
    def scenario(loop):
        trace = []
        h = loop.call_at(loop.time() - 1, trace.append, "ran")
        other = loop.call_at(loop.time() + 1000, trace.append, "never")
        iterate(loop)
        trace.append(state(loop, [h, other]))
        h.cancel()
        trace.append(state(loop, [h, other]))
        iterate(loop)
        trace.append(state(loop, [h, other]))
        check_pending(loop, [h, other])
        return trace

    compare(scenario)


def test_cancelled_timer_due_behind_a_live_one(compare):
    # asyncio does not uncount a cancelled timer that leaves the heap as due
    # (behind a live one, so not dropped at the front first): its
    # _timer_cancelled_count stays one above the heap's until a rebuild.
    def scenario(loop):
        trace = []
        now = loop.time()
        live = loop.call_at(now - 2, trace.append, "live")
        dead = loop.call_at(now - 1, trace.append, "dead")
        dead.cancel()
        handles = [live, dead]
        trace.append(state(loop, handles))
        iterate(loop)
        trace.append(state(loop, handles))
        # Enough new timers, over half of them cancelled, for a rebuild.
        more = [loop.call_at(now + 1000 + i, trace.append, i)
                for i in range(120)]
        for h in more[1::2]:
            h.cancel()
        iterate(loop)
        trace.append(state(loop, handles + more))
        more[0].cancel()
        iterate(loop)
        trace.append(state(loop, handles + more))
        return trace

    compare(scenario)


def test_timer_cancelled_count_is_read_only(kind, loop):
    if kind == "asyncio":
        pytest.skip("a plain attribute on asyncio")
    with pytest.raises(AttributeError):
        loop._timer_cancelled_count = 5


@pytest.mark.watchdog(120)
def test_call_later_cancel_flood_is_bounded(kind, loop):
    # A million call_later()+cancel() with the loop iterating now and then,
    # behind a live timer: the rebuild keeps the heap (and so memory)
    # bounded.
    n = 1_000_000 if kind == "tideloop" else 200_000
    batch = 1000
    peak = []

    def noop():
        pass

    async def flood():
        # A live timer at the front: only the rebuild can drop the others.
        front = loop.call_later(500, noop)
        call_later = loop.call_later
        for _ in range(n // batch):
            for _ in range(batch):
                call_later(1000, noop).cancel()
            await asyncio.sleep(0)
            peak.append(loop._timer_cancelled_count)
        front.cancel()

    # Warm up (the heap's array grows to its size once), then measure.
    loop.run_until_complete(flood())
    gc.collect()
    blocks = sys.getallocatedblocks()
    peak.clear()
    loop.run_until_complete(flood())
    gc.collect()
    grown = sys.getallocatedblocks() - blocks
    assert max(peak) <= batch + 1
    assert grown < 1000, grown
    if kind == "asyncio":
        assert len(loop._scheduled) <= batch
    else:
        assert loop.stats()["timers_pending"] == 0


def test_atomic_args_tuple_untracked(kind, loop):
    # A timer's args of objects the GC does not track (ints, strings, None)
    # are a tuple in no cycle: tideloop leaves it untracked from the start
    # (CPython's GC would untrack it at its first pass).
    if kind == "asyncio":
        pytest.skip("tideloop's handles")
    h = loop.call_later(1000, print, 1, "x", None, 2.5)
    assert not gc.is_tracked(h._args)
    # A list may come to hold the handle: that tuple stays tracked.
    h2 = loop.call_later(1000, print, [])
    assert gc.is_tracked(h2._args)
    h2.cancel()
    h.cancel()
