"""Handle / TimerHandle behaviour: cancel(), cancelled(), when(), repr,
comparisons, get_context().

tideloop's handles are not asyncio.Handle instances (a known difference), so
only behaviour is compared, never isinstance.
"""
import asyncio
import contextvars
import functools
import re

import pytest

from support import PY, attempt, run_forever_guarded


def cb(*args):
    pass


class Owner:
    def method(self, x):
        pass


def test_cancel_before_run(compare):
    def scenario(loop):
        trace = []
        h1 = loop.call_soon(trace.append, "h1")
        h2 = loop.call_soon(trace.append, "h2")
        h3 = loop.call_soon(trace.append, "h3")
        trace.append(("cancelled before", h2.cancelled()))
        h2.cancel()
        h2.cancel()  # idempotent
        trace.append(("cancelled after", h2.cancelled(), h1.cancelled()))
        t1 = loop.call_later(0.01, trace.append, "t1")
        t2 = loop.call_later(0.01, trace.append, "t2")
        t3 = loop.call_later(0.02, trace.append, "t3")
        t2.cancel()
        trace.append(("timer cancelled", t2.cancelled(), t1.cancelled()))
        loop.call_later(0.03, loop.stop)
        run_forever_guarded(loop)
        # Cancelling after the handle ran only flips the flag.
        h3.cancel()
        t3.cancel()
        trace.append(("cancel after run", h3.cancelled(), t3.cancelled()))
        return trace

    assert compare(scenario) == [
        ("cancelled before", False), ("cancelled after", True, False),
        ("timer cancelled", True, False), "h1", "h3", "t1", "t3",
        ("cancel after run", True, True)]


def test_cancel_from_earlier_callback_in_same_iteration(compare):
    # The victims already sit in the ready queue when they are cancelled:
    # they must be skipped all the same.
    def scenario(loop):
        trace = []
        victims = []

        def canceller(name):
            trace.append(name)
            victims.pop(0).cancel()

        loop.call_soon(canceller, "soon canceller")
        victims.append(loop.call_soon(trace.append, "soon victim"))
        loop.call_soon(trace.append, "soon survivor")
        when = loop.time() + 0.01
        loop.call_at(when, canceller, "timer canceller")
        victims.append(loop.call_at(when, trace.append, "timer victim"))
        loop.call_at(when + 0.0001, trace.append, "timer survivor")
        loop.call_later(0.05, loop.stop)
        run_forever_guarded(loop)
        return trace

    assert compare(scenario) == ["soon canceller", "soon survivor",
                                 "timer canceller", "timer survivor"]


def test_when_returns_the_value_given(compare):
    def scenario(loop):
        trace = []
        for when in (100, 100.5, 0, -5, 2 ** 40):
            h = loop.call_at(when, cb)
            trace.append((repr(when), repr(h.when()),
                          type(h.when()).__name__, h.when() is when
                          or h.when() == when))
            h.cancel()
            trace.append(("after cancel", repr(h.when())))
        t0 = loop.time()
        h = loop.call_later(10, cb)
        trace.append(("call_later when", type(h.when()).__name__,
                      t0 + 10 <= h.when() <= loop.time() + 10))
        h.cancel()
        h = loop.call_later(0, cb)
        trace.append(("call_later(0) is a timer with when()",
                      h.when() <= loop.time()))
        return trace

    assert compare(scenario)[0] == ("100", "100", "int", True)


def test_handle_repr(compare):
    def scenario(loop):
        trace = []
        owner = Owner()
        h = loop.call_soon(cb, 1, "two")
        trace.append(repr(h))
        trace.append(str(h))
        h.cancel()
        trace.append(repr(h))
        for callback in (functools.partial(cb, 1), owner.method, print,
                         lambda: None):
            h = loop.call_soon(callback)
            trace.append(repr(h))
            h.cancel()
        t = loop.call_at(1000.0, cb, "x")
        trace.append(repr(t))
        t.cancel()
        trace.append(repr(t))
        t = loop.call_at(1000, cb)
        trace.append(repr(t))
        t.cancel()
        trace.append(repr(t))
        return trace

    trace = compare(scenario)
    assert trace[0].startswith("<Handle cb(")
    assert trace[2] == "<Handle cancelled>"


def test_handle_repr_debug(compare):
    def scenario(loop):
        trace = []
        loop.set_debug(True)
        h = loop.call_soon(cb, 1, "two")  # "created at" this line
        trace.append(repr(h))
        h.cancel()
        # asyncio keeps the repr of the live handle in debug mode.
        trace.append(repr(h))
        t = loop.call_at(1000.0, cb)
        trace.append(repr(t))
        t.cancel()
        trace.append(repr(t))
        t = loop.call_later(1000.0, cb)
        trace.append(re.sub(r"when=[-\d.e+]+", "when=T", repr(t)))
        t.cancel()
        h = loop.call_soon_threadsafe(cb)
        trace.append(repr(h))
        h.cancel()

        def inside():
            trace.append(repr(loop.call_soon(cb)))
            loop.stop()

        loop.call_soon(inside)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert " created at " in trace[0] and "test_handles.py:" in trace[0]


def test_timer_handle_comparisons(compare):
    def scenario(loop):
        trace = []
        a = loop.call_at(10, cb)
        b = loop.call_at(20, cb)
        c = loop.call_at(10, cb)
        d = loop.call_at(10, cb, 1)
        trace.append(("a<b", a < b, "b<a", b < a, "a<=c", a <= c,
                      "b>a", b > a, "b>=a", b >= a, "a>=c", a >= c))
        trace.append(("a==c", a == c, "a==d", a == d, "a!=b", a != b,
                      "a==a", a == a, "a=='x'", a == "x"))
        trace.append(("hash", hash(a) == hash(10)))
        trace.append(("sorted", [x is y for x, y in
                                 zip(sorted([b, a]), [a, b])]))
        attempt(trace, "a < 5", lambda: a < 5)
        c.cancel()
        trace.append(("a==cancelled c", a == c))
        h = loop.call_soon(cb)
        h2 = loop.call_soon(cb)
        trace.append(("handle eq", h == h, h == h2, h != h2))
        for x in (a, b, d, h, h2):
            x.cancel()
        return trace

    trace = compare(scenario)
    assert trace[0][1] is True


@pytest.mark.skipif(PY < (3, 12), reason="Handle.get_context() is 3.12+")
def test_handle_get_context(compare):
    var = contextvars.ContextVar("var", default="default")

    def scenario(loop):
        trace = []
        ctx = contextvars.copy_context()
        h = loop.call_soon(cb, context=ctx)
        trace.append(("given", h.get_context() is ctx))
        h2 = loop.call_soon(cb)
        trace.append(("copied", isinstance(h2.get_context(),
                                           contextvars.Context),
                      h2.get_context() is not ctx))
        token = var.set("outer")
        h3 = loop.call_later(0, cb)
        var.reset(token)
        trace.append(("timer context snapshot", h3.get_context()[var]))
        for x in (h, h2, h3):
            x.cancel()
        return trace

    assert compare(scenario)[0] == ("given", True)


def test_handle_runs_only_once(compare):
    def scenario(loop):
        trace = []
        h = loop.call_soon(trace.append, "once")
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        trace.append(("cancelled", h.cancelled()))
        return trace

    assert compare(scenario) == ["once", ("cancelled", False)]


def test_handles_are_usable_after_loop_close(compare):
    def scenario(loop):
        trace = []
        h = loop.call_soon(cb)
        t = loop.call_at(1000, cb)
        loop.close()
        trace.append(("cancelled", h.cancelled(), t.cancelled()))
        h.cancel()
        t.cancel()
        trace.append(("cancelled after", h.cancelled(), t.cancelled()))
        trace.append(repr(t))
        return trace

    compare(scenario)


def test_stdlib_helpers_drive_handles(compare):
    # Library code passes handles around: e.g. asyncio.timeout() reschedules
    # with loop.call_at and cancels handles.
    def scenario(loop):
        trace = []

        async def main():
            try:
                await asyncio.wait_for(asyncio.sleep(10), 0.01)
            except asyncio.TimeoutError:
                trace.append("wait_for timed out")
            if PY >= (3, 11):
                try:
                    async with asyncio.timeout(0.01) as cm:
                        cm.reschedule(loop.time() + 0.02)
                        await asyncio.sleep(10)
                except TimeoutError:
                    trace.append("timeout() timed out")
                trace.append(("expired", cm.expired()))
            return "done"

        trace.append(loop.run_until_complete(main()))
        return trace

    assert compare(scenario)[0] == "wait_for timed out"


def test_many_cancelled_timers(compare):
    # asyncio drops cancelled timers from its heap lazily (and rebuilds it
    # when more than half are cancelled); only the live ones may run, in
    # time order.
    def one_round(loop, margin):
        trace = []
        base = loop.time() + margin
        # Distinct times (7919 is prime): equal-time order is undefined.
        handles = [loop.call_at(base + 0.00001 * (i * 7919 % 1000),
                                trace.append, i) for i in range(1000)]
        for i, h in enumerate(handles):
            if i % 10:
                h.cancel()
        in_time = []

        def schedule_new():
            # Valid only if no timer was due yet when this iteration
            # collected the due ones (before its callbacks ran).
            in_time.append(loop.time() + 0.001 < base)
            for n, x in enumerate(("new-a", "new-b")):
                loop.call_at(base + 0.0050005 + 0.00001 * n, trace.append, x)

        # Cancel some more from inside the loop, and schedule a few new ones.
        loop.call_soon(lambda: [h.cancel() for h in handles[::20]])
        loop.call_soon(schedule_new)
        loop.call_at(base + 0.05, loop.stop)
        run_forever_guarded(loop)
        trace.append(("cancelled count", sum(h.cancelled() for h in handles)))
        return trace if in_time == [True] else None

    def scenario(loop):
        # Every timer must still be in the future when the first iteration
        # runs, so that "new-a"/"new-b" sort among them.  How long making
        # 1000 timers takes is the machine's business: a round that was too
        # slow is seen (schedule_new) and run again with a larger margin.
        for margin in (0.05, 0.2, 0.8, 3.2, 12.8):
            trace = one_round(loop, margin)
            if trace is not None:
                return trace
        raise AssertionError("the first iteration never ran before the "
                             "timers were due")

    trace = compare(scenario)
    assert trace[-1] == ("cancelled count", 950)
    assert len(trace) == 50 + 2 + 1


class DuckContext:
    """Not a contextvars.Context: asyncio calls its run(callback, *args)."""

    def __init__(self, trace):
        self.trace = trace

    def run(self, callback, *args):
        self.trace.append(("duck run", len(args)))
        return callback(*args)


def test_one_argument_handles(compare):
    # tideloop keeps a lone argument without a tuple and makes _args when
    # it is read: what the callback gets, _args (a tuple, the same one at
    # each read), repr and equality stay asyncio's.
    def scenario(loop):
        trace = []
        arg = ["the", "arg"]

        def got(x):
            trace.append(("got", x is arg or x))

        h = loop.call_soon(got, arg)
        trace.append(repr(h))
        args = h._args
        trace.append((type(args).__name__, len(args), args[0] is arg,
                      h._args is args, repr(h)))
        loop.call_soon(got, (1, 2))
        loop.call_soon(got, None, context=DuckContext(trace))
        one = loop.call_soon(got, "cancelled")
        one.cancel()
        trace.append(("cancelled _args", one._args))

        def reads_own_args(x):
            trace.append(("own _args", own._args, x))
            own.cancel()
            trace.append(("own _args after cancel", own._args, x))

        own = loop.call_soon(reads_own_args, 7)
        a = loop.call_at(50, got, 1)
        b = loop.call_at(50, got, 1)
        c = loop.call_at(50, got, 2)
        trace.append(("a==b", a == b, "a==c", a == c, "a<=b", a <= b))
        trace.append(("b._args", b._args, "a==b", a == b, a._args == b._args))
        for t in (a, b, c):
            t.cancel()
        t = loop.call_later(0, got, "timer")
        trace.append(repr(t).split(" when=")[0])
        fut = loop.create_future()
        fut.add_done_callback(lambda f: trace.append(("done", f.result())))
        fut.set_result("r")
        loop.call_soon(loop.call_soon, loop.stop)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert trace[1][:4] == ("tuple", 1, True, True)


def test_one_argument_handle_errors(compare):
    # A lone argument in the exception handler's context and in errors.
    def scenario(loop):
        trace = []

        def handler(loop, context):
            h = context.get("handle")
            trace.append((context["message"],
                          re.sub(r"when=[-\d.e+]+", "when=T", repr(h)),
                          type(context.get("exception")).__name__,
                          str(context.get("exception")),
                          h._args if h is not None else None))

        loop.set_exception_handler(handler)

        def fails(x):
            raise ValueError(x)

        loop.call_soon(fails, "boom")
        loop.call_later(0, fails, "timer boom")
        loop.call_soon(len, 5)           # TypeError from the callback
        loop.call_soon(lambda: None, 1)  # too many arguments
        loop.call_soon(loop.call_soon, loop.stop)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert len(trace) == 4


def test_call_soon_keywords_by_identity_or_by_value(compare):
    """call_soon() checks context= by identity first (ext/schedule.c,
    parse_context_kw): an equal keyword that is another string object,
    one among others, and unknown keywords behave as in asyncio."""
    def scenario(loop):
        trace = []
        var = contextvars.ContextVar("var", default="unset")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        name = "".join(["con", "text"])        # not the interned one

        def show(label):
            trace.append((label, var.get()))

        attempt(trace, "built", loop.call_soon, show, "built",
                **{name: ctx})
        attempt(trace, "none", loop.call_soon, show, "none", context=None)
        attempt(trace, "unknown", loop.call_soon, show, "x", bogus=1)
        attempt(trace, "context and unknown", loop.call_soon, show, "x",
                **{name: ctx, "bogus": 1})
        attempt(trace, "unknown then context", loop.call_soon, show, "x",
                **{"bogus": 1, "context": ctx})
        attempt(trace, "threadsafe", loop.call_soon_threadsafe, show,
                "threadsafe", **{name: ctx})
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert ("built", "in ctx") in trace and ("none", "unset") in trace
