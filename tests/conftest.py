"""Fixtures for the tideloop core test-suite.

Every behaviour is checked on stock asyncio and on tideloop.  Two styles:

* Per-kind tests take the ``kind`` fixture (parametrized ``asyncio`` /
  ``tideloop``) or one built on it (``loop``, ``new_loop``, ``loop_factory``)
  and assert properties directly.  Stock asyncio's loop comes from
  ``asyncio.new_event_loop()`` (a selector loop on Linux), tideloop's from
  ``tideloop.new_event_loop()``.

* Comparison tests take the ``compare`` fixture and hand it a *scenario*: a
  function ``scenario(loop)`` (or ``scenario(loop, new_loop)`` when it needs
  more loops of the same kind) that drives the loop and returns a list of
  trace events.  The scenario runs on a fresh stock loop, which gives the
  reference trace, then

    - for ``[asyncio]``: on a second fresh stock loop; both traces must be
      equal (the scenario is deterministic, so it can serve as a reference);
    - for ``[tideloop]``: on a fresh tideloop loop; the trace must equal the
      reference.

  The reference must be non-trivial (``min_events``).  Traces are normalized
  (object addresses, loop class names, ``Task-N`` counters, qualified method
  names in TypeError messages) first.  ``compare`` returns the trace so that
  a test can also assert what it expects of stock asyncio.

  ``compare_child`` does the same for code run in child interpreters
  (signals, fork, debug environment variables).

Loops are always closed at the end.  A tideloop that cannot be imported
FAILS every tideloop test.  Only the stock side, while tideloop is being
written::

    TIDELOOP_TESTS_ASYNCIO_ONLY=1 python -m pytest tests
    python -m pytest tests -k asyncio    # test names avoid the word

TIDELOOP_TESTS_SHOW_TRACES=1 with ``-s`` prints the stock reference traces.

Markers: ``tutorial`` (deselect with ``-m "not tutorial"``),
``tideloop_only``, ``watchdog(seconds)``, ``packaging`` (sdist/wheel build
and install, ~1 min), ``integration`` (tests/integration: third-party
libraries and servers on tideloop; skipped unless asked for, see
``_integration_requested``).
"""
import asyncio
import faulthandler
import os
import pprint
import sys
import warnings

import pytest

from support import (
    ASYNCIO_ONLY, KINDS, LoopPool, describe_child, format_trace_diff,
    import_tideloop, loop_factory_for, normalize, run_child, run_scenario,
)

# TIDELOOP_TESTS_SHOW_TRACES=1 (with -s) prints every reference trace.
SHOW_TRACES = os.environ.get("TIDELOOP_TESTS_SHOW_TRACES", "") not in ("", "0")

# Seconds a single test may take before faulthandler dumps every thread's
# stack and kills the run: the last resort against a loop that hangs.
DEFAULT_WATCHDOG = 90


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tutorial: runs the shared tutorial on tideloop (~40 s); "
        "deselect with -m 'not tutorial'")
    config.addinivalue_line(
        "markers",
        "tideloop_only: checks tideloop-only API (no stock counterpart)")
    config.addinivalue_line(
        "markers",
        "watchdog(seconds): per-test hang limit (default %d s)"
        % DEFAULT_WATCHDOG)
    config.addinivalue_line(
        "markers",
        "leaks: leak checks in child interpreters (tests/test_leaks.py, "
        "~2.5 min; run by default, deselect with -m 'not leaks')")
    config.addinivalue_line(
        "markers",
        "fuzz: bad-argument fuzzing compared with stock asyncio "
        "(tests/test_fuzz.py; deselect with -m 'not fuzz')")
    config.addinivalue_line(
        "markers",
        "slow: a big or long networking/subprocess scenario (still run by "
        "default; deselect with -m 'not slow')")
    config.addinivalue_line(
        "markers",
        "packaging: builds the sdist and wheel with `python -m build` and "
        "installs them into fresh venvs (tests/test_packaging.py, ~1 min; "
        "run by default, deselect with -m 'not packaging')")
    config.addinivalue_line(
        "markers",
        "integration: third-party libraries and real servers on tideloop "
        "(tests/integration; `make integration`); skipped unless asked for "
        "by path, by -m integration or TIDELOOP_REQUIRE_INTEGRATION=1")


def _is_tideloop_item(item):
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("kind") == "tideloop":
        return True
    return (item.get_closest_marker("tideloop_only") is not None
            or item.get_closest_marker("tutorial") is not None)


def _integration_requested(config):
    """The integration tests run only when asked for: by
    TIDELOOP_REQUIRE_INTEGRATION=1, by a -m expression that names the marker
    (other than "not integration"), or by a path inside tests/integration.
    A plain `pytest tests` (`make test`) skips them, so it stays fast and
    needs none of their packages or servers."""
    if os.environ.get("TIDELOOP_REQUIRE_INTEGRATION", "") not in ("", "0"):
        return True
    markexpr = config.getoption("markexpr", "") or ""
    if "integration" in markexpr and "not integration" not in markexpr:
        return True
    integ = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "integration")
    for arg in config.args:
        path = os.path.abspath(str(arg).split("::", 1)[0])
        if path == integ or path.startswith(integ + os.sep):
            return True
    return False


def pytest_collection_modifyitems(config, items):
    if not _integration_requested(config):
        skip = pytest.mark.skip(
            reason="integration test: run `make integration` or "
                   "`pytest tests/integration -m integration`")
        for item in items:
            if item.get_closest_marker("integration") is not None:
                item.add_marker(skip)
    if not ASYNCIO_ONLY:
        return
    keep, drop = [], []
    for item in items:
        (drop if _is_tideloop_item(item) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    try:
        import tideloop
        where = getattr(tideloop, "__file__", "?")
        line = "tideloop: importable from %s" % where
    except Exception as exc:  # noqa: BLE001 - report anything
        line = "tideloop: NOT importable (%s: %s)" % (type(exc).__name__, exc)
    if ASYNCIO_ONLY:
        line += "; TIDELOOP_TESTS_ASYNCIO_ONLY=1: stock side only"
    return line


@pytest.fixture(params=KINDS)
def kind(request):
    if request.param == "tideloop":
        import_tideloop()
    return request.param


@pytest.fixture
def loop_factory(kind):
    return loop_factory_for(kind)


@pytest.fixture
def new_loop(loop_factory):
    """Call it to get a fresh loop of the test's kind; all are closed at the
    end of the test."""
    pool = LoopPool(loop_factory)
    yield pool
    pool.close_all()
    asyncio.set_event_loop(None)


@pytest.fixture
def loop(new_loop):
    return new_loop()


@pytest.fixture(autouse=True)
def _watchdog(request):
    marker = request.node.get_closest_marker("watchdog")
    seconds = marker.args[0] if marker else DEFAULT_WATCHDOG
    faulthandler.dump_traceback_later(seconds, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _global_state_guard():
    """Every test ends with no running loop, the default policy, no current
    loop and the async-generator hooks it started with."""
    hooks = sys.get_asyncgen_hooks()
    yield
    leaked = asyncio._get_running_loop()
    if leaked is not None:
        asyncio.events._set_running_loop(None)
    sys.set_asyncgen_hooks(*hooks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(None)
    if leaked is not None:
        pytest.fail("a running loop was left registered after the test: %r"
                    % (leaked,), pytrace=False)


@pytest.fixture
def compare(kind):
    def _compare(scenario, *, min_events=2):
        reference = run_scenario("asyncio", scenario)
        if SHOW_TRACES:
            print("\nstock asyncio trace:\n" + pprint.pformat(reference))
        assert len(reference) >= min_events, (
            "scenario is trivial on stock asyncio: %r" % (reference,))
        other = run_scenario(kind, scenario)
        if kind == "asyncio":
            assert other == reference, (
                "scenario is not deterministic on stock asyncio:\n"
                + format_trace_diff(reference, other))
        else:
            assert other == reference, (
                "tideloop differs from stock asyncio:\n"
                + format_trace_diff(reference, other))
        return other
    return _compare


@pytest.fixture
def compare_child(kind):
    """compare_child(code, ...) runs code in a child on stock asyncio (the
    reference, which must exit with ``expect_rc``) and in a child of the
    test's kind; exit status and normalized stdout must match.  Returns the
    candidate's CompletedProcess (stderr is not compared)."""
    def _compare(code, *, min_lines=2, expect_rc=0, **kwargs):
        ref = run_child("asyncio", code, **kwargs)
        assert ref.returncode == expect_rc, (
            "stock asyncio child failed:\n" + describe_child(ref))
        ref_lines = normalize(ref.stdout.splitlines())
        if SHOW_TRACES:
            print("\nstock asyncio child:\n" + describe_child(ref))
        assert len(ref_lines) >= min_lines, (
            "trivial stock output:\n" + describe_child(ref))
        got = run_child(kind, code, **kwargs)
        got_lines = normalize(got.stdout.splitlines())
        assert (got.returncode, got_lines) == (ref.returncode, ref_lines), (
            "child differs from stock asyncio (exit %s, stock %s):\n%s\n"
            "--- candidate stderr\n%s" % (
                got.returncode, ref.returncode,
                format_trace_diff(ref_lines, got_lines), got.stderr))
        return got
    return _compare
