"""contextvars: callbacks, timers and tasks run in the right context."""
import asyncio
import contextvars

import pytest

from support import PY, run_forever_guarded, run_until

var = contextvars.ContextVar("var", default="default")


def test_callback_sees_context_at_schedule_time(compare):
    def scenario(loop):
        trace = []

        def show(label):
            trace.append((label, var.get()))

        token = var.set("at-schedule")
        loop.call_soon(show, "call_soon")
        loop.call_later(0.001, show, "call_later")
        loop.call_at(loop.time() + 0.002, show, "call_at")
        loop.call_soon_threadsafe(show, "call_soon_threadsafe")
        var.set("changed-after-schedule")
        loop.call_soon(show, "second call_soon")
        var.reset(token)
        loop.call_soon(show, "after reset")
        loop.call_later(0.01, loop.stop)
        run_forever_guarded(loop)
        show("outside")
        return trace

    assert compare(scenario)[0] == ("call_soon", "at-schedule")


def test_explicit_context_argument(compare):
    def scenario(loop):
        trace = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in-ctx")

        def setter(label, value):
            trace.append((label, "before", var.get()))
            var.set(value)

        loop.call_soon(setter, "soon", "set-by-soon", context=ctx)
        loop.call_later(0, setter, "later", "set-by-later", context=ctx)
        loop.call_at(loop.time(), setter, "at", "set-by-at", context=ctx)
        loop.call_soon_threadsafe(setter, "threadsafe", "set-by-threadsafe",
                                  context=ctx)
        loop.call_later(0.01, loop.stop)
        run_forever_guarded(loop)
        trace.append(("ctx after", ctx[var]))
        trace.append(("outer after", var.get()))
        return trace

    trace = compare(scenario)
    assert trace[0] == ("soon", "before", "in-ctx")
    assert trace[-1] == ("outer after", "default")


def test_context_keyword_not_interned(compare):
    """context= given as a str equal to "context" but not the interned one
    (asyncio's C Task passes its own): each such keyword object is taken,
    one seen before and a new one alike, and an unknown keyword is still
    a TypeError."""
    def scenario(loop):
        trace = []
        ctxs = [contextvars.copy_context() for _ in range(3)]
        for i, c in enumerate(ctxs):
            c.run(var.set, "ctx%d" % i)

        def show(label):
            trace.append((label, var.get()))

        def kw(word):          # a new str object each call
            return "".join(list(word))

        first = kw("context")
        loop.call_soon(show, "first", **{first: ctxs[0]})
        loop.call_soon(show, "first again", **{first: ctxs[1]})
        loop.call_soon_threadsafe(show, "another", **{kw("context"): ctxs[2]})
        loop.call_soon(show, "interned", context=ctxs[0])
        loop.call_soon(show, "no context")
        for word in ("contexts", "Context", "contex"):
            try:
                loop.call_soon(show, "bad", **{kw(word): ctxs[0]})
            except TypeError:
                trace.append(("TypeError", word))
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert trace[3:7] == [("first", "ctx0"), ("first again", "ctx1"),
                          ("another", "ctx2"), ("interned", "ctx0")], trace


def test_changes_inside_callbacks_do_not_leak(compare):
    def scenario(loop):
        trace = []

        def setter(value):
            trace.append(("setter sees", var.get()))
            var.set(value)

        def reader(label, then_stop=False):
            trace.append((label, var.get()))
            if then_stop:
                loop.stop()

        loop.call_soon(setter, "leak?")
        loop.call_soon(reader, "same iteration")
        loop.call_soon(lambda: loop.call_soon(reader, "next iteration", True))
        run_forever_guarded(loop)
        loop.call_soon(setter, "leak again?")
        loop.call_later(0.005, reader, "timer", True)
        run_forever_guarded(loop)
        reader("outer")
        return trace

    assert compare(scenario) == [
        ("setter sees", "default"), ("same iteration", "default"),
        ("next iteration", "default"), ("setter sees", "default"),
        ("timer", "default"), ("outer", "default")]


def test_tasks_copy_the_current_context(compare):
    def scenario(loop):
        trace = []

        async def child(label):
            trace.append((label, "sees", var.get()))
            var.set(label)
            await asyncio.sleep(0)
            trace.append((label, "after sleep", var.get()))

        async def main():
            var.set("main")
            t1 = loop.create_task(child("t1"))
            var.set("main-changed")
            t2 = asyncio.ensure_future(child("t2"))
            await asyncio.gather(t1, t2)
            trace.append(("main after", var.get()))

        run_until(loop, main())
        trace.append(("outer", var.get()))
        return trace

    assert compare(scenario)[0] == ("t1", "sees", "main")


@pytest.mark.skipif(PY < (3, 11), reason="create_task(context=) is 3.11+")
def test_create_task_with_context(compare):
    def scenario(loop):
        trace = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "given")

        async def child():
            trace.append(("child sees", var.get()))
            var.set("child-set")
            await asyncio.sleep(0)
            trace.append(("child after sleep", var.get()))

        async def main():
            task = loop.create_task(child(), context=ctx)
            await task
            trace.append(("ctx after", ctx[var]))
            trace.append(("main", var.get()))
            if PY >= (3, 12):
                trace.append(("task.get_context() is ctx",
                              task.get_context() is ctx))

        run_until(loop, main())
        return trace

    assert compare(scenario)[:2] == [("child sees", "given"),
                                     ("child after sleep", "child-set")]


def test_future_callbacks_run_in_their_context(compare):
    def scenario(loop):
        trace = []
        fut = loop.create_future()
        token = var.set("registered")
        fut.add_done_callback(lambda f: trace.append(("done cb", var.get())))
        var.reset(token)
        ctx = contextvars.copy_context()
        ctx.run(var.set, "explicit")
        fut.add_done_callback(lambda f: trace.append(("ctx cb", var.get())),
                              context=ctx)
        loop.call_soon(fut.set_result, None)
        run_until(loop, fut)
        return trace

    assert compare(scenario) == [("done cb", "registered"),
                                 ("ctx cb", "explicit")]
