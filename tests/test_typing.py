"""tideloop's type information: py.typed, the stubs, the annotated sources.

* tests/typing/sample_user.py (a program using the public API) passes
  mypy --strict against the *installed* tideloop, for the oldest and the
  newest supported Python and the running one;
* a wrong program fails it (the stubs are not all Any);
* the package's own .py sources pass mypy --strict (stubs for importers
  left out, so the real code is checked);
* ``python -m mypy.stubtest tideloop`` finds the stubs equal to the
  runtime (tests/typing/stubtest-allowlist.txt says why for each
  exception).

mypy is pinned in scripts/venv.sh (``make test`` installs it); without
mypy these tests skip.
"""
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.tideloop_only, pytest.mark.watchdog(300)]

if "libasan" in os.environ.get("LD_PRELOAD", ""):
    # Static checks: nothing for the sanitizers to see, and mypy (compiled
    # with mypyc) would run under the preloaded libasan for nothing.
    pytest.skip("type checks run in the plain (non-sanitizer) test run",
                allow_module_level=True)
mypy = pytest.importorskip(
    "mypy", reason="mypy is not installed (make test installs the pinned "
    "version, see scripts/venv.sh)")
import mypy.version  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TYPING = os.path.join(HERE, "typing")
PKG_SRC = os.path.join(ROOT, "python", "tideloop")
RUNNING = "%d.%d" % sys.version_info[:2]
TARGETS = sorted({"3.9", "3.13", RUNNING}, key=lambda v: tuple(
    map(int, v.split("."))))


def run_mypy(args, cwd, cache_dir):
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
           "--cache-dir", str(cache_dir), "--hide-error-context",
           "--show-error-codes"] + args
    return subprocess.run(cmd, cwd=str(cwd), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=240)


def check_target_supported(version, cwd):
    probe = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", version,
         "-c", "pass"], cwd=str(cwd), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    if "is not supported" in probe.stdout:
        pytest.skip("mypy %s cannot check for Python %s; scripts/venv.sh "
                    "pins a version that can" % (mypy.version.__version__,
                                                 version))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mypy-cache")


def installed_tideloop_dir():
    """The tideloop that `sys.executable` imports: the stubs under test
    are the ones shipped with it, not the repository's."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import os, tideloop; print(os.path.dirname(tideloop.__file__))"],
        cwd="/", stdout=subprocess.PIPE, universal_newlines=True,
        timeout=60, check=True)
    return out.stdout.strip()


def test_installed_package_is_typed():
    where = installed_tideloop_dir()
    for name in ("py.typed", "__init__.pyi", "_core.pyi"):
        assert os.path.exists(os.path.join(where, name)), (
            "%s missing from the installed tideloop in %s" % (name, where))


@pytest.mark.parametrize("version", TARGETS)
def test_sample_user_program(version, tmp_path, cache_dir):
    check_target_supported(version, tmp_path)
    r = run_mypy(["--python-version", version,
                  os.path.join(TYPING, "sample_user.py")], tmp_path,
                 cache_dir)
    assert r.returncode == 0, "mypy --strict failed:\n" + r.stdout


BAD_PROGRAM = '''\
import tideloop

async def f() -> int:
    return 1

s: str = tideloop.run(f())
tideloop.run(f(), debug="yes")
loop = tideloop.new_event_loop()
loop.call_soon(print, 1, context=2)
loop.call_later("soon", print)
n: int = loop.stats()["iterations"]
'''


def test_wrong_program_is_rejected(tmp_path, cache_dir):
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_PROGRAM)
    r = run_mypy([str(bad)], tmp_path, cache_dir)
    lines = [ln.split(": error:")[0] for ln in r.stdout.splitlines()
             if ": error:" in ln]
    assert set(lines) == {"bad.py:%d" % n for n in (6, 7, 9, 10, 11)}, (
        r.stdout)


@pytest.mark.parametrize("version", TARGETS)
def test_package_sources(version, tmp_path, cache_dir):
    # The .py files with _core.pyi (the C extension has no source to
    # check) but without __init__.pyi, which would hide __init__.py.
    check_target_supported(version, tmp_path)
    pkg = tmp_path / "tideloop"
    pkg.mkdir()
    for name in os.listdir(PKG_SRC):
        if name.endswith(".py") or name in ("_core.pyi", "py.typed"):
            shutil.copy(os.path.join(PKG_SRC, name), str(pkg))
    r = run_mypy(["--python-version", version, "-p", "tideloop"],
                 tmp_path, cache_dir)
    assert r.returncode == 0, "mypy --strict failed:\n" + r.stdout


def test_stubtest(tmp_path):
    cmd = [sys.executable, "-m", "mypy.stubtest", "tideloop",
           "--allowlist", os.path.join(TYPING, "stubtest-allowlist.txt"),
           "--mypy-config-file", os.devnull]
    import importlib.util
    if importlib.util.find_spec("uvicorn") is None:
        # tideloop.gunicorn subclasses uvicorn's worker: without uvicorn it
        # cannot be imported (tests/integration checks it where it can).
        extra = tmp_path / "allow-gunicorn.txt"
        extra.write_text("tideloop\\.gunicorn\n")
        cmd += ["--allowlist", str(extra)]
    from tideloop import _core
    if not hasattr(_core.LoopBase, "_accept_batch"):
        # A portable build has no accept4() batch (ext/tideloop.h).
        extra = tmp_path / "allow-accept-batch.txt"
        extra.write_text("tideloop\\._core\\.LoopBase\\._accept_batch\n")
        cmd += ["--allowlist", str(extra)]
    r = subprocess.run(cmd, cwd=str(tmp_path), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=240)
    assert r.returncode == 0, "stubtest failed:\n" + r.stdout
