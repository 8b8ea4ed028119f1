"""Run CPython's own ``test.test_asyncio`` against tideloop and count honestly.

Usage (from the repository root)::

    python3 -m compat.run_cpython_suite --python all --build      # everything
    python3 -m compat.run_cpython_suite --python 3.11 --python 3.13
    python3 -m compat.run_cpython_suite --python 3.12 --module test_events --list-failures
    python3 -m compat.run_cpython_suite --python 3.13 --threshold 900
    python3 -m compat.run_cpython_suite --report-only --list-failures   # no run

Without ``--build`` the tideloop under test is the one in ``--tideloop-path``
(default /tmp/tlb, the dev build); with ``--build`` the runner snapshots
ext/ and python/tideloop/ and compiles them for each target Python into
/tmp/tideloop-compat-build/<hash>/ so that all Pythons test the same code.

The Python that runs this script only orchestrates; every test module runs
in its own subprocess of the *target* Python (``--python``):
``<python> -X faulthandler -m compat.run_cpython_suite --child ...``.

How a module is run against tideloop
------------------------------------
* Loop-factory test classes (the concrete ``Select*``/``EPoll*``/``Poll*``/
  ``Selector*`` classes that define ``create_event_loop()`` or
  ``new_loop()``: test_events, test_sendfile, test_sock_lowlevel,
  test_server, test_sslproto, test_buffered_proto) are replaced by one
  ``Tideloop*`` subclass per family whose factory returns
  ``tideloop.new_event_loop()``.  The stock-loop classes are not run.
  A few classes that build a stock loop themselves (``asyncio.BaseEventLoop()``
  with a mocked selector, ``asyncio.SelectorEventLoop()``) in ``setUp()`` /
  ``new_loop()`` get a tideloop loop there instead (``_LOOP_SWAPS``):
  test_base_events, test_pep492, test_runners.
* Everything else runs with ``tideloop.EventLoopPolicy()`` installed.  It
  is re-installed before a test if the previous test installed another
  policy, and
  ``asyncio.set_event_loop_policy(None)`` (used by the tests' tearDown /
  tearDownModule) re-installs a tideloop policy instead of the default one.
* Every test records which loops it created and ran (hooks on
  ``tideloop.Loop.__init__``/``run_forever`` and on
  ``asyncio.BaseEventLoop.__init__``/``run_forever``).  A test counts as
  "ran on tideloop" only if a tideloop loop was created or run during it.
  Tests that only used ``test_utils.TestLoop`` (fake clock), a stock loop,
  or no loop at all are counted as "not on tideloop", whatever their result.
* A failing test on tideloop is "not implemented" (and not a behavioural
  failure) if tideloop raised its "tideloop does not implement loop.X()
  yet" NotImplementedError during the test (recorded by hooks on those
  methods, or found in the traceback / captured output).
* ``compat/exclusions.py`` lists tests that poke at stock asyncio private
  internals; they are not run and are counted as "excluded".
* A per-test watchdog (``--test-timeout``) and a per-module budget
  (``--module-timeout``) turn hangs into recorded failures.  A crash
  (segfault, abort) or a hang kills the child; the runner records the test
  that was running (with the faulthandler traceback) and restarts the module
  after that test, so one crash does not hide the rest of the module.

Outputs: ``compat/results/py3.X.json`` (every test with its outcome, one
line per test) and ``compat/results/summary.md`` (the table over all Python
versions that have a results file), also printed; child logs (test output,
faulthandler dumps) in ``compat/results/logs/py3.X/`` (not versioned).

Self-test of the crash/hang handling: ``TLCOMPAT_SELFTEST_CRASH=<part of a
test id>`` segfaults in that test, ``TLCOMPAT_SELFTEST_HANG=<...>`` hangs.
"""

import argparse
import fnmatch
import glob
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
PYENV = "/root/.pyenv/versions"
DEFAULT_TIDELOOP_PATH = os.environ.get("TIDELOOP_PATH", "/tmp/tlb")
NIE_MARK = "tideloop does not implement"
PKG = "test.test_asyncio."

# Final per-test buckets.
PASSED = "passed"
FAILED = "failed"
ERROR = "error"
SKIPPED = "skipped"
XFAIL = "expected_failure"
UNEXPECTED_SUCCESS = "unexpected_success"
EXCLUDED = "excluded"
NOT_IMPLEMENTED = "not_implemented"
NOT_ON_TIDELOOP = "not_on_tideloop"
CRASH = "crash"
HANG = "hang"

BUCKETS = (PASSED, FAILED, ERROR, CRASH, HANG, XFAIL, UNEXPECTED_SUCCESS,
           NOT_IMPLEMENTED, SKIPPED, EXCLUDED, NOT_ON_TIDELOOP)
# Buckets of tests that ran on tideloop.
ON_TIDELOOP = (PASSED, FAILED, ERROR, CRASH, HANG, XFAIL, UNEXPECTED_SUCCESS,
               NOT_IMPLEMENTED)
# Behavioural failures (bugs to fix).
BAD = (FAILED, ERROR, CRASH, HANG, UNEXPECTED_SUCCESS)

# Stock loop-factory classes are recognised by name: these are the
# selector flavours (Proactor ones are Windows only).
_FACTORY_NAME = re.compile(r"(Select|EPoll|Poll|Kqueue|Selector|Proactor)")
_FACTORY_PREFERENCE = ("Select", "EPoll", "Poll")

# Classes that build a stock loop themselves rather than through a factory
# method: (module, class, method, asyncio attribute, how, kind).  While
# `method` runs, ``asyncio.<attribute>`` builds a tideloop loop instead.  "variant": a Tideloop<class> subclass replaces the
# class; "inplace": the class (a base of the module's test classes) is
# patched, test ids are unchanged.  Mock attributes those methods set on
# the loop (``loop._selector = mock.Mock()`` ...) are inert on tideloop.
# Tests that then poke at the stock loop's internals are in exclusions.py.
#
# test_pep492's and test_runners' helpers then set ``loop._selector``,
# ``loop._process_events`` and ``loop._write_to_self`` to mocks (inert for
# those tests: they do no I/O).  tideloop may define some of these names as
# read-only properties, so these two get a subclass of tideloop.Loop where
# the three names are plain class attributes that the mocks can replace
# ("mockable"); everything else is tideloop's.
_LOOP_SWAPS = (
    ("test_base_events", "BaseEventLoopWithSelectorTests", "setUp",
     "SelectorEventLoop", "variant", "plain"),
    ("test_pep492", "BaseTest", "setUp", "BaseEventLoop", "inplace",
     "mockable"),
    ("test_runners", "BaseTest", "new_loop", "BaseEventLoop", "inplace",
     "mockable"),
)
_MOCKED_PRIVATE = ("_selector", "_process_events", "_write_to_self")


def _short(test_id):
    return test_id[len(PKG):] if test_id.startswith(PKG) else test_id


# ---------------------------------------------------------------------------
# Child: run one module in this interpreter
# ---------------------------------------------------------------------------

class _State:
    """What the current test did (reset at each startTest)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.tl_created = 0
        self.tl_ran = 0
        self.other_loops = {}     # class name -> count
        self.other_ran = 0
        self.nie_calls = []
        self.policy_resets = 0


STATE = _State()
# Set by child_main: lets the hooks report from a fork of the test process
# (multiprocessing "fork" children, os.fork()) to the JSONL file.
_CHILD = {"pid": None, "fd": None, "result": None}


def _report_from_fork(name):
    if _CHILD["fd"] is None or os.getpid() == _CHILD["pid"]:
        return
    res = _CHILD["result"]
    cur = getattr(res, "current", None)
    try:
        os.write(_CHILD["fd"], (json.dumps(
            {"ev": "fork_nie", "id": cur, "name": name,
             "pid": os.getpid()}) + "\n").encode())
    except OSError:
        pass


def _install_hooks(tideloop):
    import asyncio
    from asyncio import base_events, events

    Loop = tideloop.Loop

    orig_init = Loop.__init__

    def __init__(self, *args, **kwargs):
        STATE.tl_created += 1
        return orig_init(self, *args, **kwargs)

    Loop.__init__ = __init__

    orig_run_forever = Loop.run_forever

    def run_forever(self, *args, **kwargs):
        STATE.tl_ran += 1
        return orig_run_forever(self, *args, **kwargs)

    Loop.run_forever = run_forever

    BaseEventLoop = base_events.BaseEventLoop
    orig_b_init = BaseEventLoop.__init__

    def b_init(self, *args, **kwargs):
        name = type(self).__name__
        STATE.other_loops[name] = STATE.other_loops.get(name, 0) + 1
        return orig_b_init(self, *args, **kwargs)

    BaseEventLoop.__init__ = b_init
    orig_b_run = BaseEventLoop.run_forever

    def b_run(self, *args, **kwargs):
        STATE.other_ran += 1
        return orig_b_run(self, *args, **kwargs)

    BaseEventLoop.run_forever = b_run

    # The "not implemented yet" methods: found by their docstring, so the
    # list follows tideloop as it grows.
    import inspect
    for name, func in list(vars(Loop).items()):
        doc = getattr(func, "__doc__", None) or ""
        if not callable(func) or NIE_MARK not in doc:
            continue

        def wrap(func=func, name=name):
            if inspect.iscoroutinefunction(func):
                async def method(self, *args, **kwargs):
                    STATE.nie_calls.append(name)
                    _report_from_fork(name)
                    return await func(self, *args, **kwargs)
            else:
                def method(self, *args, **kwargs):
                    STATE.nie_calls.append(name)
                    _report_from_fork(name)
                    return func(self, *args, **kwargs)
            method.__name__ = method.__qualname__ = name
            method.__doc__ = func.__doc__
            return method

        setattr(Loop, name, wrap())

    # 3.14+: call_soon_threadsafe() returns asyncio's private
    # events._ThreadSafeHandle, and test_events asserts isinstance on it
    # before testing its lock.  tideloop's handles are C types (a known
    # difference) that carry those semantics when made by
    # call_soon_threadsafe (their _threadsafe flag): let the check accept
    # them.  Stock loops still make the real class (a same-named subclass
    # that adds nothing).
    orig_ts = getattr(events, "_ThreadSafeHandle", None)
    if orig_ts is not None:
        class _AcceptsTideloop(type):
            def __instancecheck__(cls, obj):
                return (type.__instancecheck__(cls, obj)
                        or isinstance(obj, orig_ts)
                        or (isinstance(obj, tideloop._core.Handle)
                            and bool(getattr(obj, "_threadsafe", False))))

        events._ThreadSafeHandle = _AcceptsTideloop(
            orig_ts.__name__, (orig_ts,),
            {"__slots__": (), "__module__": orig_ts.__module__,
             "__qualname__": orig_ts.__qualname__})

    # Keep tideloop's policy in force, set without tideloop's or asyncio's
    # 3.14 deprecation warnings (tests that record warnings must see only
    # their own).
    orig_set_policy = events.set_event_loop_policy
    quiet_set_policy = getattr(events, "_set_event_loop_policy",
                               orig_set_policy)
    new_policy = getattr(getattr(tideloop, "_policy", None), "_new_policy",
                         tideloop.EventLoopPolicy)

    def set_event_loop_policy(policy):
        if policy is None:
            STATE.policy_resets += 1
            policy = new_policy()
        return orig_set_policy(policy)

    set_event_loop_policy.__doc__ = orig_set_policy.__doc__
    events.set_event_loop_policy = set_event_loop_policy
    asyncio.set_event_loop_policy = set_event_loop_policy

    def ensure_policy():
        # Like the default policy under regrtest, the tideloop policy
        # persists from test to test (some tests depend on its state, e.g.
        # set_event_loop() having been called); only a test that installed
        # another policy gets a fresh tideloop one for the next test.
        if not isinstance(events._event_loop_policy, tideloop.EventLoopPolicy):
            quiet_set_policy(new_policy())

    ensure_policy()
    return ensure_policy


def _make_factory_variants(mod, tideloop):
    """Replace the stock loop-factory classes of `mod` by Tideloop ones.
    Return (new classes, replaced classes, patched methods)."""
    groups = {}
    for name, obj in list(vars(mod).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and obj.__module__ == mod.__name__):
            continue
        if not ("create_event_loop" in obj.__dict__ or
                "new_loop" in obj.__dict__):
            continue
        if not _FACTORY_NAME.search(name):
            continue
        groups.setdefault(obj.__bases__, []).append(obj)

    new, replaced, patched = [], [], []
    for bases, members in groups.items():
        replaced.extend(members)
        chosen = None
        for pref in _FACTORY_PREFERENCE:
            for cls in members:
                if pref in cls.__name__:
                    chosen = cls
                    break
            if chosen:
                break
        if chosen is None:
            continue
        newname = re.sub(r"Selector|Select|EPoll|Poll", "Tideloop",
                         chosen.__name__, count=1)
        ns = {"__module__": mod.__name__, "__qualname__": newname}

        def create_event_loop(self):
            return tideloop.new_event_loop()

        if "create_event_loop" in chosen.__dict__:
            ns["create_event_loop"] = create_event_loop
        if "new_loop" in chosen.__dict__:
            ns["new_loop"] = create_event_loop
        cls = type(newname, (chosen,), ns)
        setattr(mod, newname, cls)
        new.append(cls)

    modname = mod.__name__.rsplit(".", 1)[-1]
    mockable = type("MockableTideloopLoop", (tideloop.Loop,),
                    dict.fromkeys(_MOCKED_PRIVATE))
    for swap_mod, clsname, meth, attr, how, kind in _LOOP_SWAPS:
        base = getattr(mod, clsname, None) if swap_mod == modname else None
        if base is None or meth not in base.__dict__:
            continue
        orig = base.__dict__[meth]
        factory = mockable if kind == "mockable" else tideloop.new_event_loop

        def swapped(self, *args, _orig=orig, _attr=attr, _factory=factory,
                    **kwargs):
            import asyncio
            saved = getattr(asyncio, _attr)
            setattr(asyncio, _attr, _factory)
            try:
                return _orig(self, *args, **kwargs)
            finally:
                setattr(asyncio, _attr, saved)

        swapped.__name__ = swapped.__qualname__ = meth
        if how == "inplace":
            setattr(base, meth, swapped)
            patched.append(f"{clsname}.{meth}")
            continue
        newname = "Tideloop" + clsname
        cls = type(newname, (base,), {"__module__": mod.__name__,
                                      "__qualname__": newname,
                                      meth: swapped})
        setattr(mod, newname, cls)
        new.append(cls)
        replaced.append(base)
    return new, replaced, patched


def _iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _iter_tests(t)
        else:
            yield t


def _exc_chain_has_nie(value):
    seen = set()
    while value is not None and id(value) not in seen:
        seen.add(id(value))
        if isinstance(value, NotImplementedError) and NIE_MARK in str(value):
            return True
        value = value.__cause__ or value.__context__
    return False


def _first_line(err):
    exctype, value, _tb = err
    try:
        lines = traceback.format_exception_only(exctype, value)
        line = lines[-1].strip() if lines else exctype.__name__
    except Exception:
        line = getattr(exctype, "__name__", str(exctype))
    # Assertion messages can be long: keep the first line, 300 chars.
    line = line.splitlines()[0] if line else line
    return line[:300]


def _raised_at(err):
    """The innermost frame of the traceback: where it was raised."""
    tb = err[2]
    frames = traceback.extract_tb(tb) if tb is not None else []
    if not frames:
        return None
    fr = frames[-1]
    path = fr.filename
    for mark in ("/lib/python3", "/tideloop/"):
        i = path.find(mark)
        if i >= 0:
            path = path[i + 1:]
            break
    return f"{path}:{fr.lineno} in {fr.name}: {(fr.line or '').strip()}"[:200]


def _where(err):
    """The innermost frame of the traceback that is in a test file or in
    tideloop, for a report."""
    tb = err[2]
    frames = traceback.extract_tb(tb) if tb is not None else []
    best = None
    for fr in frames:
        if "test_asyncio" in fr.filename or "tideloop" in fr.filename:
            best = fr
    if best is None and frames:
        best = frames[-1]
    if best is None:
        return None
    line = (best.line or "").strip()
    return f"{os.path.basename(best.filename)}:{best.lineno} {line}".strip()


def _selftest(test_id):
    """Check the crash/hang handling of this runner:
    TLCOMPAT_SELFTEST_CRASH=<substring of a test id> segfaults in that
    test, TLCOMPAT_SELFTEST_HANG=<substring> hangs in it."""
    crash = os.environ.get("TLCOMPAT_SELFTEST_CRASH")
    if crash and crash in test_id:
        import ctypes
        ctypes.string_at(0)
    hang = os.environ.get("TLCOMPAT_SELFTEST_HANG")
    if hang and hang in test_id:
        while True:
            time.sleep(1)


class RecordingResult(unittest.TestResult):
    def __init__(self, writer, ensure_policy, test_timeout):
        super().__init__()
        self.buffer = True
        self.writer = writer
        self.ensure_policy = ensure_policy
        self.test_timeout = test_timeout
        self.current = None
        self.current_start = None
        self.rec = None

    # -- per test ---------------------------------------------------------
    def startTest(self, test):
        STATE.reset()
        try:
            self.ensure_policy()
        except Exception:
            pass
        self.current = test.id()
        self.current_start = time.monotonic()
        self.rec = {"id": test.id(), "outcomes": [], "error": None,
                    "where": None, "traceback": None, "nie_in_error": False,
                    "reason": None}
        self.writer({"ev": "start", "id": test.id()})
        super().startTest(test)
        _selftest(test.id())

    def _outcome(self, test, kind, err=None, reason=None):
        if isinstance(test, unittest.case._SubTest):
            test = test.test_case
        if not isinstance(test, unittest.TestCase) or self.rec is None or \
                test.id() != self.rec["id"]:
            # setUpModule / setUpClass / tearDownClass ... errors
            rec = {"ev": "fixture", "id": str(test), "kind": kind}
            if err is not None:
                rec["error"] = _first_line(err)
                rec["where"] = _where(err)
                rec["traceback"] = self._exc_info_to_string(err, test)[-6000:]
                rec["nie_in_error"] = (_exc_chain_has_nie(err[1]) or
                                       NIE_MARK in rec["traceback"])
            self.writer(rec)
            return
        rec = self.rec
        rec["outcomes"].append(kind)
        if err is not None and rec["error"] is None:
            rec["error"] = _first_line(err)
            rec["where"] = _where(err)
            rec["raised_at"] = _raised_at(err)
            try:
                text = self._exc_info_to_string(err, test)
            except Exception:
                text = rec["error"]
            rec["traceback"] = text[-6000:]
        if err is not None:
            try:
                text = self._exc_info_to_string(err, test)
            except Exception:
                text = ""
            if _exc_chain_has_nie(err[1]) or NIE_MARK in text:
                rec["nie_in_error"] = True
        if reason is not None:
            rec["reason"] = str(reason)[:300]

    def addSuccess(self, test):
        super().addSuccess(test)
        self._outcome(test, PASSED)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._outcome(test, FAILED, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._outcome(test, ERROR, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._outcome(test, SKIPPED, reason=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._outcome(test, XFAIL)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._outcome(test, UNEXPECTED_SUCCESS)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = FAILED if issubclass(err[0], test.failureException) \
                else ERROR
            self._outcome(test, kind, err)

    def stopTest(self, test):
        super().stopTest(test)
        rec, self.rec = self.rec, None
        self.current = None
        if rec is None:
            return
        rec["secs"] = round(time.monotonic() - self.current_start, 3)
        rec["tl_created"] = STATE.tl_created
        rec["tl_ran"] = STATE.tl_ran
        rec["other_loops"] = dict(STATE.other_loops)
        rec["other_ran"] = STATE.other_ran
        rec["nie_calls"] = sorted(set(STATE.nie_calls))
        rec["policy_resets"] = STATE.policy_resets
        outs = rec["outcomes"] or [ERROR]
        if ERROR in outs:
            raw = ERROR
        elif FAILED in outs:
            raw = FAILED
        elif UNEXPECTED_SUCCESS in outs:
            raw = UNEXPECTED_SUCCESS
        elif XFAIL in outs:
            raw = XFAIL
        elif SKIPPED in outs and PASSED not in outs:
            raw = SKIPPED
        else:
            raw = PASSED
        rec["raw"] = raw
        del rec["outcomes"]
        rec["loop"] = _loop_kind(rec)
        rec["bucket"] = classify(rec)
        if rec["id"] in getattr(self, "excluded_run", {}):
            reason, pattern = self.excluded_run[rec["id"]]
            rec["excluded_outcome"] = rec["bucket"]
            rec["bucket"] = EXCLUDED
            rec["reason"], rec["pattern"] = reason, pattern
        rec["ev"] = "end"
        self.writer(rec)


def classify(rec):
    raw = rec["raw"]
    if raw == SKIPPED:
        return SKIPPED
    on_tl = rec["tl_created"] > 0 or rec["tl_ran"] > 0
    if not on_tl:
        return NOT_ON_TIDELOOP
    if raw in (FAILED, ERROR) and (rec["nie_in_error"] or rec["nie_calls"]):
        return NOT_IMPLEMENTED
    return raw


def _loop_kind(rec):
    if rec.get("tl_created") or rec.get("tl_ran"):
        # "mixed": the test also built a TestLoop or a stock loop (e.g. a
        # test_tasks test whose setUp makes a TestLoop while the test body
        # runs its own asyncio.new_event_loop()).
        return "mixed" if rec.get("other_loops") else "tideloop"
    others = rec.get("other_loops") or {}
    if "TestLoop" in others:
        return "test_loop"
    if others:
        return "stock_loop"
    return "no_loop"


def child_main(args):
    import faulthandler
    if not faulthandler.is_enabled():
        faulthandler.enable()
    pid = os.getpid()
    fd = os.open(args.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lock = threading.Lock()

    def writer(obj):
        if os.getpid() != pid:      # a forked child of a test
            return
        data = (json.dumps(obj, default=str) + "\n").encode()
        with lock:
            os.write(fd, data)

    skip = set()
    if args.skip_file and os.path.exists(args.skip_file):
        with open(args.skip_file) as f:
            skip = {line.strip() for line in f if line.strip()}

    import tideloop
    ensure_policy = _install_hooks(tideloop)
    from compat.exclusions import EXCLUSIONS

    writer({"ev": "module_start", "module": args.module,
            "python": sys.version.split()[0],
            "tideloop": os.path.dirname(tideloop.__file__),
            "core": tideloop._core.__file__})

    try:
        mod = importlib.import_module(PKG + args.module)
    except unittest.SkipTest as exc:
        writer({"ev": "module_skip", "reason": str(exc)})
        return 0
    except BaseException:
        writer({"ev": "module_error", "error": traceback.format_exc()[-4000:]})
        return 0

    new, replaced, patched = _make_factory_variants(mod, tideloop)
    writer({"ev": "variants", "new": [c.__name__ for c in new],
            "replaced": [c.__name__ for c in replaced],
            "patched": patched})
    replaced = tuple(replaced)

    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(mod)
    tests = []
    excluded_run = {}
    n_replaced = 0
    for t in _iter_tests(suite):
        if replaced and type(t) in replaced:
            n_replaced += 1
            continue
        if t.id() in skip:
            continue
        reason = pattern = None
        short = _short(t.id())
        for pat, why in EXCLUSIONS.items():
            if fnmatch.fnmatchcase(short, pat):
                reason, pattern = why, pat
                break
        if reason is not None:
            if args.run_excluded:
                # Run it for information; it still counts as excluded.
                excluded_run[t.id()] = (reason, pattern)
            else:
                writer({"ev": "end", "id": t.id(), "raw": EXCLUDED,
                        "bucket": EXCLUDED, "reason": reason,
                        "pattern": pattern, "secs": 0})
                continue
        tests.append(t)
    writer({"ev": "loaded", "count": len(tests),
            "stock_factory_tests_dropped": n_replaced})

    result = RecordingResult(writer, ensure_policy, args.test_timeout)
    result.excluded_run = excluded_run
    _CHILD.update(pid=pid, fd=fd, result=result)

    # Watchdog: a test that runs longer than test_timeout is a hang.
    def watchdog():
        import faulthandler
        while True:
            time.sleep(0.5)
            cur, start = result.current, result.current_start
            if cur is None or start is None:
                continue
            if time.monotonic() - start > args.test_timeout:
                if result.current != cur or result.current_start != start:
                    continue        # that test just ended
                writer({"ev": "hang", "id": cur,
                        "secs": round(time.monotonic() - start, 1),
                        "tl_created": STATE.tl_created,
                        "tl_ran": STATE.tl_ran,
                        "other_loops": dict(STATE.other_loops),
                        "nie_calls": sorted(set(STATE.nie_calls))})
                sys.__stderr__.write(
                    f"\n*** compat watchdog: {cur} still running after "
                    f"{args.test_timeout}s; thread stacks:\n")
                sys.__stderr__.flush()
                faulthandler.dump_traceback(file=sys.__stderr__,
                                            all_threads=True)
                os._exit(124)

    threading.Thread(target=watchdog, daemon=True).start()

    unittest.TestSuite(tests).run(result)
    writer({"ev": "done"})
    sys.stdout.flush()
    sys.stderr.flush()
    # Do not wait for stray non-daemon threads or atexit hooks that hang.
    os._exit(0)


# ---------------------------------------------------------------------------
# Parent: orchestrate subprocesses, collect, report
# ---------------------------------------------------------------------------

def resolve_python(spec):
    if os.path.sep in spec:
        return spec
    m = re.fullmatch(r"(?:py)?(3\.\d+)(\.\d+)?", spec)
    if not m:
        raise SystemExit(f"bad --python {spec!r}")
    cands = sorted(glob.glob(os.path.join(PYENV, spec + ("" if m.group(2)
                                                               else ".*"),
                                          "bin", "python")))
    if not cands and not m.group(2):
        # python3.14 / python3.15 of the Debian sid root
        # (../shared/tools/sid-root.sh run python3.14 -m compat...).
        import shutil
        found = shutil.which("python" + m.group(1))
        cands = [found] if found else []
    if not cands:
        raise SystemExit(f"no Python {spec} under {PYENV} or on PATH")
    return cands[-1]


def all_pythons():
    out = []
    for minor in ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"):
        try:
            out.append(resolve_python(minor))
        except SystemExit:
            pass
    return out


def py_info(python):
    code = ("import sys, os, test.test_asyncio as t;"
            "print(sys.version.split()[0]);"
            "print(os.path.dirname(t.__file__))")
    out = subprocess.run([python, "-c", code], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    version, tdir = out[0].strip(), out[1].strip()
    mods = sorted(os.path.basename(p)[:-3]
                  for p in glob.glob(os.path.join(tdir, "test_*.py")))
    return version, tdir, mods


def _read_jsonl(path):
    recs = []
    if not os.path.exists(path):
        return recs
    with open(path, "rb") as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


def _tail(text, n=60):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def _faulthandler_excerpt(text):
    """The faulthandler part of a child's stderr (crash or watchdog)."""
    for mark in ("Fatal Python error", "*** compat watchdog",
                 "Timeout ("):
        i = text.rfind(mark)
        if i >= 0:
            return text[i:i + 6000]
    return _tail(text, 40)


def run_module(python, module, opts, logdir):
    """Run one test module in child processes (restarting after a crash or
    hang).  Return the module's summary dict and its test records."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([opts.tideloop_path, REPO])
    env.pop("PYTHONASYNCIODEBUG", None)
    if opts.asyncio_debug:
        env["PYTHONASYNCIODEBUG"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    tests = {}           # id -> record
    fixtures = []
    events = []          # crashes / hangs / timeouts
    meta = {}
    t0 = time.monotonic()
    attempts = 0
    tmp = tempfile.mkdtemp(prefix=f"tlcompat-{module}-")
    skip_file = os.path.join(tmp, "skip.txt")
    while True:
        attempts += 1
        jsonl = os.path.join(tmp, f"attempt{attempts}.jsonl")
        with open(skip_file, "w") as f:
            f.write("\n".join(tests) + "\n")
        budget = opts.module_timeout - (time.monotonic() - t0)
        cmd = [python, "-X", "faulthandler", "-m", "compat.run_cpython_suite",
               "--child", "--module", module, "--jsonl", jsonl,
               "--skip-file", skip_file,
               "--test-timeout", str(opts.test_timeout)]
        if opts.run_excluded:
            cmd.append("--run-excluded")
        errpath = os.path.join(logdir, f"{module}.{attempts}.log")
        with open(errpath, "wb") as errf:
            proc = subprocess.Popen(cmd, cwd=tmp, env=env,
                                    stdout=errf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            timed_out = False
            try:
                rc = proc.wait(timeout=max(budget, 1))
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGABRT)   # faulthandler dump
                    proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rc = proc.wait()
        # Also reap anything the tests left behind in the session.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with open(errpath, "rb") as f:
            errtext = f.read().decode("utf-8", "replace")

        recs = _read_jsonl(jsonl)
        fork_nie = {}
        started = None
        hang = None
        done = False
        for r in recs:
            ev = r.get("ev")
            if ev == "start":
                started = r["id"]
            elif ev == "end":
                r.pop("ev", None)
                tests[r["id"]] = r
                if started == r["id"]:
                    started = None
            elif ev == "hang":
                hang = r
            elif ev == "fixture":
                r.pop("ev", None)
                fixtures.append(r)
            elif ev == "done":
                done = True
            elif ev == "fork_nie":
                fork_nie.setdefault(r.get("id"), set()).add(r.get("name"))
            elif ev in ("module_start", "variants", "loaded",
                        "module_skip", "module_error"):
                if ev == "loaded":
                    meta.setdefault("loaded", r["count"])
                    meta["stock_factory_tests_dropped"] = \
                        r["stock_factory_tests_dropped"]
                else:
                    r.pop("ev", None)
                    meta.setdefault(ev, r)

        # NotImplementedError hit in a forked child of the test.
        for tid, names in fork_nie.items():
            r = tests.get(tid)
            if r is None or r.get("raw") not in (FAILED, ERROR):
                continue
            r["nie_calls"] = sorted(set(r.get("nie_calls") or []) | names)
            r["nie_in_fork"] = True
            r["bucket"] = classify(r)
        if done and rc == 0:
            break
        if "module_skip" in meta or "module_error" in meta:
            break
        # The child died: crash, watchdog hang or module budget timeout.
        if timed_out:
            kind = HANG
            what = f"module budget of {opts.module_timeout}s exhausted"
        elif hang is not None or rc == 124:
            kind = HANG
            what = f"test ran longer than {opts.test_timeout}s"
        else:
            kind = CRASH
            if rc < 0:
                try:
                    what = f"killed by {signal.Signals(-rc).name}"
                except ValueError:
                    what = f"killed by signal {-rc}"
            else:
                what = f"child exited with status {rc}"
        culprit = started or (hang or {}).get("id")
        nie_calls = (hang or {}).get("nie_calls") or []
        if nie_calls:
            # e.g. a test waiting forever for a connection that tideloop's
            # NotImplementedError never made: not a behavioural bug.
            what += " after calling not-implemented " + ", ".join(nie_calls)
        event = {"module": module, "kind": kind, "test": culprit,
                 "detail": what, "attempt": attempts, "log": errpath,
                 "after_not_implemented": bool(nie_calls),
                 "excerpt": _faulthandler_excerpt(errtext)}
        events.append(event)
        if culprit is not None:
            tests[culprit] = {
                "id": culprit, "raw": kind,
                "bucket": NOT_IMPLEMENTED if nie_calls else kind,
                "error": f"{kind.upper()}: {what}",
                "traceback": event["excerpt"], "secs": None,
                "where": None,
                "tl_created": (hang or {}).get("tl_created"),
                "tl_ran": (hang or {}).get("tl_ran"),
                "other_loops": (hang or {}).get("other_loops"),
                "nie_calls": nie_calls,
            }
        if timed_out or culprit is None or attempts >= opts.max_restarts:
            if culprit is None:
                meta["module_error"] = {"error": f"{what} outside a test:\n"
                                                 + _tail(errtext)}
            break
        if time.monotonic() - t0 >= opts.module_timeout:
            break

    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {b: 0 for b in BUCKETS}
    for r in tests.values():
        counts[r["bucket"]] = counts.get(r["bucket"], 0) + 1
    summary = {
        "module": module,
        "secs": round(time.monotonic() - t0, 1),
        "attempts": attempts,
        "counts": counts,
        "events": events,
        "fixture_errors": fixtures,
    }
    summary.update(meta)
    return summary, list(tests.values())


def totals_of(modules):
    counts = {b: 0 for b in BUCKETS}
    for m in modules.values():
        for b, n in m["counts"].items():
            counts[b] = counts.get(b, 0) + n
    counts["ran_on_tideloop"] = sum(counts[b] for b in ON_TIDELOOP)
    return counts


def run_python(python, opts):
    version, tdir, mods = py_info(python)
    minor = ".".join(version.split(".")[:2])
    # Two runs for the same Python at once would clobber each other's logs
    # and JSON: the second waits.
    import fcntl
    lockf = open(os.path.join(RESULTS, f".py{minor}.lock"), "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"== Python {version}: another run holds "
              f"{lockf.name}; waiting", flush=True)
        fcntl.flock(lockf, fcntl.LOCK_EX)
    try:
        return _run_python_locked(python, opts, version, mods, minor)
    finally:
        lockf.close()


def _run_python_locked(python, opts, version, mods, minor):
    if opts.module:
        unknown = [m for m in opts.module if m not in mods]
        if unknown:
            raise SystemExit(f"unknown module(s) for {version}: {unknown}")
        mods = [m for m in mods if m in opts.module]
    logdir = os.path.join(RESULTS, "logs", f"py{minor}")
    os.makedirs(logdir, exist_ok=True)
    for old in glob.glob(os.path.join(logdir, "*.log")):
        if not opts.module or os.path.basename(old).split(".")[0] in mods:
            os.unlink(old)
    print(f"== Python {version} ({python}): {len(mods)} modules, "
          f"-j{opts.jobs}", flush=True)
    t0 = time.monotonic()
    results = {}
    lock = threading.Lock()
    queue = list(mods)
    # Big modules first so the pool finishes together.
    big = ("test_events", "test_tasks", "test_base_events", "test_ssl",
           "test_streams", "test_subprocess", "test_sslproto")
    queue.sort(key=lambda m: (m not in big, big.index(m) if m in big else 0))

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                m = queue.pop(0)
            try:
                summary, tests = run_module(python, m, opts, logdir)
            except Exception:
                # A bug of this runner must not lose the module silently.
                summary = {"module": m, "secs": 0, "attempts": 0,
                           "counts": {b: 0 for b in BUCKETS}, "events": [],
                           "fixture_errors": [],
                           "module_error": {"error": "runner error:\n" +
                                            traceback.format_exc()}}
                tests = []
            with lock:
                results[m] = (summary, tests)
                c = summary["counts"]
                flag = ""
                if summary["events"]:
                    flag = "  !! " + ", ".join(
                        f"{e['kind']}: {_short(e['test'] or '?')}"
                        for e in summary["events"])
                if "module_error" in summary:
                    flag += "  !! module error"
                print(f"  {m:28s} {summary['secs']:6.1f}s "
                      f"pass={c[PASSED]} fail={c[FAILED]} err={c[ERROR]} "
                      f"nie={c[NOT_IMPLEMENTED]} skip={c[SKIPPED]} "
                      f"excl={c[EXCLUDED]} not-tl={c[NOT_ON_TIDELOOP]}"
                      f"{flag}", flush=True)

    threads = [threading.Thread(target=worker) for _ in range(opts.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = round(time.monotonic() - t0, 1)

    path = os.path.join(RESULTS, f"py{minor}.json")
    data = None
    if opts.module and os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        if data.get("python") != version:
            data = None
    if data is None:
        data = {"python": version, "modules": {}, "tests": []}
    keep = [t for t in data["tests"]
            if t["id"][len(PKG):].split(".")[0] not in results]
    for m in sorted(results):
        summary, tests = results[m]
        data["modules"][m] = summary
        keep.extend(sorted(tests, key=lambda r: r["id"]))
    data["tests"] = keep
    data["executable"] = python
    data["tideloop_path"] = opts.tideloop_path
    data["core_mtime"] = _core_mtime(opts.tideloop_path, python)
    data["snapshot"] = opts.snapshot
    data["py_sources_sha1"] = _hash_files(
        sorted(glob.glob(os.path.join(opts.tideloop_path, "tideloop",
                                      "*.py"))), opts.tideloop_path)
    data["git_head"] = opts.git_head
    data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if opts.module:
        data["last_partial_run"] = {"modules": sorted(results),
                                    "wall_secs": wall}
    else:
        data["wall_secs"] = wall
        data["jobs"] = opts.jobs
        data.pop("last_partial_run", None)
    data["totals"] = totals_of(data["modules"])
    kinds = {}
    for t in data["tests"]:
        if t["bucket"] == NOT_ON_TIDELOOP:
            k = t.get("loop") or _loop_kind(t)
            kinds[k] = kinds.get(k, 0) + 1
    data["not_on_tideloop_by_loop"] = kinds
    if not opts.module:
        from compat.exclusions import EXCLUSIONS
        used = {t.get("pattern") for t in data["tests"]
                if t["bucket"] == EXCLUDED}
        data["unused_exclusions"] = sorted(set(EXCLUSIONS) - used)
        if data["unused_exclusions"]:
            print("   exclusion patterns matching no test on this Python: "
                  + ", ".join(data["unused_exclusions"]), flush=True)
    _write_results(path, data)
    print(f"   wrote {os.path.relpath(path)} in {wall}s", flush=True)
    return data


def _source_files(root):
    files = sorted(glob.glob(os.path.join(root, "ext", "*.[ch]")) +
                   glob.glob(os.path.join(root, "python", "tideloop", "*.py")))
    return files


def _hash_files(files, root):
    import hashlib
    h = hashlib.sha1()
    for path in files:
        h.update(os.path.relpath(path, root).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()[:12]


def snapshot_build(pythons, root=REPO, dest="/tmp/tideloop-compat-build"):
    """Copy ext/ and python/tideloop/ of the working tree as they are now
    and build tideloop._core for each Python from that copy, into a private
    directory (nothing in the repository or in /tmp/tlb is written).  All
    Pythons of a run then test the same code, even while it is edited.
    Return the directory to put on sys.path."""
    import shutil
    files = _source_files(root)
    digest = _hash_files(files, root)
    snap = os.path.join(dest, digest)
    # Keep the 8 most recent snapshots.
    old = sorted(glob.glob(os.path.join(dest, "[0-9a-f]" * 12)),
                 key=os.path.getmtime)
    for path in old[:-8]:
        if path != snap:
            shutil.rmtree(path, ignore_errors=True)
    src = os.path.join(snap, "src")
    lib = os.path.join(snap, "lib", "tideloop")
    if not os.path.isdir(src):
        tmp = src + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for path in files:
            rel = os.path.relpath(path, root)
            os.makedirs(os.path.join(tmp, os.path.dirname(rel)),
                        exist_ok=True)
            shutil.copy2(path, os.path.join(tmp, rel))
        os.rename(tmp, src)
    os.makedirs(lib, exist_ok=True)
    for path in glob.glob(os.path.join(src, "python", "tideloop", "*.py")):
        shutil.copy2(path, lib)
    try:
        uv = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"],
                            capture_output=True, text=True,
                            check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        uv = ["-luv"]
    cfiles = sorted(glob.glob(os.path.join(src, "ext", "*.c")))
    for py in pythons:
        code = ("import sysconfig;print(sysconfig.get_paths()['include']);"
                "print(sysconfig.get_config_var('EXT_SUFFIX'))")
        inc, suf = subprocess.run([py, "-c", code], capture_output=True,
                                  text=True, check=True).stdout.split()
        out = os.path.join(lib, "_core" + suf)
        if os.path.exists(out):
            continue
        cmd = (["gcc", "-shared", "-fPIC", "-O2", "-g", "-std=c11", "-Wall",
                "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
                "-Wno-cast-function-type", "-I" + inc,
                "-I" + os.path.join(src, "ext")] + cfiles + uv +
               ["-o", out + ".tmp"])
        print(f"   building {os.path.relpath(out, snap)} from snapshot "
              f"{digest}", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"build failed for {py}:\n{r.stderr}")
        os.rename(out + ".tmp", out)
    return os.path.dirname(lib), digest


_KEEP = ("id", "bucket", "raw")


def _write_results(path, data):
    """JSON with one line per test (diff-friendly); empty fields dropped."""
    tests = []
    for t in data["tests"]:
        t = {k: v for k, v in t.items()
             if k in _KEEP or v not in (None, [], {}, False, 0, "")}
        if t["bucket"] in (PASSED, SKIPPED, NOT_ON_TIDELOOP, EXCLUDED,
                           NOT_IMPLEMENTED):
            t.pop("traceback", None)
        tests.append(t)
    head = {k: v for k, v in data.items() if k != "tests"}
    with open(path + ".tmp", "w") as f:
        text = json.dumps(head, indent=1, sort_keys=True)
        f.write(text[:-2] + ',\n "tests": [\n')
        f.write(",\n".join(json.dumps(t, sort_keys=True) for t in tests))
        f.write("\n ]\n}\n")
    os.replace(path + ".tmp", path)


def _core_mtime(path, python):
    code = ("import sysconfig;"
            "print(sysconfig.get_config_var('EXT_SUFFIX'))")
    try:
        suf = subprocess.run([python, "-c", code], capture_output=True,
                             text=True).stdout.strip()
        so = os.path.join(path, "tideloop", "_core" + suf)
        return time.strftime("%Y-%m-%d %H:%M:%S",
                             time.localtime(os.path.getmtime(so)))
    except Exception:
        return None


def _git_head():
    """HEAD, with "+dirty" if ext/ or python/ differ from it (read-only
    git commands)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short",
                               "HEAD"], capture_output=True,
                              text=True).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain",
                                "--", "ext", "python"], capture_output=True,
                               text=True).stdout.strip()
        return f"{head}+dirty" if head and dirty else head
    except Exception:
        return None


def load_all_results():
    out = {}
    for path in glob.glob(os.path.join(RESULTS, "py3.*.json")):
        with open(path) as f:
            data = json.load(f)
        out[data["python"]] = data
    return dict(sorted(out.items(),
                       key=lambda kv: tuple(int(x) for x in
                                            kv[0].split("."))))


COLUMNS = [
    ("ran on tideloop", "ran_on_tideloop"),
    ("passed", PASSED),
    ("failed", FAILED),
    ("errors", ERROR),
    ("crash", CRASH),
    ("hang", HANG),
    ("not impl. yet", NOT_IMPLEMENTED),
    ("xfail", XFAIL),
    ("skipped", SKIPPED),
    ("excluded", EXCLUDED),
    ("not on tideloop", NOT_ON_TIDELOOP),
]


_LOOP_KIND_NAMES = {
    "test_loop": "on test_utils.TestLoop (fake clock)",
    "stock_loop": "on a stock asyncio loop built explicitly",
    "no_loop": "with no event loop at all",
}


def summary_markdown(all_data):
    lines = ["# CPython test_asyncio on tideloop", ""]
    lines.append("| Python | " + " | ".join(c for c, _ in COLUMNS) +
                 " | wall time |")
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    for ver, data in all_data.items():
        t = data["totals"]
        wall = data.get("wall_secs")
        wall = f"{wall:.0f}s (-j{data.get('jobs', '?')})" if wall else "?"
        lines.append(f"| {ver} | " + " | ".join(str(t.get(k, 0))
                                                 for _, k in COLUMNS) +
                     f" | {wall} |")
    lines.append("")
    for ver, data in all_data.items():
        src = (f"snapshot build {data['snapshot']}" if data.get("snapshot")
               else f"{data.get('tideloop_path')} (_core built "
                    f"{data.get('core_mtime')}, .py sha1 "
                    f"{data.get('py_sources_sha1')})")
        lines.append(f"- {ver}: run {data.get('finished')}, git HEAD "
                     f"{data.get('git_head')}, tideloop from {src}")
        mixed = sum(1 for t in data["tests"]
                    if t["bucket"] in ON_TIDELOOP and t.get("loop") == "mixed")
        if mixed:
            lines.append(f"  - {mixed} of the tests that ran on tideloop "
                         f"also built a TestLoop or a stock loop (\"mixed\" "
                         f"in the JSON)")
        kinds = data.get("not_on_tideloop_by_loop") or {}
        if kinds:
            lines.append("  - not on tideloop: " + ", ".join(
                f"{n} {_LOOP_KIND_NAMES.get(k, k)}"
                for k, n in sorted(kinds.items())))
    lines.append("")
    lines.append("- *ran on tideloop* = passed + failed + errors + crash + "
                 "hang + not impl. yet + xfail (+ unexpected successes): a "
                 "tideloop loop was created or run during the test.")
    lines.append("- *not impl. yet*: failed while tideloop raised its "
                 "`tideloop does not implement loop.X() yet` "
                 "NotImplementedError (networking, subprocesses).")
    lines.append("- *not on tideloop*: ran, but no tideloop loop was used "
                 "(fake-clock `TestLoop`, an explicitly built stock loop, "
                 "or no loop); their own results are not claimed.")
    lines.append("- *excluded*: poke at stock asyncio private internals, see "
                 "`compat/exclusions.py`; not run.")
    lines.append("")
    crashes = []
    for ver, data in all_data.items():
        for m in data["modules"].values():
            for e in m.get("events", []):
                crashes.append((ver, e))
            for fx in m.get("fixture_errors", []):
                if fx.get("kind") in (ERROR, FAILED):
                    crashes.append((ver, {
                        "kind": "fixture error", "module": m["module"],
                        "test": fx.get("id"),
                        "detail": fx.get("error") or "?"}))
            if m.get("module_error"):
                crashes.append((ver, {"kind": "module error",
                                      "module": m["module"],
                                      "test": None,
                                      "detail": m["module_error"]
                                      ["error"].splitlines()[-1]
                                      if m["module_error"].get("error")
                                      else "?"}))
    if crashes:
        lines.append("## Crashes, hangs, module and fixture errors")
        lines.append("")
        for ver, e in crashes:
            kind = e["kind"].upper()
            if e.get("after_not_implemented"):
                kind += " (after not-implemented; counted as not impl.)"
            lines.append(f"- **{kind}** Python {ver}, "
                         f"`{e['module']}`, test `{_short(e['test'] or '?')}`"
                         f": {e['detail']}"
                         + (f" (log: `{os.path.relpath(e['log'], REPO)}`)"
                            if e.get("log") else ""))
        lines.append("")
    else:
        lines.append("No crash, hang, module or fixture error.")
        lines.append("")
    exo = {}
    for ver, data in all_data.items():
        for t in data["tests"]:
            if t.get("excluded_outcome"):
                exo.setdefault(_short(t["id"]), {})[ver] = \
                    t["excluded_outcome"]
    if exo:
        lines.append("## Excluded tests, run anyway (--run-excluded)")
        lines.append("")
        lines.append("Not counted; shows what the exclusions hide.")
        lines.append("")
        for tid, per in sorted(exo.items()):
            outs = ", ".join(f"{v.rsplit('.', 1)[0]}: {o}"
                             for v, o in per.items())
            lines.append(f"- `{tid}`: {outs}")
        lines.append("")
    # Per module detail for each version.
    for ver, data in all_data.items():
        lines.append(f"## Python {ver} per module")
        lines.append("")
        lines.append("| module | " + " | ".join(c for c, _ in COLUMNS[1:]) +
                     " | secs |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for name, m in sorted(data["modules"].items()):
            c = m["counts"]
            note = ""
            if m.get("module_skip"):
                note = " (module skipped)"
            lines.append(f"| {name}{note} | " +
                         " | ".join(str(c.get(k, 0))
                                    for _, k in COLUMNS[1:]) +
                         f" | {m['secs']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _normalise(line):
    line = re.sub(r"0x[0-9a-f]+", "0x...", line or "?")
    line = re.sub(r"fd=\d+", "fd=N", line)
    return line


def list_failures(all_data, include_nie=False):
    """Failing tests on tideloop grouped by cause (the error line and the
    frame that raised it), each with the Pythons it fails on."""
    groups = {}
    per_version = []
    for ver, data in all_data.items():
        bad = [t for t in data["tests"]
               if t["bucket"] in BAD or
               (include_nie and t["bucket"] == NOT_IMPLEMENTED)]
        per_version.append(f"{ver}: {len(bad)}")
        for t in bad:
            raised = re.sub(r"lib/python3\.\d+/", "",
                            t.get("raised_at") or "")
            raised = re.sub(r":\d+ in ", " in ", raised)
            key = (_normalise(t.get("error")), raised)
            g = groups.setdefault(key, {})
            g.setdefault(_short(t["id"]), []).append(
                (ver, t["bucket"], t.get("where")))
    out = ["== failing tests on tideloop per Python: " +
           ", ".join(per_version)]
    for (error, raised), tests in sorted(groups.items(),
                                         key=lambda kv: -len(kv[1])):
        out.append("")
        out.append(f"-- {len(tests)} test(s): {error}")
        if raised:
            out.append(f"   raised at {raised}")
        for tid, runs in sorted(tests.items()):
            vers = ",".join(v.rsplit(".", 1)[0] for v, _, _ in runs)
            out.append(f"   {runs[0][1].upper():8s} {tid}  [{vers}]")
            if runs[0][2]:
                out.append(f"            at (test or tideloop frame): "
                           f"{runs[0][2]}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m compat.run_cpython_suite",
        description="Run CPython's test.test_asyncio against tideloop.")
    p.add_argument("--python", action="append", default=[],
                   help="3.X, 3.X.Y, a path, or 'all' (repeatable); "
                        "default 3.11 and 3.13")
    p.add_argument("--module", action="append", default=[],
                   help="only this test module (repeatable), e.g. "
                        "test_events; results are merged into the existing "
                        "JSON for that Python")
    p.add_argument("--tideloop-path", default=DEFAULT_TIDELOOP_PATH,
                   help="directory holding the built tideloop package "
                        "(default %(default)s or $TIDELOOP_PATH)")
    p.add_argument("--build", action="store_true",
                   help="snapshot ext/ and python/tideloop/ now and build "
                        "tideloop for each target Python into "
                        "/tmp/tideloop-compat-build/<hash> (instead of "
                        "using --tideloop-path), so every Python tests the "
                        "same code")
    p.add_argument("-j", "--jobs", type=int, default=2,
                   help="modules run in parallel (default %(default)s)")
    p.add_argument("--module-timeout", type=float, default=300,
                   help="wall-clock budget of one module, restarts "
                        "included (default %(default)s s)")
    p.add_argument("--test-timeout", type=float, default=60,
                   help="a single test running longer is a hang "
                        "(default %(default)s s)")
    p.add_argument("--max-restarts", type=int, default=15,
                   help="restarts of a module after crashes/hangs")
    p.add_argument("--threshold", action="append", default=[],
                   metavar="N or 3.X=N",
                   help="exit 1 if tideloop passes fewer than N tests on "
                        "any Python of this run (3.X=N: on that Python; "
                        "repeatable)")
    p.add_argument("--list-failures", action="store_true",
                   help="print failing test ids with the first error line")
    p.add_argument("--list-not-implemented", action="store_true",
                   help="with --list-failures, include not-implemented ones")
    p.add_argument("--run-excluded", action="store_true",
                   help="run the excluded tests too, for information: they "
                        "still count as excluded, their outcome is kept as "
                        "excluded_outcome in the JSON and summary.md")
    p.add_argument("--asyncio-debug", action="store_true",
                   help="run the children with PYTHONASYNCIODEBUG=1 (stock "
                        "asyncio fails a few tests this way too); results "
                        "go to compat/results/debug/")
    p.add_argument("--results-dir", default=None,
                   help="where the JSON, summary.md and logs go (default "
                        "compat/results, or compat/results/debug with "
                        "--asyncio-debug)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing; report from compat/results/*.json")
    # child mode
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--jsonl", help=argparse.SUPPRESS)
    p.add_argument("--skip-file", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)

    if opts.child:
        if len(opts.module) != 1:
            p.error("--child takes exactly one --module")
        opts.module = opts.module[0]
        return child_main(opts)

    global RESULTS
    if opts.results_dir:
        RESULTS = os.path.abspath(opts.results_dir)
    elif opts.asyncio_debug:
        RESULTS = os.path.join(HERE, "results", "debug")
    os.makedirs(RESULTS, exist_ok=True)
    opts.git_head = _git_head()
    ran = {}
    if not opts.report_only:
        specs = opts.python or ["3.11", "3.13"]
        pythons = []
        for s in specs:
            pythons.extend(all_pythons() if s == "all"
                           else [resolve_python(s)])
        m = re.search(r"tideloop-compat-build/([0-9a-f]{12})/lib/?$",
                      opts.tideloop_path)
        opts.snapshot = m.group(1) if m else None
        if opts.build:
            opts.tideloop_path, opts.snapshot = snapshot_build(pythons)
            print(f"   tideloop from snapshot {opts.snapshot}: "
                  f"{opts.tideloop_path}", flush=True)
        for py in pythons:
            data = run_python(py, opts)
            ran[data["python"]] = data

    all_data = load_all_results()
    md = summary_markdown(all_data)
    with open(os.path.join(RESULTS, "summary.md"), "w") as f:
        f.write(md)
    print()
    print(md)
    if opts.list_failures:
        shown = {v: d for v, d in all_data.items()
                 if not ran or v in ran}
        print(list_failures(shown, opts.list_not_implemented))

    rc = 0
    default, per = None, {}
    for spec in opts.threshold:
        if "=" in spec:
            ver, n = spec.split("=", 1)
            per[ver.strip()] = int(n)
        else:
            default = int(spec)
    if default is not None or per:
        check = ran or all_data
        for ver, data in check.items():
            minor = ".".join(ver.split(".")[:2])
            limit = per.get(minor, per.get(ver, default))
            if limit is None:
                continue
            n = data["totals"][PASSED]
            status = "ok" if n >= limit else "FAIL"
            print(f"threshold {status}: Python {ver}: tideloop passed {n} "
                  f"tests, threshold {limit}", file=sys.stderr)
            if n < limit:
                rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
