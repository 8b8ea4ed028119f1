"""Order in which callbacks and timers run; stop(); run_until_complete()."""
import asyncio
import time

from support import attempt, exc_event, run_forever_guarded, run_until


def test_call_soon_fifo(compare):
    def scenario(loop):
        trace = []
        for i in range(20):
            loop.call_soon(trace.append, i)
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return trace

    assert compare(scenario) == list(range(20))


def test_callbacks_scheduled_during_iteration_run_next_iteration(compare):
    def scenario(loop):
        trace = []

        def a():
            trace.append("a")
            loop.call_soon(trace.append, "a-child")

        loop.call_soon(a)
        loop.call_soon(trace.append, "b")
        # stop() lets this iteration finish: a and b run, a-child must wait.
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        trace.append("-- stopped")
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return trace

    assert compare(scenario) == ["a", "b", "-- stopped", "a-child"]


def test_self_rescheduling_callbacks_interleave(compare):
    def scenario(loop):
        trace = []

        def step(name, n):
            trace.append((name, n))
            if n < 3:
                loop.call_soon(step, name, n + 1)
            elif name == "y":
                loop.stop()

        loop.call_soon(step, "x", 0)
        loop.call_soon(step, "y", 0)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert trace[:4] == [("x", 0), ("y", 0), ("x", 1), ("y", 1)]


def test_timers_fire_in_time_order(compare):
    def scenario(loop):
        trace = []
        base = loop.time()
        loop.call_at(base + 0.04, trace.append, "c")
        loop.call_at(base + 0.01, trace.append, "a")
        loop.call_later(0.03, trace.append, "b2")
        loop.call_at(base + 0.02, trace.append, "b")
        loop.call_at(base + 0.05, loop.stop)
        run_forever_guarded(loop)
        return trace

    assert compare(scenario) == ["a", "b", "b2", "c"]


def test_equal_time_timers_fire_in_one_iteration(compare, kind):
    # asyncio documents the order of timers with exactly the same time as
    # undefined (its heapq is not stable: 4 equal timers run as 0, 2, 1, 3),
    # so only the set is compared; every one of them must run before a
    # callback scheduled by the first of them.
    orders = []

    def scenario(loop):
        trace = []
        order = []
        when = loop.time() + 0.01

        def next_iteration():
            trace.append("next-iteration")
            if trace.count("next-iteration") == 6:
                loop.call_later(0.01, trace.append, "later")
                loop.call_later(0.02, loop.stop)

        def cb(i):
            order.append(i)
            trace.append("timer")
            loop.call_soon(next_iteration)

        for i in range(6):
            loop.call_at(when, cb, i)
        run_forever_guarded(loop)
        orders.append(order)
        return trace + [sorted(order)]

    trace = compare(scenario)
    assert trace[:7] == ["timer"] * 6 + ["next-iteration"]
    if kind == "tideloop":
        # DESIGN.md: timers become ready in (when, sequence) order.  The
        # candidate run is the last one.
        assert orders[-1] == list(range(6))


def test_call_later_zero_vs_call_soon(compare):
    def scenario(loop):
        trace = []
        loop.call_soon(trace.append, "s1")
        loop.call_later(0, trace.append, "t1")
        loop.call_soon(trace.append, "s2")
        loop.call_later(0, trace.append, "t2")
        loop.call_soon(trace.append, "s3")
        loop.call_later(-1, trace.append, "t-neg")

        def inner_t():
            trace.append("inner-t")
            loop.stop()

        def inner():
            trace.append("inner")
            loop.call_later(0, inner_t)
            loop.call_soon(trace.append, "inner-s")

        loop.call_soon(inner)
        # A timer that is not due: it must not run among the due ones.  (A
        # short delay would make the trace depend on the machine's speed.)
        late = loop.call_later(3600, trace.append, "t-later")
        run_forever_guarded(loop)
        late.cancel()
        return trace

    trace = compare(scenario)
    # Already-ready callbacks run before the timers that became due.
    assert trace == ["s1", "s2", "s3", "inner", "t-neg", "t1", "t2",
                     "inner-s", "inner-t"]


def test_timer_callback_schedules_call_soon(compare):
    def scenario(loop):
        trace = []

        def soon(name):
            trace.append(name)
            if name == "t2-soon":
                loop.stop()

        def timer_cb(name):
            trace.append(name)
            loop.call_soon(soon, name + "-soon")

        when = loop.time() + 0.01
        loop.call_at(when, timer_cb, "t1")
        loop.call_at(when, timer_cb, "t2")
        run_forever_guarded(loop)
        return trace

    assert compare(scenario) == ["t1", "t2", "t1-soon", "t2-soon"]


def test_stop_before_run_forever_runs_one_iteration(compare):
    def scenario(loop):
        trace = []

        def a():
            trace.append("a")
            loop.call_soon(trace.append, "a-child")

        loop.call_soon(a)
        loop.stop()
        loop.call_soon(trace.append, "b")
        t0 = time.monotonic()
        # A far timer must not make the stopped loop block.
        far = loop.call_later(30, trace.append, "far")
        run_forever_guarded(loop)
        trace.append(("returned promptly", time.monotonic() - t0 < 1.0))
        trace.append(("running after", loop.is_running()))
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        far.cancel()
        return trace

    assert compare(scenario) == [
        "a", "b", ("returned promptly", True), ("running after", False),
        "a-child"]


def test_stop_inside_callback_finishes_iteration(compare):
    def scenario(loop):
        trace = []

        def stopper():
            trace.append("stopper")
            loop.stop()
            loop.call_soon(trace.append, "scheduled-after-stop")

        loop.call_soon(trace.append, "before")
        loop.call_soon(stopper)
        loop.call_soon(trace.append, "after")
        loop.call_later(0, trace.append, "timer-due")
        run_forever_guarded(loop)
        trace.append("-- returned")
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert trace[:4] == ["before", "stopper", "after", "timer-due"]
    assert trace[4:] == ["-- returned", "scheduled-after-stop"]


def test_stop_twice_and_restart(compare):
    def scenario(loop):
        trace = []
        loop.stop()
        loop.stop()
        run_forever_guarded(loop)
        trace.append("first run returned")
        # The stop request was consumed: the next run needs its own stop.
        loop.call_later(0.02, trace.append, "timer")
        loop.call_later(0.03, loop.stop)
        run_forever_guarded(loop)
        trace.append("second run returned")
        return trace

    assert compare(scenario) == ["first run returned", "timer",
                                 "second run returned"]


def test_run_until_complete_results_and_exceptions(compare):
    def scenario(loop, new_loop):
        trace = []

        async def value():
            await asyncio.sleep(0)
            return 42

        async def boom():
            await asyncio.sleep(0)
            raise ValueError("boom")

        class Awaitable:
            def __await__(self):
                yield from asyncio.sleep(0).__await__()
                return "awaitable"

        trace.append(("coro", loop.run_until_complete(value())))
        trace.append(("task", loop.run_until_complete(
            loop.create_task(value()))))
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "fut")
        trace.append(("future", loop.run_until_complete(fut)))
        trace.append(("done future", loop.run_until_complete(fut)))
        trace.append(("awaitable", loop.run_until_complete(Awaitable())))
        try:
            loop.run_until_complete(boom())
        except ValueError as exc:
            trace.append(("coro raised",) + exc_event(exc))
        cancelled = loop.create_future()
        loop.call_soon(cancelled.cancel)
        try:
            loop.run_until_complete(cancelled)
        except asyncio.CancelledError:
            trace.append("cancelled future raised CancelledError")
        foreign = new_loop().create_future()
        attempt(trace, "foreign future", loop.run_until_complete, foreign)
        attempt(trace, "non-awaitable", loop.run_until_complete, 42)
        attempt(trace, "None", loop.run_until_complete, None)
        trace.append(("usable", loop.run_until_complete(value())))
        return trace

    trace = compare(scenario)
    assert trace[0] == ("coro", 42)
    assert trace[-4][:3] == ("raised", "foreign future", "ValueError")
    assert trace[-3][:3] == ("raised", "non-awaitable", "TypeError")


def test_run_until_complete_stopped_before_done(compare):
    def scenario(loop):
        trace = []

        async def stops_loop():
            loop.stop()
            await asyncio.sleep(10)

        coro = stops_loop()
        attempt(trace, "stopped", loop.run_until_complete, coro)
        coro.close()
        loop.stop()
        fut = loop.create_future()
        attempt(trace, "stopped before start", loop.run_until_complete, fut)
        trace.append(("usable", run_until(loop, asyncio.sleep(0, "ok"))))
        return trace

    trace = compare(scenario)
    assert trace[0] == ("raised", "stopped", "RuntimeError",
                        "Event loop stopped before Future completed.")


def test_tasks_interleave_like_stock(compare):
    def scenario(loop):
        trace = []

        async def worker(name, n):
            for i in range(n):
                trace.append((name, i))
                await asyncio.sleep(0)
            return name

        async def main():
            tasks = [loop.create_task(worker(n, 3)) for n in "abc"]
            loop.call_soon(trace.append, "callback")
            trace.append(("gather", await asyncio.gather(*tasks)))

        run_until(loop, main())
        return trace

    trace = compare(scenario)
    assert trace[:4] == [("a", 0), ("b", 0), ("c", 0), "callback"]


def test_running_loop_registration(compare):
    def scenario(loop):
        trace = []
        attempt(trace, "get_running_loop outside", asyncio.get_running_loop)
        trace.append(("is_running outside", loop.is_running()))
        trace.append(("repr idle", repr(loop)))

        def cb():
            trace.append(("running loop is loop",
                          asyncio.get_running_loop() is loop))
            trace.append(("get_event_loop is loop",
                          asyncio.get_event_loop() is loop))
            trace.append(("is_running inside", loop.is_running()))
            trace.append(("no current_task in callback",
                          asyncio.current_task() is None))
            trace.append(("repr running", repr(loop)))

        async def coro():
            cb()
            trace.append(("current_task in task",
                          asyncio.current_task() is task))

        loop.call_soon(cb)
        task = loop.create_task(coro())
        run_until(loop, task)
        attempt(trace, "get_running_loop after", asyncio.get_running_loop)
        loop.close()
        trace.append(("repr closed", repr(loop)))
        return trace

    trace = compare(scenario)
    assert ("running loop is loop", True) in trace


def test_timers_are_not_starved_by_busy_callbacks(loop):
    # A callback that always reschedules itself keeps the ready queue
    # non-empty; timers must still fire (each iteration moves due timers).
    # Counted in iterations, not seconds: once busy() has seen the timer
    # due, it runs in that iteration or the next (busy() runs first in each
    # iteration, being queued before the due timers are moved).
    spins = []
    due_seen = []
    fired = []

    def busy():
        spins.append(1)
        if not due_seen and loop.time() >= timer.when():
            due_seen.append(len(spins))
        loop.call_soon(busy)

    def fire():
        fired.append(len(spins))
        loop.stop()

    loop.call_soon(busy)
    timer = loop.call_later(0.02, fire)
    run_forever_guarded(loop)
    assert fired and due_seen, (fired, due_seen)
    assert due_seen[0] <= fired[0] <= due_seen[0] + 1, (due_seen, fired)
