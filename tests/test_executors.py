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
