"""Helpers shared by the integration tests (tests/integration/conftest.py
describes the suite): skip-or-fail checks for dependencies, child processes
that are always killed, free loopback ports, and a runner that bounds a
coroutine and checks that it runs on tideloop."""
import asyncio
import contextlib
import ctypes
import glob
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

import tideloop

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REQUIRE = os.environ.get("TIDELOOP_REQUIRE_INTEGRATION", "") not in ("", "0")

# TIDELOOP_INTEG_LOOP=asyncio runs the in-process side (clients, and the
# servers the tests run in their own process) on stock asyncio instead, to
# tell a tideloop bug from a library or test bug; servers in child processes
# stay on tideloop.  LOOP_MODULE is the module of that loop's class.
STOCK = os.environ.get("TIDELOOP_INTEG_LOOP", "tideloop") == "asyncio"


def _loop_module_of(factory):
    loop = factory()
    try:
        return type(loop).__module__
    finally:
        loop.close()


LOOP_MODULE = _loop_module_of(
    asyncio.new_event_loop if STOCK else tideloop.new_event_loop)

_HINT = ("pip install -r tests/integration/requirements.txt, or run "
         "`make integration`")


# What the hang watchdog (conftest.py) cleans up before it ends the run:
# live Server objects and temporary directories.
LIVE_SERVERS = set()
LIVE_DIRS = set()


def emergency_cleanup():
    for server in list(LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.__exit__(None, None, None)
    for path in list(LIVE_DIRS):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temp_dir(prefix="tideloop-integ-"):
    """A temporary directory, removed at the end (also on failure and by
    the hang watchdog)."""
    path = tempfile.mkdtemp(prefix=prefix)
    LIVE_DIRS.add(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        LIVE_DIRS.discard(path)


def missing(what):
    """Skip (or, with TIDELOOP_REQUIRE_INTEGRATION=1, fail) the test because
    `what` is not available."""
    if REQUIRE:
        pytest.fail("TIDELOOP_REQUIRE_INTEGRATION=1 and %s" % what,
                    pytrace=False)
    pytest.skip("%s (%s)" % (what, _HINT))


def need(module):
    """Import and return `module`, or skip/fail the test if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing("the integration dependency %r is not importable: %s"
                % (module, exc))


def need_exe(name, patterns=()):
    """Path of the executable `name` (on PATH or matching one of the glob
    `patterns`), or skip/fail the test."""
    path = shutil.which(name)
    if path is None:
        def version_key(path):  # newest /usr/lib/postgresql/N/ last
            return [int(p) if p.isdigit() else -1 for p in path.split("/")]
        for pattern in patterns:
            found = sorted(glob.glob(pattern), key=version_key)
            if found:
                path = found[-1]
                break
    if path is None:
        missing("the program %r is not installed (Debian: make integration "
                "installs it with apt-get)" % name)
    return path


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def run(main, timeout=60):
    """Run the coroutine function `main` on a new tideloop loop (checked;
    stock asyncio with TIDELOOP_INTEG_LOOP=asyncio), bounded by `timeout`
    seconds, and return its result."""
    async def bounded():
        loop = asyncio.get_running_loop()
        assert type(loop).__module__ == LOOP_MODULE, type(loop)
        return await asyncio.wait_for(main(), timeout)
    if STOCK:
        return asyncio.run(bounded())
    return tideloop.run(bounded())


def _set_pdeathsig():
    # In the child, after any setuid: die with the test process even if it
    # is killed outright (the watchdog's os._exit, SIGKILL).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (HERE, env.get("PYTHONPATH")) if p)
    # The venv's console scripts (uvicorn, gunicorn, pytest) first.
    env["PATH"] = os.pathsep.join(
        [os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(extra)
    return env


def service_env(**extra):
    """Environment for programs that are not Python (postgres, initdb,
    redis-server, openssl): without an LD_PRELOAD meant for the
    interpreter (e.g. libasan in a sanitizer run, which hangs initdb)."""
    env = child_env(**extra)
    env.pop("LD_PRELOAD", None)
    return env


def _user_kwargs(user):
    """Popen arguments that run a child as `user` (with its primary group
    and no others), or none."""
    if user is None:
        return {}
    import pwd
    return {"user": user, "group": pwd.getpwnam(user).pw_gid,
            "extra_groups": []}


def _kill_group(pid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_process(argv, *, timeout=90, cwd=None, env=None, user=None):
    """subprocess.run(argv) with text output captured, in a session of its
    own: on a timeout, or when it is done, its whole process group is killed
    (so no grandchild outlives it), and a timeout fails the test."""
    argv = [str(a) for a in argv]
    kwargs = _user_kwargs(user)
    with subprocess.Popen(
            argv, cwd=cwd, env=env if env is not None else child_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=_set_pdeathsig, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            out, err = proc.communicate()
            raise AssertionError("timeout (%ss): %s\n--- stdout\n%s\n"
                                 "--- stderr\n%s" % (timeout, " ".join(argv),
                                                      out, err)) from None
        finally:
            _kill_group(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class Server:
    """A child process (normally a server) with its output in a log file.

    Use as a context manager: on exit the whole process group is killed and
    the log removed, whatever happened.
    """

    def __init__(self, argv, *, cwd=HERE, env=None, user=None, name=None):
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.env = env if env is not None else child_env()
        self.user = user
        self.name = name or os.path.basename(self.argv[0])
        self.proc = None
        fd, self.log_path = tempfile.mkstemp(prefix="tideloop-integ-",
                                             suffix=".log")
        os.close(fd)
        if user is not None:
            shutil.chown(self.log_path, user=user)

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            kwargs = _user_kwargs(self.user)
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_set_pdeathsig, **kwargs)
        LIVE_SERVERS.add(self)
        return self

    def __exit__(self, *exc):
        try:
            self.kill()
        finally:
            LIVE_SERVERS.discard(self)
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)

    @property
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def describe(self):
        return "%s (%s), exit status %s, log:\n%s" % (
            self.name, " ".join(self.argv),
            self.proc.poll() if self.proc else None, self.log[-6000:])

    def wait_port(self, port, host="127.0.0.1", timeout=30):
        """Wait until something accepts TCP connections on host:port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._wait(lambda: _can_connect(family, (host, port)),
                   "port %s:%s" % (host, port), timeout)

    def wait_unix(self, path, timeout=30):
        self._wait(lambda: _can_connect(socket.AF_UNIX, path),
                   "Unix socket %s" % path, timeout)

    def wait_log(self, text, timeout=30):
        self._wait(lambda: text in self.log, "%r in the log" % text, timeout)

    def _wait(self, ready, what, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            if self.proc.poll() is not None:
                raise AssertionError("%s exited before %s was ready: %s"
                                     % (self.name, what, self.describe()))
            if time.monotonic() > deadline:
                raise AssertionError("timeout (%ss) waiting for %s: %s"
                                     % (timeout, what, self.describe()))
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Send `sig` to the process and return its exit status; fail (after
        killing it) if it has not exited within `timeout` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %ss of %s: %s" % (
                self.name, timeout, signal.Signals(sig).name, self.describe()))

    def kill(self):
        if self.proc is None:
            return
        _kill_group(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def _can_connect(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(address)
        except OSError:
            return False
        return True


def http_get(url, timeout=10):
    """(status, headers, body) of a GET with urllib (no event loop)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, dict(resp.headers), resp.read()


def http_json(url, timeout=10):
    status, _, body = http_get(url, timeout)
    assert status == 200, (status, body)
    return json.loads(body)


_BLOCKS = {}


def pattern_bytes(n, seed=0):
    """n deterministic bytes that do not repeat with a short period."""
    block = _BLOCKS.get(seed)
    if block is None:
        block = _BLOCKS[seed] = bytes(
            (i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(65536))
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]
