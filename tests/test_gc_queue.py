"""The GC and the ready queue: tideloop untracks queued handles (and their
context copies) while the loop runs (ext/loop.h, loop_gc_untrack).  Whatever
outlives the queue, or stays queued when run() returns, must be tracked
again: else a cycle through it is never freed.  Each test checks, on stock
asyncio and on tideloop, that the GC frees such a cycle."""
import asyncio
import contextvars
import gc
import weakref

from support import collected, run_forever_guarded

VAR = contextvars.ContextVar("VAR")


class Holder:
    pass


def test_unclosed_loop_with_queued_handles_is_collected(loop_factory):
    # A callback stops the loop and queues one more: run() returns with a
    # handle in the queue (it points back to the loop: a cycle).  Dropped
    # without close(), the loop must still be freed by the GC.
    loop = loop_factory()

    def stop_and_queue():
        loop.stop()
        loop.call_soon(lambda: None)

    loop.call_soon(stop_and_queue)
    run_forever_guarded(loop)
    ref = weakref.ref(loop)
    del loop
    assert collected(ref)


def run_posted_then_collect(loop, post):
    """Runs the loop with post() as its first callback (post() stops it,
    directly or not), then collects."""
    loop.call_soon(post)
    run_forever_guarded(loop)
    gc.collect()


def test_cycle_through_a_kept_handle_and_its_context_is_collected(loop):
    # Posted while the loop runs (so it waits untracked in the queue), the
    # handle is kept by an object that its own context holds:
    # holder -> handle -> context -> holder.
    refs = []

    def cb(holder):
        VAR.set(holder)

    def post():
        holder = Holder()
        holder.handle = loop.call_soon_threadsafe(cb, holder)
        refs.append(weakref.ref(holder))
        loop.call_soon(loop.stop)

    run_posted_then_collect(loop, post)
    assert len(refs) == 1 and refs[0]() is None


def test_cycle_through_a_dead_handles_context_is_collected(loop):
    # The handle dies after its run; its context lives on in a cycle the
    # callback made: context -> holder -> context.
    refs = []

    def cb():
        holder = Holder()
        holder.ctx = contextvars.copy_context()
        VAR.set(holder)
        refs.append(weakref.ref(holder))
        loop.stop()

    def post():
        loop.call_soon(cb)

    run_posted_then_collect(loop, post)
    assert len(refs) == 1 and refs[0]() is None


def test_gc_during_a_flood_loses_and_reorders_nothing(loop):
    # Collections while handles wait untracked in the queue.
    n = 5000
    got = []

    def cb(i):
        got.append(i)
        if i % 500 == 0:
            gc.collect()
        if i == n - 1:
            loop.stop()

    def post():
        for i in range(n):
            loop.call_soon(cb, i)

    loop.call_soon(post)
    run_forever_guarded(loop)
    assert got == list(range(n))


# call_soon() makes its handle untracked when the queue of a running loop
# takes it at once (ext/schedule.c, rq_adopt in ext/loop.h), and a handle
# remembers whether its context copy went untracked (ctx_untracked): the
# escapes below must still end tracked, as stock asyncio's handles are.

OTHER = contextvars.ContextVar("OTHER")


def test_call_soon_handle_kept_in_a_cycle_is_collected(loop):
    # holder -> handle -> its argument, holder: the handle ran and lives on.
    refs = []

    def post():
        holder = Holder()
        holder.handle = loop.call_soon(lambda h: None, holder)
        refs.append(weakref.ref(holder))
        loop.call_soon(loop.stop)

    run_posted_then_collect(loop, post)
    assert len(refs) == 1 and refs[0]() is None


def test_escaped_handles_and_contexts_are_tracked(compare):
    # Kept handles and their context copies, made before run(), while it
    # runs (then run, or still queued when it returns): all tracked.
    # (_context: get_context() is 3.12's.)
    def scenario(loop):
        kept = {}

        def post():
            OTHER.set("copy")     # a non-empty context: a real copy
            kept["ran"] = loop.call_soon(lambda: None)
            loop.call_soon(loop.stop)

        def stop():
            kept["queued"] = loop.call_soon(lambda: None)

        kept["before"] = loop.call_soon(post)
        kept["before_tracked"] = gc.is_tracked(kept["before"])
        loop.call_soon(lambda: loop.call_soon(stop))
        run_forever_guarded(loop)
        return [(name, gc.is_tracked(h), gc.is_tracked(h._context))
                for name, h in sorted(kept.items())
                if name != "before_tracked"] + [kept["before_tracked"]]

    assert compare(scenario, min_events=3) == [
        ("before", True, True), ("queued", True, True),
        ("ran", True, True), True]


def test_cycle_through_a_dead_handles_own_context_copy_is_collected(loop):
    # The handle's own copy of a non-empty context (untracked while it
    # waits) outlives the handle in a cycle: context -> holder -> context.
    refs = []

    def cb(holder):
        VAR.set(holder)        # the handle's context -> holder
        loop.stop()

    def post():
        OTHER.set("copy")
        holder = Holder()
        handle = loop.call_soon(cb, holder)
        holder.ctx = handle._context    # holder -> the context
        refs.append(weakref.ref(holder))

    run_posted_then_collect(loop, post)
    assert len(refs) == 1 and refs[0]() is None
