"""The GC and the timer heap: tideloop untracks the timers in its heap (and
their context copies) while the loop runs (ext/loop.h, loop_gc_untrack).
Whatever the heap lets go of while it lives on (a cancelled timer dropped
by the prune, at the head or by the rebuild), and every timer still in the
heap when run() returns, must be tracked again: else a cycle through it is
never freed.  Each test runs on stock asyncio and on tideloop; the GC state
they check after run() returns is stock asyncio's."""
import asyncio
import contextvars
import gc
import sysconfig
import weakref

import pytest

from support import collected, import_tideloop, run_forever_guarded

VAR = contextvars.ContextVar("VAR")

# asyncio's _MIN_SCHEDULED_TIMER_HANDLES: above it, a heap that is over
# half cancelled is rebuilt without the cancelled timers.
MIN_SCHEDULED = 100


class Holder:
    pass


def cb(*args):
    pass


def non_empty_context():
    # Timers made in a non-empty context get a copy of it of their own
    # (tideloop shares no context then), which the heap untracks with them.
    ctx = contextvars.Context()
    ctx.run(VAR.set, "outer")
    return ctx


def holder_cycle(loop, delay):
    """A timer in the cycle holder -> timer -> its context -> holder, made
    while the loop runs.  Returns a weak reference to the holder."""
    holder = Holder()
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, holder)
    holder.timer = loop.call_later(delay, cb, context=ctx)
    return weakref.ref(holder), holder.timer


def run_then_stop(loop, setup, context=None):
    loop.call_soon(setup, context=context)
    run_forever_guarded(loop)


def stop_by_exit(loop):
    loop.call_soon(lambda: (_ for _ in ()).throw(SystemExit(3)))


@pytest.mark.parametrize("how", ["stop", "exit"])
def test_heap_timers_are_tracked_when_run_returns(loop, how):
    # A live timer, a cancelled one still in the heap (a later deadline
    # than the live one: no prune drops it) and their own context copies;
    # run() returns normally or with the SystemExit of a callback.
    got = {}

    def setup():
        got["live"] = loop.call_later(100, cb)
        got["cancelled"] = loop.call_later(200, cb, 1)
        got["cancelled"].cancel()
        if how == "stop":
            loop.call_soon(loop.stop)
        else:
            stop_by_exit(loop)

    if how == "stop":
        run_then_stop(loop, setup, non_empty_context())
    else:
        with pytest.raises(SystemExit):
            run_then_stop(loop, setup, non_empty_context())
    assert got["live"]._scheduled and got["cancelled"]._scheduled
    for timer in got.values():
        assert gc.is_tracked(timer)
        assert gc.is_tracked(timer._context)
        assert timer._context[VAR] == "outer"


def test_unclosed_loop_with_timers_is_collected(loop_factory):
    # run() returns with timers in the heap (each points back to the loop:
    # a cycle).  Dropped without close(), the loop must still be freed by
    # the GC.
    loop = loop_factory()

    def setup():
        loop.call_later(100, cb)
        loop.call_later(200, cb).cancel()
        loop.call_soon(loop.stop)

    run_then_stop(loop, setup, non_empty_context())
    ref = weakref.ref(loop)
    del loop
    assert collected(ref)


def test_cycle_through_a_timer_pruned_at_the_head_is_collected(loop):
    # The cancelled timer is the earliest: the next iteration drops it,
    # while the loop runs; the holder keeps it alive.
    refs = []

    def setup():
        ref, timer = holder_cycle(loop, 100)
        timer.cancel()
        refs.append(ref)
        loop.call_soon(loop.stop)

    run_then_stop(loop, setup)
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None


def test_cycle_through_a_timer_dropped_by_the_rebuild_is_collected(loop):
    # Over half of more than MIN_SCHEDULED timers are cancelled, behind a
    # live one at the head: the next iteration rebuilds the heap without
    # them.  One of them is in a cycle.
    refs = []
    got = {}

    def setup():
        got["head"] = loop.call_later(50, cb)
        timers = [loop.call_later(100 + i, cb) for i in range(MIN_SCHEDULED)]
        ref, timer = holder_cycle(loop, 150)
        refs.append(ref)
        for t in timers:
            t.cancel()
        timer.cancel()
        loop.call_soon(loop.stop)

    run_then_stop(loop, setup)
    assert loop._timer_cancelled_count == 0   # rebuilt (as asyncio)
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None
    assert gc.is_tracked(got["head"])


def test_cycle_through_a_timers_own_context_copy_is_collected(loop):
    # The timer's context is the copy made for it (nobody else held it
    # when the heap took the timer); then the holder goes into that very
    # context: holder -> timer -> its context -> holder.
    refs = []

    def setup():
        holder = Holder()
        holder.timer = loop.call_later(100, cb)
        holder.timer._context.run(VAR.set, holder)
        holder.timer.cancel()
        refs.append(weakref.ref(holder))
        loop.call_soon(loop.stop)

    run_then_stop(loop, setup, non_empty_context())
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None


def test_cycle_through_a_timer_left_in_the_heap_is_collected_at_close(loop):
    # Neither due nor cancelled when run() returns; close() drops it.
    refs = []

    def setup():
        holder = Holder()
        holder.timer = loop.call_later(100, cb)
        holder.timer._context.run(VAR.set, holder)
        refs.append(weakref.ref(holder))
        loop.call_soon(loop.stop)

    run_then_stop(loop, setup, non_empty_context())
    gc.collect()
    assert refs[0]() is not None          # the loop's heap holds it
    loop.close()
    gc.collect()
    assert refs[0]() is None


def test_dropped_timers_and_their_context_copies_die_cleanly(loop):
    # Timers nobody else holds die where the heap lets go of them: pruned
    # at the head (the first third, cancelled at once), dropped by the
    # rebuild (the rest, cancelled later), or after they ran; their
    # context copies (untracked with them) die with them.
    n = 3 * MIN_SCHEDULED
    fired = []
    refs = []
    dead_after_head_prune = []

    def fire(i):
        fired.append(i)

    def setup():
        loop.call_later(0, fire, -1)
        timers = [loop.call_later(100 + i, fire, i) for i in range(n)]
        refs.extend(weakref.ref(t) for t in timers)
        for t in timers[: n // 3]:
            t.cancel()
        # Iteration 2 runs fire(-1) (the live head); iteration 3 starts
        # by dropping the cancelled timers now at the head.
        loop.call_soon(loop.call_soon, cancel_rest)

    def cancel_rest():
        loop.call_soon(loop.stop)
        dead_after_head_prune.append(sum(r() is None for r in refs))
        for r in refs:
            t = r()
            if t is not None:
                t.cancel()

    run_then_stop(loop, setup, non_empty_context())
    assert fired == [-1]
    assert dead_after_head_prune == [n // 3]
    assert all(r() is None for r in refs)


def test_gc_while_timers_wait_and_fire_loses_and_reorders_nothing(loop):
    # Collections while timers wait untracked in the heap, some of them
    # cancelled on the way, the others firing in deadline order.
    n = 2000
    got = []
    whens = {}

    def fire(i):
        got.append(i)
        if i % 200 == 0:
            gc.collect()

    def setup():
        timers = [loop.call_later(0.001 * (i % 7), fire, i)
                  for i in range(n)]
        whens.update((i, t.when()) for i, t in enumerate(timers))
        for t in timers[::3]:
            t.cancel()
        gc.collect()
        loop.call_later(0.05, loop.stop)

    run_then_stop(loop, setup, non_empty_context())
    assert sorted(got) == [i for i in range(n) if i % 3]
    fired_whens = [whens[i] for i in got]
    assert fired_whens == sorted(fired_whens)


@pytest.mark.tideloop_only
@pytest.mark.skipif(bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
                    reason="free-threaded builds keep every handle tracked")
def test_the_heap_untracks_its_timers_only_while_the_loop_runs():
    # What the tests above guard: the untracking itself (the GC time it
    # saves is the timers_churn row's).  Timers scheduled outside run()
    # stay tracked; those scheduled inside are not tracked until run()
    # returns.
    loop = import_tideloop().new_event_loop()
    try:
        before = loop.call_later(100, cb)
        seen = {}

        def setup():
            inside = loop.call_later(100, cb)
            seen["inside"] = gc.is_tracked(inside)
            seen["context"] = gc.is_tracked(inside._context)
            seen["before"] = gc.is_tracked(before)
            seen["timer"] = inside
            loop.call_soon(loop.stop)

        run_then_stop(loop, setup, non_empty_context())
        assert seen.pop("timer") is not None
        assert seen == {"inside": False, "context": False, "before": True}
        assert gc.is_tracked(before)
    finally:
        loop.close()
