"""Bad-argument fuzzing of the public loop API, compared with stock asyncio.

    python tests/isolated/fuzz_api.py --list [--targets T1,T2]
    python tests/isolated/fuzz_api.py --out FILE [--targets ...] [--after NAME]
    python tests/isolated/fuzz_api.py --out - --only CASE      # reproduce one

The cases are generated deterministically (fixed SEED, no hypothesis): for
every target (each public AbstractEventLoop method, Handle/TimerHandle
methods and operators, tideloop.run, new_event_loop, EventLoopPolicy, and
tideloop-only constructors and LoopBase methods), every parameter is
replaced in turn by every value of the BAD pool (the others stay valid),
in several loop states (open, debug, closed, running); structural cases
add a missing, extra or unknown argument; RANDOM_PER_TARGET seeded random
cases replace several parameters at once.

Each comparable case runs on a fresh stock loop, then on a fresh tideloop
loop, in this process.  An outcome records the exception type (or "ok") of
the call, of awaiting its result, of draining the loop afterwards (and the
exception types the loop's exception handler saw), and of close().
Before each case the harness writes a "start" line to --out, after it a
"case" line with both outcomes: when the process dies (a crash) or hangs
(faulthandler's per-case timeout exits it), the parent, tests/test_fuzz.py,
knows which case did it, reports it, and restarts the harness after it
(--after NAME).

Safety: the harness runs in a temporary directory (create_unix_server and
friends make files), never resolves host names other than the ones in
FUZZ_STRINGS (which fail fast, without I/O, see _no_dns), limits its
address space when not under AddressSanitizer (an allocation the size of
an absurd argument fails with MemoryError instead of swapping), and
spawns only /bin/true and "true".
"""
import argparse
import asyncio
import concurrent.futures
import contextlib
import contextvars
import faulthandler
import gc
import inspect
import json
import logging
import math
import os
import random
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import warnings
import weakref

SEED = 20250611
RANDOM_PER_TARGET = 12
# Awaiting a call's result, and a whole "running" case, are bounded without
# cancelling and waiting (asyncio.wait_for would wait for the cancellation
# to finish: a Task made with a bogus context= never finishes it).
AWAIT_TIMEOUT = 1.0 if "libasan" not in os.environ.get("LD_PRELOAD", "") \
    else 3.0   # allocations of absurd sizes are slow under ASAN
# A Task or Future returned by a call (create_task, run_in_executor) is given
# less: a Task made with a bogus context= never finishes, and the calls
# that return one finish in milliseconds when they work.
FUTURE_TIMEOUT = 0.25
# A case takes milliseconds; the slowest legitimate ones (a call left
# pending on both loops, in the running state) about 4 s.
CASE_TIMEOUT = float(os.environ.get("TIDELOOP_FUZZ_CASE_TIMEOUT", "10"))
PY = sys.version_info
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


class FuzzError(Exception):
    """Raised by the weird objects of the BAD pool."""


# ---------------------------------------------------------------------------
# The BAD pool: name -> factory(ctx)
# ---------------------------------------------------------------------------

class BadIndex:
    def __index__(self):
        raise FuzzError("__index__")

    def __int__(self):
        raise FuzzError("__int__")


class BadFloat:
    def __float__(self):
        raise FuzzError("__float__")


class BadFloatSub(float):
    def __float__(self):
        raise FuzzError("__float__ of a float subclass")


class BadIntSub(int):
    def __index__(self):
        raise FuzzError("__index__ of an int subclass")

    def __int__(self):
        raise FuzzError("__int__ of an int subclass")


class BadFileno:
    def fileno(self):
        raise FuzzError("fileno")


class FilenoReturns:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value


class BadEverything:
    """Every dunder that a C or Python API may call raises."""

    def __eq__(self, other):
        raise FuzzError("__eq__")

    def __hash__(self):
        raise FuzzError("__hash__")

    def __bool__(self):
        raise FuzzError("__bool__")

    def __repr__(self):
        raise FuzzError("__repr__")

    def __str__(self):
        raise FuzzError("__str__")

    def __iter__(self):
        raise FuzzError("__iter__")

    def __len__(self):
        raise FuzzError("__len__")

    def __getattr__(self, name):
        raise FuzzError("__getattr__ " + name)

    def __call__(self, *args, **kwargs):
        raise FuzzError("__call__")

    def __lt__(self, other):
        raise FuzzError("__lt__")

    __gt__ = __le__ = __ge__ = __lt__

    def __add__(self, other):
        raise FuzzError("__add__")

    __radd__ = __sub__ = __rsub__ = __add__


class FilenoClosesLoop:
    """fileno() closes the loop (from the second call on: asyncio's
    add_reader() calls it once itself before the loop's own code)."""

    def __init__(self, ctx, after=1):
        self.ctx = ctx
        self.calls = 0
        self.after = after

    def fileno(self):
        self.calls += 1
        if self.calls > self.after:
            _close_loop(self.ctx.loop)
        return self.ctx.sockpair()[0].fileno()


def _close_loop(loop):
    """close(), or the C part of it for a bare tideloop._core.LoopBase."""
    with contextlib.suppress(Exception):
        close = getattr(loop, "close", None) or loop._close_impl
        close()


class NumberClosesLoop:
    """A number whose conversions close the loop first."""

    def __init__(self, ctx):
        self.ctx = ctx

    def _close(self):
        _close_loop(self.ctx.loop)

    def __float__(self):
        self._close()
        return 0.0

    def __index__(self):
        self._close()
        return 0

    __int__ = __index__

    def __radd__(self, other):
        self._close()
        return other

    __add__ = __radd__


class CallbackClosesLoop:
    def __init__(self, ctx):
        self.ctx = ctx

    def __call__(self, *args, **kwargs):
        _close_loop(self.ctx.loop)


def _dead_proxy(ctx):
    class Gone:
        def fileno(self):
            return 0

        def __call__(self):
            pass

    obj = Gone()
    proxy = weakref.proxy(obj)
    del obj
    gc.collect(0)
    return proxy


async def _coro_fn(*args, **kwargs):
    return "coro"


def _coro(ctx):
    c = _coro_fn()
    ctx.coros.append(c)
    return c


def _closed_sock(ctx):
    s = socket.socket()
    s.close()
    return s


def _blocking_sock(ctx):
    # With data to read: outside debug mode asyncio calls recv() on it
    # directly, which must not block the harness.
    a, b = ctx.sockpair()
    b.send(b"data")
    a.setblocking(True)
    return a


def _closed_file(ctx):
    f = open(os.devnull, "rb")
    f.close()
    return f


def _regular_file(ctx):
    f = open(ctx.data_file, "rb")
    ctx.cleanups.append(f.close)
    return f


def _listening_sock(ctx):
    s = socket.socket()
    ctx.cleanups.append(s.close)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    s.setblocking(False)
    return s


def _udp_sock(ctx):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctx.cleanups.append(s.close)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _unused_fd(ctx):
    # Below RLIMIT_NOFILE but far above anything open here.
    fd = 9_999
    while True:
        try:
            os.fstat(fd)
        except OSError:
            return fd
        fd -= 1


def _loop_epoll_fd(ctx):
    """The loop's own epoll descriptor (asyncio's selector, libuv's
    backend): the first eventpoll descriptor that creating the loop
    opened.  A stale fd number held by a user can be it."""
    for fd in sorted(getattr(ctx, "loop_fds", ())):
        try:
            if os.readlink("/proc/self/fd/%d" % fd) == \
                    "anon_inode:[eventpoll]":
                return fd
        except OSError:
            pass
    return _unused_fd(ctx)


def _open_fds():
    """Descriptors open now (not the one listdir() used meanwhile)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        fds.add(int(name))
    return fds


def _threadpool(ctx):
    ex = concurrent.futures.ThreadPoolExecutor(1)
    ctx.cleanups.append(lambda: ex.shutdown(wait=False))
    return ex


def _future_of_other_loop(ctx):
    other = ctx.new_loop()
    ctx.cleanups.append(other.close)
    return other.create_future()


def _done_future(ctx):
    f = asyncio.Future(loop=ctx.loop)
    f.set_result(1)
    return f


# Strings never handed to a resolver: see _no_dns().
FUZZ_STRINGS = ("", "fuzz", "a\x00b", "x" * 100_000, "\udcff")

BAD = {
    "None": lambda ctx: None,
    "True": lambda ctx: True,
    "False": lambda ctx: False,
    "0": lambda ctx: 0,
    "-1": lambda ctx: -1,
    "1": lambda ctx: 1,
    "int32max": lambda ctx: 2**31 - 1,
    "2**31": lambda ctx: 2**31,
    "2**64": lambda ctx: 2**64,
    "-2**63": lambda ctx: -2**63,
    "2**1000": lambda ctx: 2**1000,
    "10**400": lambda ctx: 10**400,
    "nan": lambda ctx: math.nan,
    "inf": lambda ctx: math.inf,
    "-inf": lambda ctx: -math.inf,
    "-0.0": lambda ctx: -0.0,
    "5e-324": lambda ctx: 5e-324,
    "1e308": lambda ctx: 1e308,
    "-1.5": lambda ctx: -1.5,
    "complex": lambda ctx: 1j,
    "str": lambda ctx: "fuzz",
    "str-empty": lambda ctx: "",
    "str-nul": lambda ctx: "a\x00b",
    "str-long": lambda ctx: "x" * 100_000,
    "str-surrogate": lambda ctx: "\udcff",
    "bytes": lambda ctx: b"x",
    "bytearray": lambda ctx: bytearray(b"xy"),
    "memoryview-ro": lambda ctx: memoryview(b"xy"),
    "list": lambda ctx: [1, 2],
    "tuple-empty": lambda ctx: (),
    # Port 0: a fixed local port would collide with the TIME_WAIT state
    # of the previous run's connection (a flaky EADDRNOTAVAIL).
    "tuple-3": lambda ctx: ("127.0.0.1", 0, 2),
    "dict": lambda ctx: {"a": 1},
    "object": lambda ctx: object(),
    "type": lambda ctx: int,
    "lambda": lambda ctx: (lambda *a, **k: None),
    "builtin": lambda ctx: len,
    "coroutine": _coro,
    "coroutine-function": lambda ctx: _coro_fn,
    "future-other-loop": _future_of_other_loop,
    "future-done": _done_future,
    "bad-index": lambda ctx: BadIndex(),
    "bad-float": lambda ctx: BadFloat(),
    "bad-float-sub": lambda ctx: BadFloatSub(1.0),
    "bad-int-sub": lambda ctx: BadIntSub(3),
    "bad-everything": lambda ctx: BadEverything(),
    "bad-fileno": lambda ctx: BadFileno(),
    "fileno-neg": lambda ctx: FilenoReturns(-1),
    "fileno-str": lambda ctx: FilenoReturns("3"),
    "fileno-huge": lambda ctx: FilenoReturns(2**40),
    "fileno-closes-loop": lambda ctx: FilenoClosesLoop(ctx),
    "number-closes-loop": lambda ctx: NumberClosesLoop(ctx),
    "callback-closes-loop": lambda ctx: CallbackClosesLoop(ctx),
    "dead-proxy": _dead_proxy,
    "closed-socket": _closed_sock,
    "blocking-socket": _blocking_sock,
    "listening-socket": _listening_sock,
    "udp-socket": _udp_sock,
    "closed-file": _closed_file,
    "regular-file": _regular_file,
    "fd-unused": _unused_fd,
    "fd-1e6": lambda ctx: 10**6,
    "fd-2**30": lambda ctx: 2**30,
    "fd-loop-epoll": _loop_epoll_fd,
    "context-copy": lambda ctx: contextvars.copy_context(),
    "loop-self": lambda ctx: ctx.loop,
    "threadpool": _threadpool,
    "sslcontext": lambda ctx: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
    "SIGKILL": lambda ctx: signal.SIGKILL,
    "signal-65": lambda ctx: 65,
}

# Values that may make an implementation allocate proportionally to them
# (a poller table indexed by fd): fine to try, but only once per
# parameter, not in the random combinations.
BIG_VALUES = {"int32max", "2**31", "fd-1e6", "fd-2**30", "2**64",
              "2**1000", "10**400"}
RANDOM_POOL = sorted(set(BAD) - BIG_VALUES)

# (target, parameter, value) left out: not comparable.
EXCLUDED = {
    # The function runs in an executor thread and closes the loop there,
    # racing with the main thread: the outcome depends on the scheduler.
    ("loop.run_in_executor", "func", "callback-closes-loop"),
}


def allowed(target, param, value):
    return (target, param, value) not in EXCLUDED


# ---------------------------------------------------------------------------
# Per-case resources
# ---------------------------------------------------------------------------

class Shared:
    """Process-wide fixtures: listeners that accept and half-close every
    connection (so a TLS handshake ends at once with EOF instead of
    waiting), a Unix listener, a UDP peer, a data file."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(512)
        self.tcp_addr = self.tcp.getsockname()
        self.unix_path = os.path.join(workdir, "listener.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        self.unix.listen(512)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_addr = self.udp.getsockname()
        self.data_file = os.path.join(workdir, "data.bin")
        with open(self.data_file, "wb") as f:
            f.write(b"0123456789" * 10)
        self.accepted = []
        self.lock = threading.Lock()
        for s in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(s,),
                             daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            with self.lock:
                self.accepted.append(conn)

    def between_cases(self):
        with self.lock:
            conns, self.accepted = self.accepted, []
        for c in conns:
            c.close()
        # Datagrams sent to the UDP peer.
        self.udp.setblocking(False)
        with contextlib.suppress(OSError):
            while True:
                self.udp.recv(65536)


class Ctx:
    """What one run of one case (one kind) may use; cleaned up after."""

    def __init__(self, kind, shared, new_loop):
        self.kind = kind
        self.shared = shared
        self.new_loop = new_loop
        self.loop = None
        self.cleanups = []
        self.coros = []
        self.data_file = shared.data_file
        self.calls = []

    def sockpair(self):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        self.cleanups.append(a.close)
        self.cleanups.append(b.close)
        return a, b

    def callback(self, *args, **kwargs):
        self.calls.append(len(args))

    def cleanup(self):
        for c in self.coros:
            with contextlib.suppress(Exception):
                c.close()
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        self.cleanups = []
        self.coros = []


# ---------------------------------------------------------------------------
# Valid values: by parameter name, then by (target, parameter)
# ---------------------------------------------------------------------------

def _connected_with_data(ctx):
    a, b = ctx.sockpair()
    b.send(b"hello")
    return a


def _udp_with_data(ctx):
    s = _udp_sock(ctx)
    peer = _udp_sock(ctx)
    peer.sendto(b"dgram", s.getsockname())
    return s


def _accepting(ctx):
    s = _listening_sock(ctx)
    c = socket.socket()
    ctx.cleanups.append(c.close)
    c.connect(s.getsockname())
    return s


def _fresh_tcp(ctx):
    s = socket.socket()
    ctx.cleanups.append(s.close)
    s.setblocking(False)
    return s


def _pipe_r(ctx):
    r, w = os.pipe()
    f = open(r, "rb", buffering=0)
    ctx.cleanups.append(f.close)
    ctx.cleanups.append(lambda: os.close(w))
    return f


def _pipe_w(ctx):
    r, w = os.pipe()
    f = open(w, "wb", buffering=0)
    ctx.cleanups.append(f.close)
    ctx.cleanups.append(lambda: os.close(r))
    return f


def _unix_server_path(ctx):
    path = os.path.join(ctx.shared.workdir, "srv-%d.sock" % len(ctx.calls))
    with contextlib.suppress(OSError):
        os.unlink(path)
    ctx.calls.append(0)
    return path


VALID = {
    "callback": lambda ctx: ctx.callback,
    "func": lambda ctx: ctx.callback,
    "delay": lambda ctx: 0,
    "when": lambda ctx: ctx.loop.time(),
    "coro": _coro,
    "future": _coro,
    "main": _coro,
    "fd": lambda ctx: ctx.sockpair()[0],
    "sig": lambda ctx: signal.SIGUSR1,
    "enabled": lambda ctx: True,
    "executor": lambda ctx: None,
    "handler": lambda ctx: (lambda loop, context: None),
    "factory": lambda ctx: None,
    "context": lambda ctx: {"message": "fuzz"},
    "protocol_factory": lambda ctx: asyncio.Protocol,
    "host": lambda ctx: "127.0.0.1",
    "port": lambda ctx: ctx.shared.tcp_addr[1],
    "sockaddr": lambda ctx: ("127.0.0.1", 80),
    "n": lambda ctx: 1,
    "nbytes": lambda ctx: 1,
    "bufsize": lambda ctx: 16,
    "buf": lambda ctx: bytearray(8),
    "data": lambda ctx: b"x",
    "pipe": _pipe_r,
    "program": lambda ctx: "/bin/true",
    "cmd": lambda ctx: "true",
    "file": _regular_file,
    "offset": lambda ctx: 0,
    "loop": lambda ctx: None,
    "watcher": lambda ctx: None,
    "other": None,   # per target
    "debug": lambda ctx: None,
}

VALID_BY_TARGET = {
    ("loop.sock_recv", "sock"): _connected_with_data,
    ("loop.sock_recv_into", "sock"): _connected_with_data,
    ("loop.sock_recvfrom", "sock"): _udp_with_data,
    ("loop.sock_recvfrom_into", "sock"): _udp_with_data,
    ("loop.sock_sendall", "sock"): lambda ctx: ctx.sockpair()[0],
    ("loop.sock_sendto", "sock"): _udp_sock,
    ("loop.sock_sendto", "address"): lambda ctx: ctx.shared.udp_addr,
    ("loop.sock_connect", "sock"): _fresh_tcp,
    ("loop.sock_connect", "address"): lambda ctx: ctx.shared.tcp_addr,
    ("loop.sock_accept", "sock"): _accepting,
    ("loop.sock_sendfile", "sock"): lambda ctx: ctx.sockpair()[0],
    ("loop.connect_accepted_socket", "sock"):
        lambda ctx: ctx.sockpair()[0],
    ("loop.connect_write_pipe", "pipe"): _pipe_w,
    ("loop.create_unix_connection", "path"):
        lambda ctx: ctx.shared.unix_path,
    ("loop.create_unix_server", "path"): _unix_server_path,
    ("loop.create_server", "host"): lambda ctx: "127.0.0.1",
    ("loop.create_server", "port"): lambda ctx: 0,
    ("loop.create_datagram_endpoint", "local_addr"):
        lambda ctx: ("127.0.0.1", 0),
    ("loop.set_default_executor", "executor"): _threadpool,
    ("loop.set_task_factory", "factory"): lambda ctx: None,
    ("loop.set_exception_handler", "handler"):
        lambda ctx: (lambda loop, context: None),
    ("loop.sendfile", "transport"): lambda ctx: None,
    ("loop.start_tls", "transport"): lambda ctx: None,
    ("loop.start_tls", "protocol"): lambda ctx: asyncio.Protocol(),
    ("loop.start_tls", "sslcontext"):
        lambda ctx: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
    ("loop.run_until_complete", "future"): _coro,
    # The right protocol classes: asyncio.Protocol lacks the callbacks of
    # these transports, and how often the missing one is called depends on
    # timing (pipe data vs process exit), which would make noise.
    ("loop.subprocess_exec", "protocol_factory"):
        lambda ctx: asyncio.SubprocessProtocol,
    ("loop.subprocess_shell", "protocol_factory"):
        lambda ctx: asyncio.SubprocessProtocol,
    ("loop.create_datagram_endpoint", "protocol_factory"):
        lambda ctx: asyncio.DatagramProtocol,
}

# Methods whose parameters are fuzzed only where listed (the others stay
# at their defaults: e.g. every ssl/timeout option of create_server).
# Parameters not in VALID/VALID_BY_TARGET and not listed are left out.


def valid_factory(target, param):
    f = VALID_BY_TARGET.get((target, param))
    if f is not None:
        return f
    return VALID.get(param)


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------

class Param:
    __slots__ = ("name", "keyword", "required", "has_valid")

    def __init__(self, name, keyword, required, has_valid):
        self.name = name
        self.keyword = keyword       # keyword-only
        self.required = required
        self.has_valid = has_valid


class Target:
    """Something to call: a name, its parameters, whether it has *args,
    and the states it is tried in."""

    def __init__(self, name, params, varargs=False, states=("open",),
                 tideloop_only=False):
        self.name = name
        self.params = params
        self.varargs = varargs
        self.states = states
        self.tideloop_only = tideloop_only


LOOP_STATES = ("open", "debug", "closed", "running")


def stock_policy_class():
    """asyncio.DefaultEventLoopPolicy (the name warns on 3.14+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.DefaultEventLoopPolicy


def as_313_get_event_loop(policy):
    """The reference for tideloop's policy.get_event_loop() on 3.14+ is
    3.13's (a known difference, README): in the main thread, with no loop
    set yet, 3.13 created and set one where 3.14+ raises."""
    if (sys.version_info >= (3, 14) and policy._local._loop is None
            and not getattr(policy._local, "_set_called", False)
            and threading.current_thread() is threading.main_thread()):
        policy.set_event_loop(policy.new_event_loop())


def _params_of(func, target_name, skip=()):
    params = []
    varargs = False
    for p in list(inspect.signature(func).parameters.values()):
        if p.name == "self" or p.name in skip:
            continue
        if p.kind == p.VAR_POSITIONAL:
            varargs = True
            continue
        if p.kind == p.VAR_KEYWORD:
            continue
        has_valid = valid_factory(target_name, p.name) is not None
        required = p.default is p.empty
        keyword = p.kind == p.KEYWORD_ONLY
        params.append(Param(p.name, keyword, required,
                            has_valid or not required))
    return params, varargs


def loop_methods():
    return sorted(n for n in vars(asyncio.AbstractEventLoop)
                  if not n.startswith("_"))


def build_targets():
    targets = []
    for name in loop_methods():
        func = getattr(asyncio.SelectorEventLoop, name)
        tname = "loop." + name
        params, varargs = _params_of(func, tname)
        targets.append(Target(tname, params, varargs, LOOP_STATES))

    # Handles: the operand is fuzzed, and so is the callback the handle
    # was made with (repr and == look at it).
    hp = [Param("callback", False, True, True)]
    op = hp + [Param("other", False, True, True)]
    hstates = ("open", "debug", "cancelled", "ran", "closed")
    # Methods that stock asyncio of this Python has (get_context() is
    # 3.12+; tideloop has it everywhere, an extension not compared).
    for name in ("cancel", "cancelled", "get_context", "repr", "hash"):
        if name in ("repr", "hash") or hasattr(asyncio.Handle, name):
            targets.append(Target("handle." + name, list(hp), True,
                                  hstates))
    for name in ("when", "cancel", "cancelled", "get_context", "repr",
                 "hash"):
        if name in ("repr", "hash") or hasattr(asyncio.TimerHandle, name):
            targets.append(Target("timer." + name, list(hp), True,
                                  hstates))
    for name in ("lt", "le", "eq", "ne", "gt", "ge"):
        targets.append(Target("timer." + name, list(op), False, hstates))
    targets.append(Target("handle.eq", list(op), False, hstates))

    targets.append(Target("run", [Param("main", False, True, True),
                                  Param("debug", True, False, True)],
                          False, ("open", "running")))
    targets.append(Target("new_event_loop", [], True, ("open",)))
    targets.append(Target("policy()", [], True, ("open",)))
    for name in sorted(n for n in dir(stock_policy_class())
                       if not n.startswith("_")):
        func = getattr(stock_policy_class(), name)
        params, varargs = _params_of(func, "policy." + name)
        targets.append(Target("policy." + name, params, varargs,
                              ("open", "running")))

    # tideloop only: no stock counterpart, an expected exception type.
    targets.append(Target("tl.Loop()", [], True, ("open",),
                          tideloop_only=True))
    for cls in ("Handle", "TimerHandle", "Handle-subclass",
                "Handle.__new__", "object.__new__(Handle)"):
        targets.append(Target("tl.%s()" % cls, [], True, ("open",),
                              tideloop_only=True))
    for name in LOOPBASE_METHODS:
        targets.append(Target("tl.LoopBase." + name, [], True,
                              ("closed", "bare", "bare-closed",
                               "closed-flag-reset"),
                              tideloop_only=True))
    for cls_name in core_types():
        if cls_name in ("LoopBase",):
            continue   # its methods: the tl.LoopBase.* targets
        targets.append(Target("tl.type." + cls_name, [], False, ("open",),
                              tideloop_only=True))
    return targets


def core_types():
    """The classes of tideloop._core, by name ({} if it does not import:
    then every tideloop test fails anyway)."""
    try:
        import tideloop._core as core
    except Exception:  # noqa: BLE001
        return {}
    return {n: getattr(core, n) for n in sorted(dir(core))
            if isinstance(getattr(core, n), type)}


# uvloop's Server(None).close() (uvloop #760): objects of the C types made
# in every way Python code can make them -- directly, through __new__,
# object.__new__, a subclass, or their private _new() factory with good and
# bad arguments -- then every method and attribute of the type used on them
# (with no argument and with None), then dropped.  Whatever raises is fine;
# a crash is not.
TYPE_CTORS = ("()", "(None)", "(None,None,None)", "(bogus_kw)", "__new__",
              "object.__new__", "subclass()",
              "_new()", "_new(loop,sock,proto)", "_new(loop,sock,None)",
              "_new(None,sock,proto)", "_new(loop,closed-socket,proto)",
              "_new(loop,bad-fileno,proto)", "_new(loop,fileno-closes-loop,"
              "proto)", "_new(closed-loop,sock,proto)",
              "_new(loop,dead-proxy,proto)")
TYPE_MEMBER_ARGS = ("", "None")


def type_members(cls):
    names = sorted(n for n in vars(cls)
                   if not (n.startswith("__") and n.endswith("__")))
    return names + [n for n in ("__repr__", "get_extra_info")
                    if n not in names]


# tideloop._core.LoopBase methods: (name, valid argument factories).
LOOPBASE_METHODS = {
    "call_soon": (lambda ctx: ctx.callback,),
    "call_soon_threadsafe": (lambda ctx: ctx.callback,),
    "call_later": (lambda ctx: 0, lambda ctx: ctx.callback),
    "call_at": (lambda ctx: 0.0, lambda ctx: ctx.callback),
    "create_task": (_coro,),
    "time": (),
    "create_future": (),
    "stop": (),
    "get_debug": (),
    "is_running": (),
    "is_closed": (),
    "_write_to_self": (),
    "_run": (),
    "_close_impl": (),
    "_clear_queues": (),
    "_after_fork": (),
    "_signal_wakeup_fd": (),
    "_push_handle": ("handle",),
    "_new_handle": (lambda ctx: ctx.callback,),
    "_stats": (),
    "_watchers": (),
    "_add_reader": (lambda ctx: ctx.sockpair()[0].fileno(),
                    lambda ctx: ctx.callback),
    "_add_writer": (lambda ctx: ctx.sockpair()[0].fileno(),
                    lambda ctx: ctx.callback),
    "_remove_reader": (lambda ctx: ctx.sockpair()[0].fileno(),),
    "_remove_writer": (lambda ctx: ctx.sockpair()[0].fileno(),),
}


def LOOPBASE_STOP(loop):
    """Make a _run() return after one iteration."""
    loop.call_soon(loop.stop)


# On a closed loop these must refuse with RuntimeError (valid arguments).
LOOPBASE_MUST_REFUSE = {"call_soon", "call_soon_threadsafe", "call_later",
                        "call_at", "create_task", "_run", "_push_handle",
                        "_add_reader", "_add_writer", "_signal_wakeup_fd"}


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

class Case:
    __slots__ = ("name", "target", "state", "args", "kwargs", "extra",
                 "bogus_kw", "omit")

    def __init__(self, name, target, state, args, kwargs, extra=(),
                 bogus_kw=False, omit=None):
        self.name = name
        self.target = target
        self.state = state
        self.args = args          # [(param, source)]; source: None=valid
        self.kwargs = kwargs      # {param: source}
        self.extra = extra        # extra positional BAD names
        self.bogus_kw = bogus_kw
        self.omit = omit          # a required parameter left out


def _base_args(target, replace):
    """Positional and keyword argument sources with `replace`
    ({param: BAD name}) applied; params without a valid value are left at
    their defaults unless replaced (then the ones before them are passed
    with their valid value, or the parameter is passed by keyword)."""
    args, kwargs = [], {}
    positional_ok = True
    for p in target.params:
        src = replace.get(p.name)
        if src is None and not p.required and not _has_factory(target, p):
            positional_ok = False
            continue
        if src is None and not p.required and p.name in OPTIONAL_DEFAULTS:
            positional_ok = False
            continue
        if p.keyword or not positional_ok:
            kwargs[p.name] = src
        else:
            args.append((p.name, src))
    return args, kwargs


# Optional parameters with a VALID factory that are still left at their
# defaults unless fuzzed (passing them would change what the call does).
OPTIONAL_DEFAULTS = {"offset", "loop", "watcher", "debug", "executor",
                     "context"}


def _has_factory(target, p):
    if target.name.startswith(("handle.", "timer.")):
        return True
    return valid_factory(target.name, p.name) is not None


def generate():
    """Every case, in a deterministic order."""
    rng = random.Random(SEED)
    cases = []
    seen = set()

    def add(case):
        if case.name in seen:
            raise AssertionError("duplicate case name " + case.name)
        seen.add(case.name)
        cases.append(case)

    types = core_types()
    for t in build_targets():
        if t.name.startswith("tl.LoopBase."):
            _loopbase_cases(t, add)
            continue
        if t.name.startswith("tl.type."):
            cls = types[t.name[len("tl.type."):]]
            for ctor in TYPE_CTORS:
                if ctor.startswith("_new") and not hasattr(cls, "_new"):
                    continue
                add(Case("%s[%s]" % (t.name, ctor), t.name, "open",
                         [("ctor", ctor)], {}))
                for member in type_members(cls):
                    for arg in TYPE_MEMBER_ARGS:
                        add(Case("%s[%s].%s(%s)" % (t.name, ctor, member,
                                                     arg),
                                 t.name, "open",
                                 [("ctor", ctor), ("member", member),
                                  ("arg", arg)], {}))
            continue
        for state in t.states:
            # Valid call.
            a, k = _base_args(t, {})
            add(Case("%s[valid]@%s" % (t.name, state), t.name, state, a, k))
            # Structural: extra positional, unknown keyword, a required
            # parameter missing.
            add(Case("%s[+extra]@%s" % (t.name, state), t.name, state, a, k,
                     extra=("object",)))
            add(Case("%s[+bogus_kw]@%s" % (t.name, state), t.name, state,
                     a, k, bogus_kw=True))
            for p in t.params:
                if p.required:
                    add(Case("%s[-%s]@%s" % (t.name, p.name, state),
                             t.name, state, a, k, omit=p.name))
        # One parameter at a time, every BAD value, in the first state
        # (and in every state for a smaller set of values).
        for p in t.params:
            for bad in BAD:
                if not allowed(t.name, p.name, bad):
                    continue
                states = t.states if bad in STATE_VALUES else t.states[:1]
                if t.tideloop_only:
                    states = t.states[:1]
                for state in states:
                    a, k = _base_args(t, {p.name: bad})
                    add(Case("%s[%s=%s]@%s" % (t.name, p.name, bad, state),
                             t.name, state, a, k))
        if t.varargs:
            for bad in BAD:
                a, k = _base_args(t, {})
                add(Case("%s[*args+=%s]@%s" % (t.name, bad, t.states[0]),
                         t.name, t.states[0], a, k, extra=(bad,)))
        # Random combinations.
        if not t.params:
            continue
        for i in range(RANDOM_PER_TARGET):
            state = rng.choice(t.states)
            n = rng.randint(1, min(3, len(t.params)))
            chosen = rng.sample(t.params, n)
            replace = {p.name: rng.choice([v for v in RANDOM_POOL
                                           if allowed(t.name, p.name, v)])
                       for p in chosen}
            extra = ((rng.choice(RANDOM_POOL),)
                     if rng.random() < 0.2 else ())
            bogus = rng.random() < 0.1
            a, k = _base_args(t, replace)
            desc = ",".join("%s=%s" % kv for kv in sorted(replace.items()))
            if extra:
                desc += ",+extra=" + extra[0]
            if bogus:
                desc += ",+bogus_kw"
            add(Case("%s~r%02d[%s]@%s" % (t.name, i, desc, state), t.name,
                     state, a, k, extra=extra, bogus_kw=bogus))
    return cases


# BAD values also tried in every state of a target (not only the first):
# the ones where the order of the checks (closed loop, debug checks,
# running) decides the outcome.
STATE_VALUES = {"None", "str", "nan", "-1", "coroutine", "object",
                "bad-float", "bad-index", "blocking-socket", "closed-socket",
                "bad-everything", "fileno-closes-loop", "number-closes-loop",
                "coroutine-function"}


def _loopbase_cases(t, add):
    name = t.name[len("tl.LoopBase."):]
    for state in t.states:
        if name == "_after_fork" and state == "bare":
            continue   # only meaningful in a forked child
        add(Case("%s[valid]@%s" % (t.name, state), t.name, state, None, {}))
        add(Case("%s[+extra]@%s" % (t.name, state), t.name, state, None, {},
                 extra=("object",)))
        for bad in ("None", "-1", "int32max", "nan", "str", "bad-everything",
                    "fileno-closes-loop", "closed-socket", "dead-proxy"):
            add(Case("%s[arg0=%s]@%s" % (t.name, bad, state), t.name, state,
                     [("arg0", bad)], {}))


def expected(case_name, target_name):
    """For tideloop-only targets: the acceptable outcomes of the call, or
    None (anything but a crash or a hang)."""
    if target_name == "tl.Loop()":
        return ("ok",) if "[valid]" in case_name else ("TypeError",)
    if target_name.startswith("tl.type."):
        return None
    if target_name.startswith("tl.") and not target_name.startswith(
            "tl.LoopBase."):
        return ("TypeError",)
    if target_name.startswith("tl.LoopBase."):
        method = target_name[len("tl.LoopBase."):]
        state = case_name.rsplit("@", 1)[1]
        if (method in LOOPBASE_MUST_REFUSE and "[valid]" in case_name
                and state in ("closed", "bare-closed")):
            return ("RuntimeError",)
    return None


def targets_by_name():
    return {t.name: t for t in build_targets()}


def case_group(case_name):
    """The test a case belongs to: its target."""
    return case_name.split("[", 1)[0].split("~", 1)[0]


# ---------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------

def _exc_name(exc):
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout-or-TimeoutError"
    return type(exc).__name__


class Pending(Exception):
    """An awaitable or a run did not finish in time (left cancelled)."""


async def _bounded_await(aw):
    timeout = FUTURE_TIMEOUT if asyncio.isfuture(aw) else AWAIT_TIMEOUT
    fut = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({fut}, timeout=timeout)
    if not done:
        fut.cancel()
        raise Pending()
    return fut.result()


def bounded_run(loop, coro, timeout):
    """loop.run_until_complete(coro), stopped after `timeout` seconds."""
    task = loop.create_task(coro)
    stopper = loop.call_later(timeout, loop.stop)
    try:
        return loop.run_until_complete(task)
    except RuntimeError:
        if not task.done():
            task.cancel()
            raise Pending()
        raise
    finally:
        stopper.cancel()


def _outcome(fn):
    try:
        return "ok", fn()
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too
        return _exc_name(exc), exc


def dispose(obj, loop):
    """Close whatever a call returned."""
    if isinstance(obj, (tuple, list)):
        for x in obj:
            dispose(x, loop)
        return
    if asyncio.iscoroutine(obj):
        obj.close()
    elif isinstance(obj, asyncio.Future):
        obj.cancel()
    elif isinstance(obj, asyncio.AbstractServer):
        with contextlib.suppress(Exception):
            obj.close()
    elif isinstance(obj, asyncio.BaseTransport):
        with contextlib.suppress(Exception):
            obj.close()
    elif isinstance(obj, asyncio.AbstractEventLoop) and obj is not loop:
        with contextlib.suppress(Exception):
            if not obj.is_running():
                obj.close()
    elif isinstance(obj, socket.socket):
        obj.close()
    elif isinstance(obj, (asyncio.Handle,)) or type(obj).__name__ in (
            "Handle", "TimerHandle"):
        with contextlib.suppress(Exception):
            obj.cancel()


class Runner:
    def __init__(self, shared):
        self.shared = shared
        import tideloop
        import tideloop._core
        self.tideloop = tideloop
        self.core = tideloop._core
        self.targets = targets_by_name()
        self.nan_bug = self._stock_nan_bug()

    @staticmethod
    def _stock_nan_bug():
        """Stock asyncio 3.13 fails in its selector with a NaN timer
        (tests/README.md): drains of cases with NaN deadlines are then not
        compared."""
        loop = asyncio.new_event_loop()
        try:
            loop.call_later(math.nan, lambda: None)
            loop.call_soon(loop.stop)
            loop.run_forever()
            return False
        except ValueError:
            return True
        finally:
            loop.close()

    def new_loop(self, kind):
        if kind == "asyncio":
            return asyncio.new_event_loop()
        return self.tideloop.new_event_loop()

    # -- resolving arguments ---------------------------------------------

    def resolve(self, ctx, target, case):
        def value(param, src):
            if src is None:
                f = valid_factory(target.name, param)
                if f is None:
                    raise AssertionError("no valid value for %s.%s"
                                         % (target.name, param))
                return f(ctx)
            return BAD[src](ctx)

        args = [value(p, s) for p, s in case.args if p != case.omit]
        kwargs = {p: value(p, s) for p, s in case.kwargs.items()
                  if p != case.omit}
        args += [BAD[x](ctx) for x in case.extra]
        if case.bogus_kw:
            kwargs["bogus_kw"] = 1
        return args, kwargs

    # -- one kind --------------------------------------------------------

    def run(self, case, kind):
        target = self.targets[case.target]
        ctx = Ctx(kind, self.shared, lambda: self.new_loop(kind))
        out = {}
        try:
            if case.target.startswith("loop."):
                self._run_loop_case(ctx, target, case, out)
            elif case.target.startswith(("handle.", "timer.")):
                self._run_handle_case(ctx, target, case, out)
            elif case.target == "run":
                self._run_run_case(ctx, target, case, out)
            elif case.target == "new_event_loop" or case.target.startswith(
                    "policy"):
                self._run_policy_case(ctx, target, case, out)
            elif case.target.startswith("tl."):
                self._run_tideloop_only(ctx, target, case, out)
            else:
                raise AssertionError(case.target)
        finally:
            ctx.cleanup()
            self._reset_global_state()
        return out

    def _reset_global_state(self):
        if asyncio._get_running_loop() is not None:
            asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        sys.set_asyncgen_hooks(None, None)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT):
            signal.signal(sig, signal.default_int_handler
                          if sig == signal.SIGINT else signal.SIG_DFL)

    def _handler(self, events):
        def handler(loop, context):
            exc = context.get("exception")
            msg = str(context.get("message"))
            if msg.startswith("Task was destroyed but it is pending"):
                # When the gc gets to a stuck Task (made with a bogus
                # context=) differs from run to run: not behaviour.
                return
            events.append(_exc_name(exc) if exc is not None else
                          "message: " + msg[:40])
        return handler

    def _drain(self, ctx, out, key="drain"):
        loop = ctx.loop
        if loop.is_closed() or loop.is_running():
            out[key] = "skipped"
            return
        if self.nan_bug and out.get("_nan"):
            out[key] = "skipped (stock NaN timer bug)"
            return

        def two_iterations():
            for _ in range(2):
                loop.call_soon(loop.stop)
                loop.run_forever()

        out[key] = _outcome(two_iterations)[0]

    def _finish(self, ctx, out, result):
        loop = ctx.loop
        dispose(result, loop)
        if not loop.is_closed() and not loop.is_running():
            self._drain(ctx, out, "drain-after-dispose")
        out["close"] = _outcome(loop.close)[0] if not loop.is_running() \
            else "running"
        out["handler"] = ctx.events

    def _await(self, ctx, aw):
        loop = ctx.loop

        async def bounded():
            return await _bounded_await(aw)

        return _outcome(lambda: bounded_run(loop, bounded(), AWAIT_TIMEOUT))

    @staticmethod
    def _step(aw):
        """Run a coroutine up to its first suspension, without a loop (the
        loop is closed): its synchronous checks decide the outcome."""
        if not asyncio.iscoroutine(aw):
            return "not-a-coroutine"
        try:
            aw.send(None)
        except StopIteration:
            return "ok"
        except BaseException as exc:  # noqa: BLE001
            return _exc_name(exc)
        finally:
            aw.close()
        return "suspended"

    def _setup_loop(self, ctx, state):
        before = _open_fds()
        loop = ctx.loop = self.new_loop(ctx.kind)
        ctx.loop_fds = _open_fds() - before
        ctx.events = []
        loop.set_exception_handler(self._handler(ctx.events))
        if state == "debug":
            loop.set_debug(True)
        elif state == "closed":
            loop.close()
        return loop

    def _run_loop_case(self, ctx, target, case, out):
        loop = self._setup_loop(ctx, case.state)
        method = target.name[len("loop."):]
        out["_nan"] = any(s == "nan" for _, s in case.args) or any(
            s == "nan" for s in case.kwargs.values())
        if method == "run_forever" and case.state in ("open", "debug"):
            loop.call_soon(loop.stop)
        result = None
        if case.state == "running":
            async def inside():
                args, kwargs = self.resolve(ctx, target, case)
                call, res = _outcome(
                    lambda: getattr(loop, method)(*args, **kwargs))
                out["call"] = call
                if call == "ok" and inspect.isawaitable(res):
                    out["await"], res = await self._await_inside(res)
                if call == "ok":
                    dispose(res, loop)

            out["run"], _ = _outcome(lambda: bounded_run(
                loop, inside(), AWAIT_TIMEOUT * 2))
            self._drain(ctx, out)
        else:
            args, kwargs = self.resolve(ctx, target, case)
            out["call"], result = _outcome(
                lambda: getattr(loop, method)(*args, **kwargs))
            if out["call"] != "ok":
                result = None
            elif inspect.isawaitable(result):
                if loop.is_closed() or loop.is_running():
                    out["await"] = self._step(result)
                    result = None
                else:
                    out["await"], result = self._await(ctx, result)
                    if out["await"] != "ok":
                        result = None
            self._drain(ctx, out)
        self._finish(ctx, out, result)

    @staticmethod
    async def _await_inside(aw):
        try:
            return "ok", await _bounded_await(aw)
        except BaseException as exc:  # noqa: BLE001
            return _exc_name(exc), None

    # -- handles ---------------------------------------------------------

    def _run_handle_case(self, ctx, target, case, out):
        loop = self._setup_loop(ctx, "debug" if case.state == "debug"
                                else "open")
        kind, op = target.name.split(".")
        sources = dict(case.args)
        sources.update(case.kwargs)
        if case.omit == "callback":
            sources["callback"] = "None"

        def make(src):
            cb = ctx.callback if src is None else BAD[src](ctx)
            if kind == "handle":
                return loop.call_soon(cb)
            return loop.call_later(3600, cb)

        out["make"], h = _outcome(lambda: make(sources.get("callback")))
        if out["make"] != "ok":
            self._finish(ctx, out, None)
            return
        if case.state == "cancelled":
            h.cancel()
        elif case.state == "ran":
            if kind == "timer":
                h2 = h
                h = loop.call_later(0, ctx.callback)
                h2.cancel()
            self._drain(ctx, out, "run-it")
        elif case.state == "closed":
            loop.close()
        extra = [BAD[x](ctx) for x in case.extra]
        if op in ("lt", "le", "eq", "ne", "gt", "ge"):
            src = sources.get("other")
            if case.omit == "other":
                other = None
            elif src is None:
                # A second handle of the same kind and loop (closed: the
                # same handle).
                other = h if loop.is_closed() else make(None)
            else:
                other = BAD[src](ctx)
            fn = {"lt": lambda: h < other, "le": lambda: h <= other,
                  "eq": lambda: h == other, "ne": lambda: h != other,
                  "gt": lambda: h > other, "ge": lambda: h >= other}[op]
        elif op == "repr":
            def fn():
                return repr(h) if not extra else repr(h, *extra)
        elif op == "hash":
            def fn():
                return hash(h) if not extra else hash(h, *extra)
        else:
            def fn():
                kw = {"bogus_kw": 1} if case.bogus_kw else {}
                return getattr(h, op)(*extra, **kw)
        out["call"], res = _outcome(fn)
        if op == "repr" and out["call"] == "ok":
            out["repr-type"] = type(res).__name__
        self._drain(ctx, out)
        self._finish(ctx, out, h)

    # -- tideloop.run / asyncio.run --------------------------------------

    def _run_run_case(self, ctx, target, case, out):
        run = self.tideloop.run if ctx.kind == "tideloop" else asyncio.run
        ctx.loop = self.new_loop(ctx.kind)   # for values that want a loop
        ctx.events = []
        args, kwargs = self.resolve(ctx, target, case)
        if case.state == "running":
            async def inside():
                out["call"], res = _outcome(lambda: run(*args, **kwargs))
                dispose(res, None)
            out["run"], _ = _outcome(
                lambda: ctx.loop.run_until_complete(inside()))
        else:
            out["call"], res = _outcome(lambda: run(*args, **kwargs))
            dispose(res, None)
        ctx.loop.close()

    # -- new_event_loop, EventLoopPolicy ---------------------------------

    def _run_policy_case(self, ctx, target, case, out):
        ctx.loop = self.new_loop(ctx.kind)
        ctx.events = []
        args, kwargs = self.resolve(ctx, target, case)
        tl = ctx.kind == "tideloop"
        if target.name == "new_event_loop":
            fn = self.tideloop.new_event_loop if tl else \
                asyncio.new_event_loop
            call = lambda: fn(*args, **kwargs)  # noqa: E731
        elif target.name == "policy()":
            cls = self.tideloop.EventLoopPolicy if tl else \
                stock_policy_class()

            def call():
                with warnings.catch_warnings():
                    # 3.14+: both classes warn that policies are deprecated.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return cls(*args, **kwargs)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                policy = (self.tideloop.EventLoopPolicy() if tl
                          else stock_policy_class()())
            method = target.name.split(".", 1)[1]

            def call():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if (method == "get_event_loop" and not tl
                            and not args and not kwargs):
                        as_313_get_event_loop(policy)
                    r = getattr(policy, method)(*args, **kwargs)
                    if method == "get_event_loop":
                        out["loop-kind"] = type(r).__module__.split(".")[0]
                        if out["loop-kind"] == "tideloop" and not tl:
                            out["loop-kind"] = "tideloop in stock?"
                    return r

        if case.state == "running":
            async def inside():
                out["call"], res = _outcome(call)
                if res is not ctx.loop:
                    dispose(res, ctx.loop)
            out["run"], _ = _outcome(
                lambda: ctx.loop.run_until_complete(inside()))
        else:
            out["call"], res = _outcome(call)
            if res is not ctx.loop:
                dispose(res, ctx.loop)
        if target.name.startswith("policy.") and out.get("call") == "ok":
            # The loop a policy made for this thread.
            with contextlib.suppress(Exception):
                lp = policy._local._loop
                if lp is not None and lp is not ctx.loop:
                    lp.close()
        if out.get("loop-kind") == ("tideloop" if tl else "asyncio"):
            out["loop-kind"] = "own kind"
        ctx.loop.close()

    # -- tideloop only ---------------------------------------------------

    def _run_tideloop_only(self, ctx, target, case, out):
        core = self.core
        name = target.name
        if name.startswith("tl.LoopBase."):
            self._run_loopbase(ctx, target, case, out)
            return
        if name.startswith("tl.type."):
            self._run_type_sweep(ctx, target, case, out)
            return
        loop = ctx.loop = self.tideloop.new_event_loop()
        ctx.cleanups.append(loop.close)
        ctx.events = []
        args = [BAD[x](ctx) for x in case.extra]
        kwargs = {"bogus_kw": 1} if case.bogus_kw else {}
        if name == "tl.Loop()":
            out["call"], r = _outcome(
                lambda: self.tideloop.Loop(*args, **kwargs))
            dispose(r, None)
            return
        what = name[len("tl."):-2]
        # What asyncio.Handle / TimerHandle take: (callback, args, loop).
        full = [ctx.callback, (), loop] if case.omit is None else []
        full += args
        if what == "Handle":
            fn = lambda: core.Handle(*full, **kwargs)  # noqa: E731
        elif what == "TimerHandle":
            fn = lambda: core.TimerHandle(  # noqa: E731
                0.0, *full, **kwargs)
        elif what == "Handle-subclass":
            class Sub(core.Handle):
                def __init__(self, *a, **k):
                    pass
            fn = lambda: Sub(*full, **kwargs)  # noqa: E731
        elif what == "Handle.__new__":
            fn = lambda: core.Handle.__new__(  # noqa: E731
                core.Handle, *full, **kwargs)
        elif what == "object.__new__(Handle)":
            fn = lambda: object.__new__(core.Handle)  # noqa: E731
        else:
            raise AssertionError(what)
        out["call"], r = _outcome(fn)

    def _run_type_sweep(self, ctx, target, case, out):
        cls = getattr(self.core, target.name[len("tl.type."):])
        spec = dict(case.args)
        ctor, member, arg = spec["ctor"], spec.get("member"), spec.get("arg")
        loop = ctx.loop = self.tideloop.new_event_loop()
        ctx.cleanups.append(loop.close)
        ctx.events = []
        loop.set_exception_handler(self._handler(ctx.events))
        datagram = "Datagram" in cls.__name__
        proto = (asyncio.DatagramProtocol() if datagram
                 else asyncio.Protocol())

        def sock():
            if datagram:
                return _udp_sock(ctx)
            return ctx.sockpair()[0]

        def closed_loop():
            other = self.tideloop.new_event_loop()
            other.close()
            return other

        def subclass():
            class Sub(cls):   # TypeError if the type is final
                pass
            return Sub()

        makers = {
            "()": lambda: cls(),
            "(None)": lambda: cls(None),
            "(None,None,None)": lambda: cls(None, None, None),
            "(bogus_kw)": lambda: cls(bogus_kw=1),
            "__new__": lambda: cls.__new__(cls),
            "object.__new__": lambda: object.__new__(cls),
            "subclass()": subclass,
            "_new()": lambda: cls._new(),
            "_new(loop,sock,proto)": lambda: cls._new(loop, sock(), proto),
            "_new(loop,sock,None)": lambda: cls._new(loop, sock(), None),
            "_new(None,sock,proto)": lambda: cls._new(None, sock(), proto),
            "_new(loop,closed-socket,proto)":
                lambda: cls._new(loop, _closed_sock(ctx), proto),
            "_new(loop,bad-fileno,proto)":
                lambda: cls._new(loop, BadFileno(), proto),
            "_new(loop,fileno-closes-loop,proto)":
                lambda: cls._new(loop, FilenoClosesLoop(ctx, 0), proto),
            "_new(closed-loop,sock,proto)":
                lambda: cls._new(closed_loop(), sock(), proto),
            "_new(loop,dead-proxy,proto)":
                lambda: cls._new(loop, _dead_proxy(ctx), proto),
        }
        out["ctor"], obj = _outcome(makers[ctor])
        if member is not None and out["ctor"] == "ok":
            args = () if arg == "" else (None,)

            def use():
                if member == "__repr__":
                    return repr(obj)
                attr = getattr(obj, member)
                if member == "get_extra_info":
                    return attr("socket", *args)
                return attr(*args) if callable(attr) else attr

            out["call"], r = _outcome(use)
            del r
        del obj
        if not loop.is_closed():
            self._drain(ctx, out)
        out["close"] = _outcome(loop.close)[0]

    def _run_loopbase(self, ctx, target, case, out):
        core = self.core
        method = target.name[len("tl.LoopBase."):]
        state = case.state
        if state.startswith("bare"):
            loop = core.LoopBase()
        else:
            loop = self.tideloop.new_event_loop()
        ctx.loop = loop
        ctx.events = []
        helper = self.tideloop.new_event_loop()
        ctx.cleanups.append(helper.close)
        if state != "bare":
            loop._close_impl() if state.startswith("bare") else loop.close()
        if state == "closed-flag-reset":
            # What a subclass that sets self._closed = False (as asyncio's
            # BaseEventLoop.__init__ does) after close() would see.
            loop._closed = False
        if case.args is None:
            spec = LOOPBASE_METHODS[method]
            args = []
            for f in spec:
                if f == "handle":
                    args.append(helper.call_soon(ctx.callback))
                else:
                    args.append(f(ctx))
        else:
            args = [BAD[s](ctx) for _, s in case.args]
        args += [BAD[x](ctx) for x in case.extra]
        if method == "_run" and state in ("bare", "closed-flag-reset"):
            with contextlib.suppress(Exception):
                LOOPBASE_STOP(loop)
        out["call"], res = _outcome(
            lambda: getattr(core.LoopBase, method)(loop, *args))
        dispose(res, loop)
        with contextlib.suppress(Exception):
            loop._close_impl()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def _no_dns():
    """The BAD strings reach getaddrinfo() through host= arguments: answer
    them without a resolver, so the fuzzer neither waits for nor depends
    on DNS.  The arguments are still checked as the real call checks them
    (a numeric-only lookup does no I/O), then the name is "not known".
    Stock asyncio calls socket.getaddrinfo() in its executor; tideloop
    calls it too (to check the arguments and answer numeric hosts), then
    resolves names on libuv's pool, which this also sends to the executor
    for those strings.  Numeric hosts, "localhost" and None go through."""
    real = socket.getaddrinfo
    numeric = int(socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)

    def fake(host):
        return isinstance(host, str) and host in FUZZ_STRINGS and host

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if fake(host):
            if isinstance(flags, int):
                real(host, port, family, type, proto, flags | numeric)
            raise socket.gaierror(socket.EAI_NONAME,
                                  "Name or service not known")
        return real(host, port, family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo
    try:
        import tideloop
    except ImportError:
        return
    resolve = getattr(tideloop.Loop, "_getaddrinfo", None)
    if resolve is not None:
        def _getaddrinfo(self, host, *args):
            # None: "use the executor", i.e. the fake above.
            return None if fake(host) else resolve(self, host, *args)
        tideloop.Loop._getaddrinfo = _getaddrinfo


def _limit_memory():
    if UNDER_ASAN:
        return   # ASAN reserves terabytes of address space for its shadow
    import resource
    limit = 6 * 2**30
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--list", action="store_true")
    p.add_argument("--out")
    p.add_argument("--targets", default="")
    p.add_argument("--after", default="",
                   help="start after this case (a restart after a crash)")
    p.add_argument("--only", action="append", default=[],
                   help="run just this case (repeatable)")
    p.add_argument("--reference", action="store_true",
                   help="run stock asyncio in place of tideloop too (the "
                   "comparison must then find nothing: a determinism check)")
    p.add_argument("--sample", type=int, default=1,
                   help="run every Nth case only")
    args = p.parse_args()
    wanted = set(filter(None, args.targets.split(",")))
    cases = [c for c in generate() if not wanted or c.target in wanted]
    if args.list:
        for c in cases:
            print("%s\t%s" % (c.target, c.name))
        return
    if args.after:
        names = [c.name for c in cases]
        cases = cases[names.index(args.after) + 1:]
    if args.reference:
        tl_only = {t.name for t in build_targets() if t.tideloop_only}
        cases = [c for c in cases if c.target not in tl_only]
    if args.sample > 1:
        cases = cases[::args.sample]
    if args.only:
        cases = [c for c in cases if c.name in set(args.only)]
        if not cases:
            p.error("no such case (see --list)")

    warnings.simplefilter("ignore")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
    if not UNDER_ASAN:
        # Under AddressSanitizer its own SIGSEGV handler reports the crash
        # with the C stack (scripts/asan.sh prints the report): do not
        # replace it.  Hangs are still dumped (dump_traceback_later).
        faulthandler.enable(all_threads=False)
    _limit_memory()
    _no_dns()
    workdir = tempfile.mkdtemp(prefix="tideloop-fuzz-")
    import atexit
    import shutil
    atexit.register(shutil.rmtree, workdir, True)
    os.chdir(workdir)
    shared = Shared(workdir)
    runner = Runner(shared)
    out = open(args.out, "a", buffering=1) if args.out != "-" else \
        os.fdopen(os.dup(1), "w", buffering=1)

    def emit(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for i, case in enumerate(cases):
        emit({"start": case.name})
        faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
        t0 = time.perf_counter()
        target = runner.targets[case.target]
        res = {"case": case.name}
        for kind in (("tideloop",) if target.tideloop_only
                     else ("asyncio", "tideloop")):
            emit({"start": case.name, "kind": kind})
            res[kind] = runner.run(case, "asyncio" if args.reference
                                   else kind)
        res["seconds"] = round(time.perf_counter() - t0, 4)
        faulthandler.cancel_dump_traceback_later()
        emit(res)
        shared.between_cases()
        if i % 200 == 199:
            # A bad tp_traverse/tp_clear would crash here: name it.
            emit({"start": "gc after " + case.name})
            gc.collect()
            emit({"case": "gc after " + case.name})
    emit({"done": True})
    out.close()


if __name__ == "__main__":
    main()
