"""benchmarks/chart.py draws the README's chart from run.py's results."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(HERE, os.pardir, "benchmarks", "chart.py")

pytestmark = pytest.mark.tideloop_only


def _results(path, speedups):
    data = {
        "metadata": {"date": "2026-11-25T00:00:00+00:00", "python": "3.11.7",
                     "machine": "x86_64", "cpu_model": "Test CPU",
                     "nproc": 2},
        "config": {"repeat": 5, "metric": "cpu"},
        "benchmarks": {
            name: {"speedup_vs_asyncio": {"asyncio": 1.0, "uvloop": u,
                                          "tideloop": t},
                   # a loop that did not run (rloop, the libuv backend
                   # here) has no status "ok" and gets no bar
                   "results": {lp: {"status": "ok"}
                               for lp in ("asyncio", "uvloop", "tideloop")}}
            for name, (u, t) in speedups.items()},
    }
    with open(path, "w") as f:
        json.dump(data, f)


def _env():
    # chart.py never imports tideloop. Under scripts/asan.sh libasan is
    # preloaded into an uninstrumented interpreter, and its __cxa_throw
    # interceptor aborts when matplotlib's C++ extension raises internally
    # (libstdc++ is loaded after libasan resolved its symbols): run the
    # chart without the sanitizer.
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def test_chart_png(tmp_path):
    pytest.importorskip("matplotlib")
    a = tmp_path / "core.json"
    b = tmp_path / "net.json"
    _results(a, {"call_soon": (2.0, 3.0), "timers": (0.8, 2.0)})
    _results(b, {"tcp_echo": (1.3, 1.5)})
    out = tmp_path / "chart.png"
    r = subprocess.run([sys.executable, CHART, str(a), str(b),
                        str(tmp_path / "missing.json"), "-o", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stdout
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_chart_geomean_and_rows(tmp_path):
    sys.path.insert(0, os.path.dirname(CHART))
    try:
        import chart
    finally:
        sys.path.pop(0)
    p = tmp_path / "r.json"
    _results(p, {"a": (2.0, 4.0), "b": (0.5, 1.0)})
    data, rows = chart.load(str(p))
    none = {"rloop": None, "tideloop-libuv": None}
    assert rows == [("a", dict(uvloop=2.0, tideloop=4.0, **none)),
                    ("b", dict(uvloop=0.5, tideloop=1.0, **none))]
    assert chart.geomean([4.0, 1.0]) == pytest.approx(2.0)
    assert "Test CPU" in chart.describe(data) and "cpu time" in \
        chart.describe(data)


def test_chart_failed_cell_has_no_bar(tmp_path):
    sys.path.insert(0, os.path.dirname(CHART))
    try:
        import chart
    finally:
        sys.path.pop(0)
    p = tmp_path / "r.json"
    _results(p, {"a": (2.0, 4.0)})
    data = json.loads(p.read_text())
    data["benchmarks"]["a"]["results"]["uvloop"]["status"] = "FAIL"
    p.write_text(json.dumps(data))
    _, rows = chart.load(str(p))
    assert rows[0][1]["uvloop"] is None and rows[0][1]["tideloop"] == 4.0


def test_chart_no_results(tmp_path):
    pytest.importorskip("matplotlib")
    r = subprocess.run([sys.executable, CHART, str(tmp_path / "none.json"),
                        "-o", str(tmp_path / "x.png")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120, env=_env())
    assert r.returncode != 0 and "no results found" in r.stdout
