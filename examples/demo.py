"""A small self-checking asyncio program.

Runs unchanged on stock asyncio and on tideloop:

    python examples/demo.py                 # whatever loop asyncio picks
    python -m tideloop examples/demo.py     # on tideloop

Every line it prints is the same on both loops except the `loop:` line, and
it exits with status 1 if any check fails.
"""

import asyncio
import threading
import time


def check(cond, what):
    if not cond:
        raise AssertionError("check failed: " + what)


async def timers(loop):
    # Callbacks fire in deadline order, whatever order they were scheduled
    # in; equal deadlines fire in scheduling order.
    order = []
    done = loop.create_future()
    start = loop.time()
    loop.call_later(0.03, order.append, "c")
    loop.call_later(0.01, order.append, "a")
    loop.call_at(start + 0.02, order.append, "b")
    loop.call_later(0.03, order.append, "d")
    loop.call_later(0.04, done.set_result, None)
    cancelled = loop.call_later(0.02, order.append, "never")
    cancelled.cancel()
    await done
    check(order == ["a", "b", "c", "d"], "timer order %r" % order)

    # A sleep never ends early.
    t0 = loop.time()
    await asyncio.sleep(0.05)
    elapsed = loop.time() - t0
    check(elapsed >= 0.05, "sleep(0.05) took %.4f s" % elapsed)
    return "".join(order)


async def square_later(x):
    await asyncio.sleep(0.01 * (5 - x))  # finish in reverse order
    return x * x


async def tasks_and_gather():
    tasks = [asyncio.ensure_future(square_later(i)) for i in range(5)]
    results = await asyncio.gather(*tasks)
    check(results == [0, 1, 4, 9, 16], "gather %r" % results)

    async def boom():
        await asyncio.sleep(0)
        raise ValueError("boom")

    mixed = await asyncio.gather(square_later(3), boom(),
                                 return_exceptions=True)
    check(mixed[0] == 9 and isinstance(mixed[1], ValueError),
          "gather(return_exceptions=True) %r" % mixed)

    sleeper = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    sleeper.cancel()
    try:
        await sleeper
    except asyncio.CancelledError:
        pass
    check(sleeper.cancelled(), "cancelled task")
    return results


def blocking_sum(n):
    time.sleep(0.02)
    return sum(range(n)), threading.current_thread() is not threading.main_thread()


async def executor(loop):
    total, in_worker = await loop.run_in_executor(None, blocking_sum, 1000)
    check(total == 499500, "run_in_executor result %r" % total)
    check(in_worker, "run_in_executor ran in the main thread")
    return total


async def threadsafe(loop):
    # Another thread hands results back with call_soon_threadsafe; the loop
    # must wake up from its (otherwise idle) wait to run them.
    fut = loop.create_future()
    got = []

    def worker():
        for i in range(3):
            time.sleep(0.01)
            loop.call_soon_threadsafe(got.append, i)
        loop.call_soon_threadsafe(fut.set_result, "from-thread")

    t = threading.Thread(target=worker)
    t.start()
    value = await asyncio.wait_for(fut, timeout=5)
    t.join()
    check(got == [0, 1, 2], "call_soon_threadsafe order %r" % got)
    return value


async def main():
    loop = asyncio.get_running_loop()
    print("loop:", type(loop).__module__)
    print("timers:", await timers(loop))
    print("gather:", await tasks_and_gather())
    print("run_in_executor:", await executor(loop))
    print("call_soon_threadsafe:", await threadsafe(loop))
    print("demo: all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
