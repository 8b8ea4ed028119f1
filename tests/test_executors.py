"""run_in_executor, default executor management."""
import asyncio
import concurrent.futures
import threading
import time
import warnings

import pytest

from support import PY, attempt, exc_event, run_until


def work(x, delay=0.0):
    time.sleep(delay)
    return (x, threading.current_thread().name.rsplit("_", 1)[0],
            threading.current_thread() is not threading.main_thread())


def fail():
    raise ValueError("in executor")


def test_run_in_executor_default(compare):
    def scenario(loop):
        trace = []

        async def main():
            fut = loop.run_in_executor(None, work, 1)
            trace.append(("isfuture", asyncio.isfuture(fut),
                          fut.get_loop() is loop))
            trace.append(("result", await fut))
            results = await asyncio.gather(
                *[loop.run_in_executor(None, work, i, 0.01)
                  for i in range(8)])
            trace.append(("gather", results))
            try:
                await loop.run_in_executor(None, fail)
            except ValueError as exc:
                trace.append(("raised",) + exc_event(exc))

        run_until(loop, main())
        return trace

    trace = compare(scenario)
    assert trace[1] == ("result", (1, "asyncio", True))


def test_run_in_executor_explicit_executor(compare):
    def scenario(loop):
        trace = []
        with concurrent.futures.ThreadPoolExecutor(
                2, thread_name_prefix="mine") as pool:
            async def main():
                trace.append(await loop.run_in_executor(pool, work, "x"))
            run_until(loop, main())
        return trace + ["done"]

    assert compare(scenario)[0] == ("x", "mine", True)


def test_set_default_executor(compare):
    def scenario(loop):
        trace = []
        pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="custom")
        loop.set_default_executor(pool)

        async def main():
            return await loop.run_in_executor(None, work, "y")

        trace.append(run_until(loop, main()))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            process_pool = concurrent.futures.ProcessPoolExecutor(1)
            attempt(trace, "set_default_executor(ProcessPoolExecutor)",
                    loop.set_default_executor, process_pool)
            attempt(trace, "set_default_executor(1)",
                    loop.set_default_executor, 1)
        trace.extend((w.category.__name__, str(w.message)) for w in caught)
        process_pool.shutdown(wait=True)
        loop.set_default_executor(pool)
        run_until(loop, loop.shutdown_default_executor())
        pool.shutdown(wait=True)
        return trace

    assert compare(scenario)[0] == ("y", "custom", True)


def test_shutdown_default_executor(compare):
    def scenario(loop):
        trace = []

        async def main():
            trace.append(await loop.run_in_executor(None, work, 1))
            await loop.shutdown_default_executor()
            trace.append("shut down")
            attempt(trace, "run_in_executor after shutdown",
                    loop.run_in_executor, None, work, 2)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                trace.append(("explicit executor still works",
                              (await loop.run_in_executor(pool, work, 3))[0]))
            await loop.shutdown_default_executor()
            trace.append("second shutdown is fine")

        run_until(loop, main())
        return trace

    assert compare(scenario)[2] == (
        "raised", "run_in_executor after shutdown", "RuntimeError",
        "Executor shutdown has been called")


def test_shutdown_default_executor_without_executor(compare):
    def scenario(loop):
        trace = []
        run_until(loop, loop.shutdown_default_executor())
        trace.append("shut down")
        attempt(trace, "run_in_executor", loop.run_in_executor, None, work, 1)
        return trace

    compare(scenario)


@pytest.mark.skipif(PY < (3, 12),
                    reason="shutdown_default_executor(timeout=) is 3.12+")
def test_shutdown_default_executor_timeout(compare):
    # A job blocks the executor; shutdown_default_executor(0.1).  3.13+
    # stops waiting after the timeout with a RuntimeWarning; 3.12.1 waits
    # for the executor and applies the timeout to the thread join only.
    # Compared with this Python's stock asyncio either way.  The job is
    # released only after shutdown returned, so which one came first is
    # seen, not timed (where shutdown waits for the job, the job's own
    # 5 s limit ends the wait).
    def scenario(loop):
        trace = []
        release = threading.Event()
        job_done = threading.Event()

        def blocked():
            release.wait(5)
            job_done.set()
            return "released"

        async def main():
            fut = loop.run_in_executor(None, blocked)
            await asyncio.sleep(0.01)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await loop.shutdown_default_executor(timeout=0.1)
            trace.append(("returned", "after the job" if job_done.is_set()
                          else "after the timeout"))
            release.set()
            trace.extend((w.category.__name__, str(w.message))
                         for w in caught)
            trace.append(("pending job finished", await fut))
            await loop.shutdown_default_executor(timeout=5)
            trace.append("second shutdown")

        run_until(loop, main(), timeout=10)
        return trace

    trace = compare(scenario)
    if trace[0] == ("returned", "after the timeout"):
        assert trace[1][0] == "RuntimeWarning"


def test_close_shuts_down_default_executor(compare):
    def scenario(loop):
        trace = []

        async def main():
            return await loop.run_in_executor(None, work, 1)

        trace.append(run_until(loop, main()))
        names = {t.name for t in threading.enumerate()}
        trace.append(("executor thread alive",
                      any(n.startswith("asyncio_") for n in names)))
        loop.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                t.name.startswith("asyncio_") and t.is_alive()
                for t in threading.enumerate()):
            time.sleep(0.01)
        trace.append(("executor threads gone after close", not any(
            t.name.startswith("asyncio_") and t.is_alive()
            for t in threading.enumerate())))
        return trace

    assert compare(scenario)[-1] == ("executor threads gone after close",
                                     True)


# ---- wrap_future of the submitted future (tideloop chains it in C) ------

class RecordingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor that keeps the concurrent futures it made."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.made = []

    def submit(self, fn, /, *args, **kwargs):
        cf = super().submit(fn, *args, **kwargs)
        self.made.append(cf)
        return cf


class DoneExecutor(concurrent.futures.Executor):
    """Returns futures that are already finished (chained when done)."""

    @staticmethod
    def run(cf, fn, args):
        try:
            cf.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001
            cf.set_exception(exc)

    def submit(self, fn, /, *args, **kwargs):
        cf = concurrent.futures.Future()
        self.run(cf, fn, args)
        return cf


class SubFuture(concurrent.futures.Future):
    pass


class SubFutureExecutor(concurrent.futures.Executor):
    """Returns a subclass of concurrent.futures.Future, finished by a
    thread: asyncio's own chaining is used for it."""

    def submit(self, fn, /, *args, **kwargs):
        cf = SubFuture()
        threading.Thread(target=DoneExecutor.run, args=(cf, fn, args)).start()
        return cf


def raise_it(exc):
    raise exc


def outcome(fut):
    if fut.cancelled():
        return "cancelled"
    exc = fut.exception()
    return ("exception",) + exc_event(exc) if exc else ("result", fut.result())


def test_cancel_asyncio_future_cancels_the_job(compare):
    # The job waits behind a blocked one (one worker): cancelling the
    # asyncio future cancels the concurrent future, the job never runs.
    def scenario(loop):
        trace = []
        release = threading.Event()
        ran = []
        pool = RecordingExecutor(1)

        async def main():
            blocker = loop.run_in_executor(pool, release.wait, 5)
            fut = loop.run_in_executor(pool, ran.append, 1)
            await asyncio.sleep(0)
            trace.append(("cancel", fut.cancel()))
            await asyncio.sleep(0)
            cf = pool.made[1]
            trace.append(("concurrent future", cf.cancelled(), cf.done()))
            release.set()
            trace.append(("blocker", await blocker))
            try:
                await fut
            except asyncio.CancelledError:
                trace.append("awaiting it raises CancelledError")

        run_until(loop, main())
        pool.shutdown(wait=True)
        trace.append(("job ran", ran))
        return trace

    assert compare(scenario)[1] == ("concurrent future", True, True)


def test_cancel_concurrent_future_cancels_asyncio_future(compare):
    def scenario(loop):
        trace = []
        release = threading.Event()
        pool = RecordingExecutor(1)

        async def main():
            blocker = loop.run_in_executor(pool, release.wait, 5)
            fut = loop.run_in_executor(pool, work, 2)
            trace.append(("concurrent cancel", pool.made[1].cancel()))
            trace.append(("asyncio future at once", fut.done()))
            try:
                await fut
            except asyncio.CancelledError:
                trace.append(("then", outcome(fut)))
            release.set()
            trace.append(("blocker", await blocker))

        run_until(loop, main())
        pool.shutdown(wait=True)
        return trace

    assert compare(scenario)[2] == ("then", "cancelled")


@pytest.mark.parametrize("exc", [
    concurrent.futures.CancelledError("cf cancelled"),
    concurrent.futures.TimeoutError("cf timeout"),
    concurrent.futures.InvalidStateError("cf state"),
    KeyError("plain"),
])
@pytest.mark.parametrize("executor", ["default", "done", "subclass"])
def test_job_exceptions_are_converted(compare, exc, executor):
    # asyncio's _convert_future_exc: concurrent.futures' exception types
    # become asyncio's; whatever else the job raised is kept.
    def scenario(loop):
        trace = []
        pool = {"default": None, "done": DoneExecutor(),
                "subclass": SubFutureExecutor()}[executor]

        async def main():
            fut = loop.run_in_executor(pool, raise_it, exc)
            try:
                await fut
            except BaseException as e:  # noqa: BLE001
                trace.append(("raised", type(e).__module__,
                              type(e).__qualname__, str(e)))
            trace.append(outcome(fut) if not fut.cancelled() else "cancelled")
            trace.append(("same object", fut.exception() is exc
                          if not fut.cancelled() else None))

        run_until(loop, main())
        return trace

    compare(scenario)


@pytest.mark.parametrize("executor", ["done", "subclass"])
def test_other_concurrent_futures(compare, executor):
    # Already finished when chained; a Future subclass (asyncio's path).
    def scenario(loop):
        pool = DoneExecutor() if executor == "done" else SubFutureExecutor()

        async def main():
            fut = loop.run_in_executor(pool, pow, 3, 4)
            first = fut.done()
            return [("done at once", first), ("result", await fut),
                    ("isfuture", asyncio.isfuture(fut))]

        return run_until(loop, main())

    compare(scenario)


def test_create_future_of_a_loop_subclass_is_used(compare, kind):
    # wrap_future() calls loop.create_future(); a subclass's future, of
    # another type, is chained by asyncio's code.
    class MyFuture(asyncio.Future):
        pass

    def scenario(loop):
        made = []

        def create_future():
            f = MyFuture(loop=loop)
            made.append(f)
            return f

        loop.create_future = create_future

        async def main():
            fut = loop.run_in_executor(None, pow, 2, 5)
            return [("made by the subclass", fut is made[-1]),
                    ("result", await fut)]

        return run_until(loop, main())

    compare(scenario)


def test_asyncio_future_finished_by_hand(compare):
    # asyncio asserts the destination is not done (unless cancelled) when
    # it copies the state: the loop's exception handler gets the
    # AssertionError.
    def scenario(loop):
        trace = []
        release = threading.Event()
        errors = []
        loop.set_exception_handler(
            lambda lp, ctx: errors.append(type(ctx.get("exception")).__name__))

        async def main():
            fut = loop.run_in_executor(None, release.wait, 5)
            fut.set_result("by hand")
            release.set()
            trace.append(("awaited", await fut))
            for _ in range(100):
                if errors:
                    break
                await asyncio.sleep(0.01)
            trace.append(("handler got", errors))

        run_until(loop, main())
        return trace

    compare(scenario)


def test_job_finishing_after_close(compare):
    # The loop is closed before the job finishes: the outcome is dropped
    # (3.10+: no call_soon_threadsafe on the closed loop; 3.9 tries and
    # concurrent.futures logs the RuntimeError).  Nothing else happens.
    def scenario(loop):
        import logging
        trace = []
        release = threading.Event()
        pool = RecordingExecutor(1)
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append((record.name, record.getMessage()[:30],
                                record.exc_info and
                                exc_event(record.exc_info[1])))

        handler = Keep()
        logging.getLogger("concurrent.futures").addHandler(handler)
        try:
            async def main():
                return loop.run_in_executor(pool, release.wait, 5)

            fut = run_until(loop, main())
            loop.close()
            release.set()
            trace.append(("job", pool.made[0].result(5)))
            pool.shutdown(wait=True)
            trace.append(("asyncio future", fut.done()))
            trace.append(("logged", records))
        finally:
            logging.getLogger("concurrent.futures").removeHandler(handler)
        return trace

    compare(scenario)


def test_debug_mode_run_in_executor(compare):
    def scenario(loop):
        loop.set_debug(True)

        async def main():
            fut = loop.run_in_executor(None, pow, 2, 3)
            return [("result", await fut),
                    ("gather", await asyncio.gather(
                        *[loop.run_in_executor(None, pow, i, 2)
                          for i in range(5)]))]

        return run_until(loop, main())

    compare(scenario)
