"""The release artifacts: sdist and wheel from `python -m build`.

* The sdist carries everything a build needs: the wheel is built FROM the
  unpacked sdist (not from the repository), with build isolation, as pip
  does for users.
* The wheel and the sdist each install into a fresh venv and pass a smoke
  test there (import, a coroutine, a TCP echo over 127.0.0.1, a
  subprocess), run outside the repository.
* Without libuv (pkg-config finds no libuv.pc, or there is no pkg-config)
  the build stops with setup.py's LIBUV_MISSING message, which names the
  package to install, instead of a compiler error.
* TIDELOOP_LIBUV=<prefix> builds against the libuv under that prefix with
  pkg-config out of the picture.

About a minute in all (two compilations with isolation, one without, two
venvs).  Deselect with -m "not packaging".  Needs `build` (scripts/venv.sh
installs it) and pip's usual index for the isolated build environment.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.tideloop_only,
              pytest.mark.watchdog(400)]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

if "libasan" in os.environ.get("LD_PRELOAD", ""):
    pytest.skip("packaging is checked by the plain (non-sanitizer) run: the "
                "artifacts are built without ASAN", allow_module_level=True)
pytest.importorskip(
    "build", reason="the `build` package is not installed (make test "
    "installs it, see scripts/venv.sh)")

# What a build from the sdist needs (checked by name too, so that a failure
# says which file is missing).
SDIST_MUST_HAVE = [
    "setup.py", "pyproject.toml", "MANIFEST.in", "README.md",
    "python/tideloop/__init__.py", "python/tideloop/_loop.py",
    "python/tideloop/_transports.py", "python/tideloop/__main__.py",
    "python/tideloop/__init__.pyi", "python/tideloop/_core.pyi",
    "python/tideloop/py.typed",
] + ["ext/" + n for n in os.listdir(os.path.join(ROOT, "ext"))
     if n.endswith((".c", ".h"))]

WHEEL_MUST_HAVE = ["tideloop/__init__.py", "tideloop/__init__.pyi",
                   "tideloop/_core.pyi", "tideloop/py.typed"]

SMOKE = textwrap.dedent('''\
    import asyncio, os, sys
    import tideloop

    # The installed package, not the repository's sources.
    where = os.path.dirname(tideloop.__file__)
    assert where.startswith(sys.prefix), where
    for name in ("py.typed", "__init__.pyi", "_core.pyi"):
        assert os.path.exists(os.path.join(where, name)), name

    async def echo(reader, writer):
        writer.write(await reader.read())
        await writer.drain()
        writer.close()

    async def main():
        assert isinstance(asyncio.get_running_loop(), tideloop.Loop)
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping over tcp")
        writer.write_eof()
        echoed = await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('child says hi')",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return echoed, out.strip(), proc.returncode

    print(tideloop.run(main()), tideloop.libuv_version())
''')


def clean_env(**changes):
    """The environment for build/install children: no libuv or pkg-config
    overrides unless the test sets them."""
    env = dict(os.environ)
    for name in ("TIDELOOP_LIBUV", "TIDELOOP_LIBUV_CFLAGS",
                 "TIDELOOP_LIBUV_LIBS", "PKG_CONFIG", "PKG_CONFIG_PATH",
                 "PKG_CONFIG_LIBDIR", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.update(changes)
    return env


def run(cmd, cwd, env=None, timeout=180, check=True):
    r = subprocess.run([str(c) for c in cmd], cwd=str(cwd),
                       env=env or clean_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, "%s failed (exit %d):\n%s" % (
            " ".join(map(str, cmd)), r.returncode, r.stdout[-6000:])
    return r


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """(sdist, wheel, unpacked sdist dir): the wheel built from the
    unpacked sdist."""
    tmp = tmp_path_factory.mktemp("packaging")
    dist = tmp / "dist"
    run([sys.executable, "-m", "build", "--sdist", "--outdir", dist, ROOT],
        tmp)
    (sdist,) = dist.glob("tideloop-*.tar.gz")
    with tarfile.open(str(sdist)) as tf:
        # filter= where tarfile has it (3.12, and 3.9-3.11 security
        # releases); without it 3.12+ warn.
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(str(tmp / "unpacked"), **kwargs)
    (src,) = (tmp / "unpacked").iterdir()
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, src],
        tmp)
    (wheel,) = dist.glob("tideloop-*.whl")
    return sdist, wheel, src


def test_sdist_contents(artifacts):
    sdist, _, _ = artifacts
    with tarfile.open(str(sdist)) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    missing = [n for n in SDIST_MUST_HAVE if n not in names]
    assert not missing, "missing from %s: %s" % (sdist.name, missing)


def test_wheel_contents(artifacts):
    import zipfile
    _, wheel, _ = artifacts
    names = set(zipfile.ZipFile(str(wheel)).namelist())
    missing = [n for n in WHEEL_MUST_HAVE if n not in names]
    assert not missing, "missing from %s: %s" % (wheel.name, missing)
    assert any(n.startswith("tideloop/_core.") and n.endswith(".so")
               for n in names), sorted(names)


@pytest.mark.parametrize("what", ["wheel", "sdist"])
def test_install_and_smoke(artifacts, what, tmp_path):
    sdist, wheel, _ = artifacts
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path)
    py = venv / "bin" / "python"
    # No dependencies; pip's index is needed only for the sdist's isolated
    # build environment (setuptools, wheel).
    run([py, "-m", "pip", "install", "-q", "--no-deps",
         wheel if what == "wheel" else sdist], tmp_path, timeout=300)
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE)
    r = run([py, script], tmp_path, timeout=60)
    assert "(b'ping over tcp', b'child says hi', 0)" in r.stdout, r.stdout


def missing_libuv_build(src, tmp_path, **env):
    return run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                "--outdir", tmp_path / "dist", src], tmp_path,
               env=clean_env(**env), check=False)


def assert_libuv_message(r, detail):
    out = r.stdout
    assert r.returncode != 0, out
    assert "tideloop: cannot find libuv: " + detail in out, out
    # It names what to install, and no compilation was attempted.
    assert "apt-get install libuv1-dev pkg-config" in out, out
    assert "TIDELOOP_LIBUV=" in out, out
    assert "uv.h" not in out.replace("include/uv.h", ""), out
    assert "Traceback" not in out, out


def test_missing_libuv_message(artifacts, tmp_path):
    _, _, src = artifacts
    r = missing_libuv_build(src, tmp_path, PKG_CONFIG_PATH="/nonexistent",
                            PKG_CONFIG_LIBDIR="/nonexistent")
    assert_libuv_message(r, "`pkg-config --exists libuv` failed")


def test_missing_pkg_config_message(artifacts, tmp_path):
    _, _, src = artifacts
    r = missing_libuv_build(src, tmp_path,
                            PKG_CONFIG="/nonexistent/pkg-config")
    assert_libuv_message(r, "pkg-config (/nonexistent/pkg-config) is not "
                            "installed")


def test_bad_libuv_prefix_message(artifacts, tmp_path):
    _, _, src = artifacts
    r = missing_libuv_build(src, tmp_path,
                            TIDELOOP_LIBUV=str(tmp_path / "nowhere"))
    assert_libuv_message(r, "TIDELOOP_LIBUV=%s has no include/uv.h"
                         % (tmp_path / "nowhere"))


def test_libuv_prefix_override(artifacts, tmp_path):
    """TIDELOOP_LIBUV=<prefix> with pkg-config unable to find libuv: a
    prefix made of links to the system's libuv."""
    _, _, src = artifacts
    pkgconf = shutil.which("pkg-config")
    if pkgconf is None:
        pytest.skip("pkg-config is needed to locate the system libuv")

    def var(option):
        return run([pkgconf, option, "libuv"], tmp_path,
                   env=dict(os.environ)).stdout.strip()

    includedir = var("--variable=includedir")
    libdir = var("--variable=libdir")
    prefix = tmp_path / "prefix"
    (prefix / "include").mkdir(parents=True)
    (prefix / "lib").mkdir()
    for name in os.listdir(includedir):
        if name == "uv.h" or name == "uv":
            os.symlink(os.path.join(includedir, name),
                       str(prefix / "include" / name))
    for name in os.listdir(libdir):
        if name.startswith("libuv.so"):
            os.symlink(os.path.join(libdir, name), str(prefix / "lib" / name))
    # A private copy: the build directory of another test's build of the
    # same unpacked sdist must not be reused.
    work = tmp_path / "src"
    shutil.copytree(str(src), str(work))
    r = missing_libuv_build(work, tmp_path, TIDELOOP_LIBUV=str(prefix),
                            PKG_CONFIG_PATH="/nonexistent",
                            PKG_CONFIG_LIBDIR="/nonexistent")
    assert r.returncode == 0, r.stdout[-6000:]
    (wheel,) = (tmp_path / "dist").glob("tideloop-*.whl")
    target = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--target", target, wheel], tmp_path)
    (so,) = (target / "tideloop").glob("_core.*.so")
    readelf = shutil.which("readelf")
    if readelf is not None:
        dyn = run([readelf, "-d", so], tmp_path).stdout
        assert str(prefix / "lib") in dyn, dyn
    r = run([sys.executable, "-c",
             "import tideloop; print(tideloop.libuv_version())"],
            tmp_path, env=clean_env(PYTHONPATH=str(target)))
    assert r.stdout.strip() == var("--modversion"), r.stdout
