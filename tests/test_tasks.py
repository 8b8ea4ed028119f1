"""create_future / create_task / task factories / eager tasks."""
import asyncio
import contextvars
import re

import pytest

from support import PY, attempt, run_until


async def value(x):
    await asyncio.sleep(0)
    return x


def test_create_future(compare):
    def scenario(loop):
        trace = []
        fut = loop.create_future()
        trace.append(("type is asyncio.Future", type(fut) is asyncio.Future))
        trace.append(("isfuture", asyncio.isfuture(fut)))
        trace.append(("get_loop is loop", fut.get_loop() is loop))
        trace.append(("done", fut.done()))
        trace.append(repr(fut))
        loop.call_later(0.001, fut.set_result, "result")
        trace.append(("result", run_until(loop, fut)))
        trace.append(repr(fut))
        return trace

    assert compare(scenario)[0] == ("type is asyncio.Future", True)


def test_create_task_name_and_result(compare):
    def scenario(loop):
        trace = []
        task = loop.create_task(value(1), name="worker")
        trace.append(("is asyncio.Task", isinstance(task, asyncio.Task)))
        trace.append(("name", task.get_name()))
        trace.append(("get_loop is loop", task.get_loop() is loop))
        unnamed = loop.create_task(value(2))
        trace.append(("default name", bool(re.fullmatch(
            r"Task-\d+", unnamed.get_name()))))
        numbered = loop.create_task(value(3), name=42)
        trace.append(("non-str name", repr(numbered.get_name())))
        trace.append(("in all_tasks", task in asyncio.all_tasks(loop)))
        trace.append(repr(task))
        trace.append(("results", run_until(
            loop, asyncio.gather(task, unnamed, numbered))))
        trace.append(repr(task))
        return trace

    assert compare(scenario)[1] == ("name", "worker")


def test_task_factory(compare):
    def scenario(loop):
        trace = []
        attempt(trace, "set_task_factory(1)", loop.set_task_factory, 1)
        trace.append(("initial factory", loop.get_task_factory()))

        def factory(lp, coro, **kwargs):
            trace.append(("factory", lp is loop, type(coro).__name__,
                          sorted(kwargs)))
            task = asyncio.Task(coro, loop=lp, **kwargs)
            return task

        loop.set_task_factory(factory)
        trace.append(("get_task_factory", loop.get_task_factory() is factory))
        t = loop.create_task(value("a"), name="named")
        trace.append(("name kept", t.get_name()))
        if PY >= (3, 11):
            t2 = loop.create_task(value("b"),
                                  context=contextvars.copy_context())
        else:
            t2 = loop.create_task(value("b"))
        trace.append(("results", run_until(loop, asyncio.gather(t, t2))))
        loop.set_task_factory(None)
        trace.append(("reset", loop.get_task_factory()))
        return trace

    assert compare(scenario)[0] == (
        "raised", "set_task_factory(1)", "TypeError",
        "task factory must be a callable or None")


def test_task_factory_returning_non_task(compare):
    def scenario(loop):
        trace = []

        def factory(lp, coro, **kwargs):
            coro.close()
            fut = lp.create_future()
            fut.set_result("from factory")
            return fut

        loop.set_task_factory(factory)
        t = attempt(trace, "create_task", loop.create_task, value(1))
        trace.append(("type", type(t).__name__))
        loop.set_task_factory(None)
        if t is not None:
            trace.append(("result", run_until(loop, t)))
        return trace

    compare(scenario)


@pytest.mark.skipif(PY < (3, 12), reason="eager tasks are 3.12+")
def test_eager_task_factory(compare):
    def scenario(loop):
        trace = []

        async def eager(name, n_awaits):
            trace.append((name, "start"))
            for _ in range(n_awaits):
                await asyncio.sleep(0)
                trace.append((name, "resumed"))
            return name

        async def main():
            loop.set_task_factory(asyncio.eager_task_factory)
            trace.append("before create")
            t_sync = loop.create_task(eager("sync", 0))
            trace.append(("after create sync", t_sync.done()))
            t_async = loop.create_task(eager("async", 2), name="eager-async")
            trace.append(("after create async", t_async.done(),
                          t_async.get_name()))
            loop.call_soon(trace.append, "callback")
            trace.append(("results", await asyncio.gather(t_sync, t_async)))
            loop.set_task_factory(None)

        run_until(loop, main())
        return trace

    trace = compare(scenario)
    assert trace[:3] == ["before create", ("sync", "start"),
                         ("after create sync", True)]


@pytest.mark.skipif(PY < (3, 12), reason="Task(eager_start=) is 3.12+")
def test_eager_start(compare):
    def scenario(loop):
        trace = []

        async def body(name):
            trace.append((name, "start"))
            await asyncio.sleep(0)
            trace.append((name, "end"))

        async def main():
            t = asyncio.Task(body("Task(eager_start=True)"), loop=loop,
                             eager_start=True)
            trace.append("after Task()")
            await t
            # loop.create_task(..., eager_start=) is not in every version:
            # compare whatever stock asyncio does.
            coro = body("create_task(eager_start=True)")
            t2 = attempt(trace, "create_task(eager_start=True)",
                         loop.create_task, coro, eager_start=True)
            trace.append("after create_task")
            if t2 is None:
                coro.close()
            else:
                await t2

        run_until(loop, main())
        return trace

    assert compare(scenario)[:2] == [("Task(eager_start=True)", "start"),
                                     "after Task()"]


def test_task_cancellation(compare):
    def scenario(loop):
        trace = []

        async def victim():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                trace.append("victim cancelled")
                raise

        async def main():
            t = loop.create_task(victim())
            await asyncio.sleep(0)
            trace.append(("cancel()", t.cancel()))
            try:
                await t
            except asyncio.CancelledError:
                trace.append("await raised CancelledError")
            trace.append(("cancelled", t.cancelled()))

        run_until(loop, main())
        return trace

    assert compare(scenario) == [("cancel()", True), "victim cancelled",
                                 "await raised CancelledError",
                                 ("cancelled", True)]
