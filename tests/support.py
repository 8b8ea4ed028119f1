"""Helpers shared by the tideloop test modules.

conftest.py holds the fixtures and describes the two styles of test
(per-kind and comparison); this module holds what the test modules import.
"""
import asyncio
import contextlib
import difflib
import gc
import inspect
import logging
import os
import pprint
import re
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

KINDS = ("asyncio", "tideloop")
ASYNCIO_ONLY = os.environ.get("TIDELOOP_TESTS_ASYNCIO_ONLY", "") not in ("", "0")
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
PY = sys.version_info


# --------------------------------------------------------------------------
# Loop kinds
# --------------------------------------------------------------------------

def import_tideloop():
    """Return the tideloop module; FAIL (never skip) the test if it does not
    import."""
    try:
        import tideloop
    except Exception as exc:  # noqa: BLE001
        pytest.fail("cannot import tideloop: %s: %s (set "
                    "TIDELOOP_TESTS_ASYNCIO_ONLY=1 to run the stock side "
                    "only)" % (type(exc).__name__, exc), pytrace=False)
    return tideloop


def stock_new_event_loop():
    loop = asyncio.new_event_loop()
    if not type(loop).__module__.startswith("asyncio."):
        loop.close()
        raise AssertionError(
            "asyncio.new_event_loop() did not return a stock loop (%r): a "
            "policy leaked from another test" % type(loop))
    return loop


def loop_factory_for(kind):
    if kind == "asyncio":
        return stock_new_event_loop
    if kind == "tideloop":
        return import_tideloop().new_event_loop
    raise ValueError(kind)


def is_tideloop_loop(loop):
    return type(loop).__module__.split(".")[0] == "tideloop"


class LoopPool:
    """Creates loops of one kind and closes every one of them at the end."""

    def __init__(self, factory):
        self.factory = factory
        self.loops = []

    def __call__(self):
        loop = self.factory()
        self.loops.append(loop)
        return loop

    def close_all(self):
        for loop in self.loops:
            try:
                if loop.is_running():
                    loop.stop()
                    continue
                if not loop.is_closed():
                    loop.close()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        self.loops = []


def run_on(kind, coro_fn, *, timeout=10.0, debug=None):
    """Run ``coro_fn()`` on a fresh loop of ``kind`` (bounded by ``timeout``)
    and return its result; the loop is always closed."""
    loop = loop_factory_for(kind)()
    try:
        if debug is not None:
            loop.set_debug(debug)
        return run_until(loop, coro_fn(), timeout)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


_NESTED_BUG = []


def stock_nested_run_forever_bug():
    """True when this Python's stock asyncio has CPython issue #130145: a
    run_forever() refused because the loop (or another one) is already
    running still runs its cleanup, which unregisters the running loop.
    Scenarios that would then go on on broken state skip that part."""
    if not _NESTED_BUG:
        loop = stock_new_event_loop()
        seen = []

        def probe():
            try:
                loop.run_forever()
            except RuntimeError:
                pass
            seen.append(asyncio._get_running_loop() is loop
                        and loop.is_running())
            loop.stop()

        try:
            loop.call_soon(probe)
            loop.run_forever()
        finally:
            asyncio.events._set_running_loop(None)
            loop.close()
        _NESTED_BUG.append(not seen[0])
    return _NESTED_BUG[0]


# --------------------------------------------------------------------------
# Bounded runs
# --------------------------------------------------------------------------

# How long a scenario may run before its guard calls it hung: a bound on a
# broken loop, not on a slow machine (the tests wait for events, never for
# a time margin; a loaded 2-core machine must not trip it).
GUARD_TIMEOUT = 30.0


def run_until(loop, aw, timeout=GUARD_TIMEOUT):
    """run_until_complete guarded by asyncio.wait_for: a loop whose timers or
    wake-ups are broken fails with TimeoutError instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


def run_with_pair(loop, make_pair, main, timeout=GUARD_TIMEOUT):
    """run_until(loop, main(a, b), timeout) with a fresh pair of sockets
    (a, b) = make_pair(), both closed afterwards whatever happens: the
    sock_* tests' scaffolding."""
    a, b = make_pair()
    try:
        return run_until(loop, main(a, b), timeout)
    finally:
        a.close()
        b.close()


class LoopHung(AssertionError):
    pass


def collected(ref):
    """Whether the object behind weakref `ref` is gone after two full
    collections (the second frees what the first's finalizers released);
    the ResourceWarning of an unclosed loop or transport is ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
        gc.collect()
    return ref() is None


def run_forever_guarded(loop, timeout=GUARD_TIMEOUT):
    """loop.run_forever(), stopped from a watchdog thread (through
    call_soon_threadsafe, so the loop's own timers are left alone) if it has
    not returned after ``timeout`` seconds; then LoopHung is raised."""
    fired = []

    def rescue():
        fired.append(True)
        try:
            loop.call_soon_threadsafe(loop.stop)
        except Exception:  # noqa: BLE001
            pass

    timer = threading.Timer(timeout, rescue)
    timer.daemon = True
    timer.start()
    try:
        loop.run_forever()
    finally:
        timer.cancel()
        # Until its thread has ended, the timer holds `rescue`, which holds
        # the loop: a test that checks the GC frees the loop must not race
        # with it.
        timer.join()
    if fired:
        raise LoopHung("run_forever() did not return within %.1f s" % timeout)


# --------------------------------------------------------------------------
# Traces and their normalization
# --------------------------------------------------------------------------

_NORMALIZERS = [
    # Frames of the test harness (pytest, pluggy, conftest.py, support.py) in
    # formatted source tracebacks: their line numbers differ between the
    # reference run and the candidate run.
    (re.compile(r'  File "[^"]*(?:/pluggy/|/_pytest/|/tests/conftest\.py|'
                r'/tests/support\.py)[^"]*", line \d+, in [^\n]*\n?'
                r'(?:    [^\n]*\n?)*'), ""),
    # Object addresses.
    (re.compile(r"0x[0-9a-fA-F]+"), "0xADDR"),
    # Loop reprs: <_UnixSelectorEventLoop running=...> vs <Loop running=...>.
    (re.compile(r"<[\w.]+ running=(True|False) closed="),
     r"<LOOP running=\1 closed="),
    # Task name counters are global to the process.
    (re.compile(r"\bTask-\d+\b"), "Task-N"),
    # Qualified names in argument-error messages:
    # "BaseEventLoop.create_task() got an unexpected keyword argument" vs
    # "create_task() got ...".
    (re.compile(r"\b[\w.]+\.(\w+)\(\) (takes|got|missing)"), r"\1() \2"),
]


def normalize_text(text):
    for rx, repl in _NORMALIZERS:
        text = rx.sub(repl, text)
    return text


def normalize(obj):
    if isinstance(obj, str):
        return normalize_text(obj)
    if isinstance(obj, tuple):
        return tuple(normalize(x) for x in obj)
    if isinstance(obj, list):
        return [normalize(x) for x in obj]
    if isinstance(obj, dict):
        return {normalize(k): normalize(v) for k, v in obj.items()}
    return obj


def exc_event(exc):
    """A comparable description of an exception."""
    return (type(exc).__name__, str(exc))


def attempt(trace, label, fn, *args, **kwargs):
    """Call fn; append ("ok", label) or ("raised", label, type, message) to
    trace.  Returns fn's result (None when it raised)."""
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too
        trace.append(("raised", label) + exc_event(exc))
        return None
    trace.append(("ok", label))
    return result


def format_trace_diff(expected, got):
    a = pprint.pformat(expected, width=100).splitlines()
    b = pprint.pformat(got, width=100).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "stock asyncio", "candidate",
                                          lineterm=""))


def run_scenario(kind, scenario):
    """Run scenario(loop[, new_loop]) on fresh loops of ``kind``; every loop
    is closed afterwards.  Returns the normalized trace."""
    pool = LoopPool(loop_factory_for(kind))
    nparams = len(inspect.signature(scenario).parameters)
    try:
        loop = pool()
        trace = scenario(loop) if nparams == 1 else scenario(loop, pool)
    finally:
        pool.close_all()
        asyncio.set_event_loop(None)
    assert isinstance(trace, list), "a scenario must return a list"
    return normalize(trace)


# --------------------------------------------------------------------------
# Logging capture usable inside scenarios
# --------------------------------------------------------------------------

class _ListHandler(logging.Handler):
    def __init__(self, level):
        super().__init__(level)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def capture_asyncio_log(level=logging.WARNING):
    """Collect the records of the 'asyncio' logger at ``level`` or above."""
    logger = logging.getLogger("asyncio")
    handler = _ListHandler(level)
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def record_event(record):
    exc = record.exc_info[1] if record.exc_info else None
    return ("log", record.levelname, record.getMessage(),
            exc_event(exc) if exc is not None else None)


# --------------------------------------------------------------------------
# Child interpreters
# --------------------------------------------------------------------------

# A child of a job started in the background by a non-interactive shell
# inherits SIGINT ignored, and Python then keeps it ignored: the prelude
# gives every child Python's normal Ctrl-C (on the same line, so that line
# numbers in the children's tracebacks do not move).
CHILD_PRELUDE = '''\
import asyncio, os, sys, signal; signal.signal(signal.SIGINT, signal.default_int_handler)
KIND = os.environ["TIDELOOP_TEST_KIND"]
if KIND == "tideloop":
    import tideloop
    new_loop = tideloop.new_event_loop
    def install_policy():
        asyncio.set_event_loop_policy(tideloop.EventLoopPolicy())
else:
    new_loop = asyncio.new_event_loop
    def install_policy():
        pass
def out(*args):
    print(*args, flush=True)
def kind_ok(loop):
    return type(loop).__module__.split(".")[0] == (
        "tideloop" if KIND == "tideloop" else "asyncio")
'''


def child_env(kind, extra=None):
    env = dict(os.environ)
    for var in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONWARNINGS",
                "PYTHONTRACEMALLOC", "PYTHONSTARTUP", "PYTHONINSPECT"):
        env.pop(var, None)
    env["TIDELOOP_TEST_KIND"] = kind
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if extra:
        env.update(extra)
    return env


def child_code(code):
    return CHILD_PRELUDE + textwrap.dedent(code)


def run_child(kind, code, *, timeout=20.0, env=None, python_args=(),
              args=()):
    """Run CHILD_PRELUDE + code with ``python -c``; returns a CompletedProcess
    (text).  The prelude defines KIND, new_loop(), install_policy(), out()
    (print + flush) and kind_ok(loop) (the loop is of the child's kind)."""
    if kind == "tideloop":
        import_tideloop()
    return subprocess.run(
        [sys.executable, *python_args, "-c", child_code(code), *args],
        env=child_env(kind, env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=timeout, cwd=TESTS_DIR)


def spawn_child(kind, code, *, env=None, python_args=()):
    if kind == "tideloop":
        import_tideloop()
    return subprocess.Popen(
        [sys.executable, *python_args, "-c", child_code(code)],
        env=child_env(kind, env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=TESTS_DIR)


def describe_child(proc):
    return "exit status %s\n--- stdout\n%s--- stderr\n%s" % (
        proc.returncode, proc.stdout, proc.stderr)


def kill_child(proc):
    """Kill proc if still running; return (stdout, stderr)."""
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        return "", ""


class ChildLines:
    """Reads a Popen child's stdout lines in a thread, so that the test can
    wait for a line with a timeout."""

    def __init__(self, proc):
        import queue
        self.proc = proc
        self.lines = []
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text, timeout=10.0):
        """Return True once a line equal to text was read."""
        import queue
        import time
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
            if line == text:
                return True

    def finish(self, timeout=10.0):
        """Wait for exit (killing the child after timeout); return
        (returncode, stdout lines, stderr text, timed_out)."""
        timed_out = False
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.proc.kill()
            self.proc.wait(10)
        self._thread.join(10)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() \
                else None
            if line is None:
                break
            self.lines.append(line)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        return self.proc.returncode, self.lines, err, timed_out
