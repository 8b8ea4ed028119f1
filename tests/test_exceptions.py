"""Exceptions from callbacks: the exception handler, the default handler's
log output, BaseException propagation out of run_forever/run_until_complete."""
import asyncio
import logging
import re

import pytest

from support import (attempt, capture_asyncio_log, exc_event, record_event,
                     run_forever_guarded, run_until)


def boom(*args):
    raise ValueError("boom")


def describe_context(loop, handle_box):
    """An exception handler that records what it is given."""
    events = []

    def handler(lp, context):
        events.append(("handler", lp is loop, sorted(context),
                       context.get("message"),
                       exc_event(context["exception"])
                       if "exception" in context else None,
                       context.get("handle") is handle_box[0]
                       if handle_box else None,
                       re.sub(r"when=[-\d.e+]+", "when=T",
                              repr(context.get("handle")))))
    return events, handler


def test_exception_handler_gets_context(compare):
    def scenario(loop):
        box = []
        events, handler = describe_context(loop, box)
        trace = [("default handler", loop.get_exception_handler())]
        loop.set_exception_handler(handler)
        trace.append(("get_exception_handler",
                      loop.get_exception_handler() is handler))
        box.append(loop.call_soon(boom, 1))
        loop.call_soon(trace.append, "next callback still runs")
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        box[0] = loop.call_later(0.001, boom)
        loop.call_later(0.01, loop.stop)
        run_forever_guarded(loop)
        return trace + events

    trace = compare(scenario)
    assert trace[-2][2] == ["exception", "handle", "message"]
    assert trace[-2][3].startswith("Exception in callback boom(")


def test_exception_handler_in_debug_mode(compare):
    def scenario(loop):
        loop.set_debug(True)
        box = []
        events, handler = describe_context(loop, box)
        loop.set_exception_handler(handler)
        box.append(loop.call_soon(boom, 1))
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return events + [("count", len(events))]

    trace = compare(scenario)
    assert "source_traceback" in trace[0][2]


def test_default_handler_logs_to_the_library_logger(compare):
    def scenario(loop):
        trace = []
        with capture_asyncio_log() as records:
            loop.call_soon(boom, 1)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
            loop.call_exception_handler({"message": "custom message",
                                         "extra": [1, 2]})
            loop.default_exception_handler({"message": "direct call",
                                            "exception": KeyError("k")})
            loop.call_exception_handler({})
        for r in records:
            trace.append(record_event(r) + (r.name,))
        return trace

    trace = compare(scenario)
    assert trace[0][1] == "ERROR"
    assert trace[0][2].startswith("Exception in callback boom(")
    assert trace[0][4] == "asyncio"


def test_default_handler_logs_in_debug_mode(compare):
    def scenario(loop):
        trace = []
        loop.set_debug(True)
        with capture_asyncio_log() as records:
            loop.call_soon(boom, 1)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
        for r in records:
            # The traceback lines carry line numbers of this file only.
            trace.append(record_event(r))
        return trace

    trace = compare(scenario, min_events=1)
    assert "source_traceback: Object created at (most recent call last)" \
        in trace[0][2]


def test_caplog_sees_default_handler_record(loop, caplog):
    # The same through pytest's caplog, on each kind.
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_soon(boom)
    loop.call_soon(loop.stop)
    run_forever_guarded(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in callback boom()")
    assert records[0].exc_info[0] is ValueError


def test_set_exception_handler_rejects_non_callables(compare):
    def scenario(loop):
        trace = []
        attempt(trace, "set_exception_handler(1)",
                loop.set_exception_handler, 1)
        attempt(trace, "set_exception_handler('x')",
                loop.set_exception_handler, "x")
        attempt(trace, "set_exception_handler(None)",
                loop.set_exception_handler, None)
        trace.append(("handler", loop.get_exception_handler()))
        return trace

    assert compare(scenario)[0][:3] == (
        "raised", "set_exception_handler(1)", "TypeError")


def test_exception_handler_that_raises(compare):
    def scenario(loop):
        trace = []

        def bad_handler(lp, context):
            trace.append(("bad handler called", context["message"][:30]))
            raise RuntimeError("handler failed")

        loop.set_exception_handler(bad_handler)
        with capture_asyncio_log() as records:
            loop.call_soon(boom)
            loop.call_soon(trace.append, "loop goes on")
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
        trace.extend(record_event(r) for r in records)
        return trace

    trace = compare(scenario)
    assert "Unhandled error in exception handler" in trace[2][2]


def test_exception_handler_raising_base_exception(compare):
    def scenario(loop):
        trace = []

        def handler(lp, context):
            raise KeyboardInterrupt

        loop.set_exception_handler(handler)
        loop.call_soon(boom)
        loop.call_soon(trace.append, "after")
        attempt(trace, "run_forever", run_forever_guarded, loop)
        trace.append(("running", loop.is_running()))
        loop.set_exception_handler(None)
        loop.call_soon(loop.stop)
        run_forever_guarded(loop)
        return trace

    assert compare(scenario)[0][:3] == ("raised", "run_forever",
                                        "KeyboardInterrupt")


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_callback_propagates(compare, exc_type):
    def scenario(loop):
        trace = []

        def interrupt():
            trace.append("interrupt")
            raise exc_type("from callback")

        loop.call_soon(trace.append, "before")
        loop.call_soon(interrupt)
        loop.call_soon(trace.append, "same iteration, after")
        attempt(trace, "run_forever", run_forever_guarded, loop)
        trace.append(("is_running", loop.is_running()))
        # The loop is usable afterwards; what was left in the ready queue runs
        # on the next run (as with asyncio's deque).
        trace.append(("run_until_complete",
                      run_until(loop, asyncio.sleep(0.01, "usable"))))
        loop.call_later(0.001, interrupt)
        attempt(trace, "run_until_complete", loop.run_until_complete,
                asyncio.sleep(1))
        trace.append(("again", run_until(loop, asyncio.sleep(0, "again"))))
        return trace

    trace = compare(scenario)
    assert trace[2][:3] == ("raised", "run_forever", exc_type.__name__)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_task_propagates(compare, exc_type):
    def scenario(loop):
        trace = []

        async def main():
            await asyncio.sleep(0)
            raise exc_type("from task")

        task = loop.create_task(main())
        attempt(trace, "run_until_complete(task)", loop.run_until_complete,
                task)
        trace.append(("task done", task.done()))
        if task.done():
            trace.append(("task exception", exc_event(task.exception())))
        attempt(trace, "run_until_complete(coro)", loop.run_until_complete,
                main())
        trace.append(("usable", run_until(loop, asyncio.sleep(0, "ok"))))
        return trace

    assert compare(scenario)[0][:3] == (
        "raised", "run_until_complete(task)", exc_type.__name__)


def test_exception_in_task_is_logged_when_never_retrieved(compare):
    def scenario(loop):
        trace = []
        import gc

        async def fails():
            raise ValueError("never retrieved")

        with capture_asyncio_log() as records:
            task = loop.create_task(fails())
            run_until(loop, asyncio.sleep(0.01))
            trace.append(("done", task.done()))
            del task
            gc.collect()
        for r in records:
            trace.append(record_event(r)[:2] + (
                r.getMessage().split("\n")[0],))
        return trace

    assert compare(scenario)[1][2] == "Task exception was never retrieved"
