"""Debug mode: flags, slow-callback warnings, environment switches."""
import asyncio
import re
import sys
import time

import pytest

from support import (PY, capture_asyncio_log, run_forever_guarded,
                     run_until)

TOOK = re.compile(r"took (\d+\.\d+) seconds")


def slow_callback(seconds):
    time.sleep(seconds)


def test_debug_flags(compare):
    def scenario(loop):
        trace = [("get_debug default", loop.get_debug()),
                 ("slow_callback_duration default",
                  loop.slow_callback_duration)]
        loop.set_debug(True)
        trace.append(("after set_debug(True)", loop.get_debug()))
        loop.slow_callback_duration = 0.5
        trace.append(("slow_callback_duration set",
                      loop.slow_callback_duration))
        loop.set_debug(False)
        trace.append(("after set_debug(False)", loop.get_debug()))
        trace.append(repr(loop))
        return trace

    trace = compare(scenario)
    assert trace[1] == ("slow_callback_duration default", 0.1)


def slow_warnings(records):
    """(event, measured seconds) for each 'Executing ... took' record."""
    events, durations = [], []
    for r in records:
        msg = r.getMessage()
        m = TOOK.search(msg)
        if m:
            durations.append(float(m.group(1)))
        msg = re.sub(r"when=[-\d.e+]+", "when=T", msg)
        events.append((r.levelname, TOOK.sub("took N seconds", msg)))
    return events, durations


def test_slow_callback_warning(compare):
    measured = []

    def scenario(loop):
        trace = []
        loop.set_debug(True)

        async def slow_task():
            await asyncio.sleep(0)
            time.sleep(0.15)

        with capture_asyncio_log() as records:
            loop.call_soon(slow_callback, 0.15)
            loop.call_soon(trace.append, "fast callback")
            loop.call_later(0.001, slow_callback, 0.15)
            run_until(loop, asyncio.sleep(0.01))
            loop.set_debug(True)
            run_until(loop, slow_task(), timeout=10)
        events, durations = slow_warnings(records)
        measured.append(durations)
        return trace + events

    trace = compare(scenario)
    assert trace[1][0] == "WARNING"
    assert re.fullmatch(
        r"Executing <Handle slow_callback\(0\.15\) at \S+test_debug\.py:\d+ "
        r"created at \S+test_debug\.py:\d+> took N seconds", trace[1][1])
    for durations in measured:
        assert len(durations) == 3
        assert all(0.15 <= d < 1.0 for d in durations), durations


def test_slow_callback_threshold(compare):
    def scenario(loop):
        loop.set_debug(True)
        with capture_asyncio_log() as records:
            loop.slow_callback_duration = 0.02
            loop.call_soon(slow_callback, 0.03)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
            loop.slow_callback_duration = 5
            loop.call_soon(slow_callback, 0.03)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
            loop.set_debug(False)
            loop.slow_callback_duration = 0.0
            loop.call_soon(slow_callback, 0.03)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
        events, _ = slow_warnings(records)
        return ["ran"] + events

    trace = compare(scenario)
    assert len(trace) == 2  # only the first slow callback was reported


def test_coroutine_origin_tracking(compare):
    def scenario(loop):
        trace = [("outside", sys.get_coroutine_origin_tracking_depth())]

        async def probe():
            trace.append(("inside", sys.get_coroutine_origin_tracking_depth()))

        run_until(loop, probe())
        loop.set_debug(True)
        run_until(loop, probe())
        trace.append(("after debug run",
                      sys.get_coroutine_origin_tracking_depth()))

        async def origin():
            coro = probe()
            trace.append(("cr_origin recorded", coro.cr_origin is not None))
            coro.close()

        run_until(loop, origin())

        async def toggle():
            loop.set_debug(False)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            trace.append(("after set_debug(False) while running",
                          sys.get_coroutine_origin_tracking_depth()))
            loop.set_debug(True)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            trace.append(("after set_debug(True) while running",
                          sys.get_coroutine_origin_tracking_depth()))

        loop.set_debug(True)
        run_until(loop, toggle())
        trace.append(("after toggled run",
                      sys.get_coroutine_origin_tracking_depth()))
        return trace

    trace = compare(scenario)
    assert trace[0] == ("outside", 0)


DEBUG_PROBE = '''
loop = new_loop()
out("new loop debug", loop.get_debug())
loop.close()
async def main():
    out("running loop debug", asyncio.get_running_loop().get_debug())
install_policy()
asyncio.run(main())
asyncio.run(main(), debug=True)
asyncio.run(main(), debug=False)
'''


# (The ids avoid the word "asyncio", so that `-k asyncio` selects only the
# stock side.)
@pytest.mark.parametrize("how", ["plain", "DEBUG-env", "X-dev",
                                 "PYTHONDEVMODE"])
def test_debug_mode_from_environment(compare_child, kind, how):
    env, args = None, ()
    if how == "DEBUG-env":
        env = {"PYTHONASYNCIODEBUG": "1"}
    elif how == "PYTHONDEVMODE":
        env = {"PYTHONDEVMODE": "1"}
    elif how == "X-dev":
        args = ("-X", "dev")
    proc = compare_child(DEBUG_PROBE, env=env, python_args=args)
    lines = proc.stdout.splitlines()
    expected = "False" if how == "plain" else "True"
    assert lines[0] == "new loop debug " + expected
    assert lines[2] == "running loop debug True"


def test_policy_loop_in_debug_child(kind):
    # With the policy installed, asyncio.run(debug=True) runs on a tideloop
    # loop (and stock's on a stock one).
    from support import run_child, describe_child
    proc = run_child(kind, '''
install_policy()
async def main():
    loop = asyncio.get_running_loop()
    out(type(loop).__module__.split(".")[0], loop.get_debug())
asyncio.run(main(), debug=True)
''')
    assert proc.returncode == 0, describe_child(proc)
    assert proc.stdout.split() == [kind, "True"], describe_child(proc)
