"""Handles scheduled from an empty context (tideloop makes their Context
only when asked for and runs their callbacks in one spare empty Context of
the loop, ext/handle.c): every handle must still behave as if it had its
own copy, as in stock asyncio.

Each scenario runs in a new empty contextvars.Context, whatever earlier
tests left in the thread's context."""
import asyncio
import contextvars
import inspect
import threading

from support import run_forever_guarded, run_until

var = contextvars.ContextVar("lazy_var", default="default")
other = contextvars.ContextVar("lazy_other", default="default")


def in_empty_context(scenario):
    def run(loop):
        return contextvars.Context().run(scenario, loop)
    return run


def ctx_of(handle):
    """Handle.get_context() (3.12+), or its _context before."""
    get = getattr(handle, "get_context", None)
    return get() if get is not None else handle._context


def stop_soon(loop, iterations=4):
    """loop.stop() after that many more iterations (no timing)."""
    if iterations == 0:
        loop.stop()
    else:
        loop.call_soon(stop_soon, loop, iterations - 1, context=EMPTY)


EMPTY = contextvars.Context()


def record_errors(loop, trace):
    def handler(loop, context):
        exc = context.get("exception")
        trace.append(("error", type(exc).__name__))
    loop.set_exception_handler(handler)


def test_a_callback_setting_a_var_does_not_leak_to_the_next(compare):
    @in_empty_context
    def scenario(loop):
        trace = []

        def setter(label, value):
            trace.append((label, "sees", var.get(), other.get()))
            var.set(value)
            # scheduled from a context that is no longer empty
            loop.call_soon(reader, label + " child")

        def reader(label):
            trace.append((label, "sees", var.get(), other.get()))

        def resetter(label):
            trace.append((label, "sees", var.get()))
            token = other.set("temporary")
            other.reset(token)

        for i in range(3):
            loop.call_soon(setter, "setter %d" % i, "set-%d" % i)
            loop.call_soon(reader, "reader %d" % i)
            loop.call_soon(resetter, "resetter %d" % i)
        loop.call_soon(lambda: loop.call_soon(reader, "next iteration"))
        stop_soon(loop)
        run_forever_guarded(loop)
        trace.append(("outside", var.get()))
        return trace

    trace = compare(scenario)
    assert ("reader 1", "sees", "default", "default") in trace
    assert ("setter 0 child", "sees", "set-0", "default") in trace


def test_timers_setting_vars_do_not_leak(compare):
    @in_empty_context
    def scenario(loop):
        trace = []

        def setter(label):
            trace.append((label, var.get()))
            var.set(label)

        t0 = loop.time()
        for i in range(4):
            loop.call_at(t0 + 0.001 * i, setter, "at %d" % i)
            loop.call_later(0, setter, "later %d" % i)
        loop.call_later(0.02, loop.stop)
        run_forever_guarded(loop)
        return sorted(trace)

    assert ("at 3", "default") in compare(scenario)


def test_get_context_before_the_run(compare):
    @in_empty_context
    def scenario(loop):
        trace = []

        def show(label):
            trace.append((label, var.get()))

        a = loop.call_soon(show, "a")
        b = loop.call_soon(show, "b")
        t = loop.call_later(0, show, "timer")
        ctx_a = ctx_of(a)
        trace.append(("a's context", type(ctx_a).__name__, len(ctx_a),
                      ctx_a is ctx_of(a),
                      ctx_a is not ctx_of(b)))
        # what is set in a handle's context before it runs, it sees
        ctx_a.run(var.set, "set in a's context")
        ctx_of(t).run(var.set, "set in the timer's context")
        loop.call_soon(show, "c")
        stop_soon(loop)
        run_forever_guarded(loop)
        trace.append(("after", dict(ctx_of(a)) == {var: "set in a's context"},
                      len(ctx_of(b))))
        return trace

    trace = compare(scenario)
    assert ("b", "default") in trace and ("a", "set in a's context") in trace


def test_get_context_inside_the_callback(compare):
    @in_empty_context
    def scenario(loop):
        trace = []
        kept = []

        def own(label):
            h = handles[label]
            var.set(label)
            ctx = ctx_of(h)
            trace.append((label, "own context has", ctx.get(var)))
            kept.append(ctx)
            # asyncio runs the callback in that very context
            try:
                ctx.run(var.get)
            except RuntimeError:
                trace.append((label, "context is entered"))

        def quiet(label):
            h = handles[label]
            trace.append((label, "quiet", var.get(), len(ctx_of(h))))
            kept.append(ctx_of(h))

        def show(label):
            trace.append((label, var.get(), other.get()))

        handles = {}
        handles["first"] = loop.call_soon(own, "first")
        handles["q"] = loop.call_soon(quiet, "q")
        loop.call_soon(show, "after q")
        stop_soon(loop)
        run_forever_guarded(loop)
        # contexts given out keep working and stay the handles' own
        kept[0].run(other.set, "late")
        kept[1].run(other.set, "late in quiet's")
        loop.call_soon(show, "later")
        stop_soon(loop)
        run_forever_guarded(loop)
        trace.append(("first's context", dict(ctx_of(handles["first"]))
                      == {var: "first", other: "late"}))
        return trace

    trace = compare(scenario)
    assert ("later", "default", "default") in trace


def test_context_after_the_run_keeps_what_the_callback_set(compare):
    @in_empty_context
    def scenario(loop):
        trace = []

        def setter(value):
            var.set(value)

        def failing(value):
            var.set(value)
            raise ValueError(value)

        def nothing():
            pass

        record_errors(loop, trace)
        s = loop.call_soon(setter, "kept")
        f = loop.call_soon(failing, "kept too")
        n = loop.call_soon(nothing)
        stop_soon(loop)
        run_forever_guarded(loop)
        trace.append(("setter's", ctx_of(s).get(var)))
        trace.append(("failing's", ctx_of(f).get(var)))
        trace.append(("nothing's", len(ctx_of(n)),
                      ctx_of(n) is ctx_of(n)))
        return trace

    trace = compare(scenario)
    assert ("setter's", "kept") in trace


def test_a_handle_run_again_sees_its_own_changes(compare):
    @in_empty_context
    def scenario(loop):
        trace = []

        def counter():
            n = var.get()
            trace.append(("run", n))
            var.set(1 if n == "default" else n + 1)

        def show():
            trace.append(("show", var.get()))

        h = loop.call_soon(counter)
        stop_soon(loop)
        run_forever_guarded(loop)
        h._run()
        h._run()
        loop.call_soon(show)
        stop_soon(loop)
        run_forever_guarded(loop)
        return trace

    assert compare(scenario)[-2] == ("run", 2)


def test_nested_runs(compare):
    @in_empty_context
    def scenario(loop):
        trace = []
        record_errors(loop, trace)

        def inner(label):
            trace.append((label, "inner sees", var.get()))
            var.set(label)

        def outer(label):
            var.set("outer")
            inner_h._run()
            trace.append((label, "outer sees", var.get()))
            # running its own handle again: its context is entered
            outer_h._run()
            trace.append((label, "outer still sees", var.get()))

        outer_h = loop.call_soon(outer, "o")
        inner_h = loop.call_soon(inner, "i")
        stop_soon(loop)
        run_forever_guarded(loop)
        trace.append(("inner's", ctx_of(inner_h).get(var)))
        return trace

    trace = compare(scenario)
    if not _handler_runs_in_handle_context():
        # Newer asyncio (3.14.x, 3.15) runs the exception handler in the
        # handle's context, which is entered here: the RuntimeError then
        # reaches the log instead (compare() checked it is the same).
        assert ("error", "RuntimeError") in trace


def _handler_runs_in_handle_context():
    src = inspect.getsource(
        asyncio.base_events.BaseEventLoop.call_exception_handler)
    return "ctx.run(" in src


def test_explicit_context_is_used_as_given(compare):
    @in_empty_context
    def scenario(loop):
        trace = []
        ctx = contextvars.Context()

        def setter(label):
            trace.append((label, var.get()))
            var.set(label)

        h1 = loop.call_soon(setter, "explicit 1", context=ctx)
        h2 = loop.call_later(0, setter, "explicit 2", context=ctx)
        loop.call_soon(setter, "none", context=None)
        loop.call_soon(setter, "lazy")
        stop_soon(loop)
        run_forever_guarded(loop)
        trace.append(("same", ctx_of(h1) is ctx, ctx_of(h2) is ctx,
                      ctx.get(var)))
        return trace

    assert compare(scenario)[-1] == ("same", True, True, "explicit 2")


def test_tasks_and_callbacks(compare):
    @in_empty_context
    def scenario(loop):
        trace = []

        def cb(label):
            trace.append((label, var.get()))
            var.set("cb " + label)

        async def task(label):
            trace.append((label, "task starts with", var.get()))
            loop.call_soon(cb, label + " before set")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            trace.append((label, "task after callback", var.get()))
            var.set(label)
            loop.call_soon(cb, label + " after set")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            trace.append((label, "task end", var.get()))
            return var.get()

        async def main():
            loop.call_soon(cb, "from main")
            await asyncio.sleep(0)
            r = await asyncio.gather(task("t1"), task("t2"))
            trace.append(("main", var.get(), r))

        run_until(loop, main())
        return trace

    assert compare(scenario)[-1] == ("main", "default", ["t1", "t2"])


def test_call_soon_threadsafe_from_threads(compare):
    @in_empty_context
    def scenario(loop):
        trace = []
        done = []

        def cb(label):
            trace.append((label, var.get()))
            var.set(label)
            done.append(label)
            if len(done) == 4:
                loop.stop()

        def producer(label, value):
            if value is not None:
                var.set(value)
            loop.call_soon_threadsafe(cb, label + " 1")
            loop.call_soon_threadsafe(cb, label + " 2")

        threads = [threading.Thread(target=producer, args=("empty", None)),
                   threading.Thread(target=producer, args=("set", "in thread"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run_forever_guarded(loop)
        return sorted(trace)

    trace = compare(scenario)
    assert ("empty 2", "default") in trace
    assert ("set 2", "in thread") in trace
