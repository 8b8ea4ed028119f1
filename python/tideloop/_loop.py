"""tideloop.Loop: the Python half of the event loop.

The hot paths (scheduling, timers, the iteration itself) are in C, in
``tideloop._core.LoopBase``.  This class adds what runs once per call or
less: argument checks, signal handler registration, executors, async
generator hooks and exception handling.

Where asyncio's own ``BaseEventLoop`` implements a method purely in terms
of the public loop API and a few plain attributes (run_until_complete,
create_task, the exception handler machinery, executors, ...), we use
that very function of the running Python's asyncio, so the behaviour and
the error messages are the ones of that Python version, not a copy that
drifts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import inspect
import selectors
import logging
import os
import signal
import _socket
import socket
import sys
import threading
import time
import traceback
import warnings
import weakref
from asyncio import (base_events, constants, coroutines, events, futures,
                     format_helpers, selector_events, trsock, unix_events)

from . import _core, _pipes, _sslproto, _transports

# For type checkers: the asyncio methods that Loop copies from asyncio
# (below) are typed in _core.pyi's _LoopAPI, a type-check-only class.
from typing import TYPE_CHECKING, Any, Awaitable, Callable
if TYPE_CHECKING:
    from types import FrameType
    from typing import TypeVar
    from concurrent.futures import Executor
    from typing_extensions import TypeVarTuple, Unpack
    _T = TypeVar("_T")
    _Ts = TypeVarTuple("_Ts")
    from ._core import _LoopAPI as _AbstractEventLoop
else:
    _AbstractEventLoop = asyncio.AbstractEventLoop

__all__ = ("Loop",)

logger = logging.getLogger("asyncio")

_BaseEventLoop = base_events.BaseEventLoop
_ConcurrentFuture = concurrent.futures.Future

# A build without the epoll backend (TIDELOOP_PORTABLE=1, or not Linux).
_PORTABLE = "epoll" not in _core.BACKENDS

# BaseEventLoop methods that only use the public loop API and plain
# attributes that Loop.__init__ sets up the same way.
_BORROWED = (
    "__repr__",
    "_asyncgen_finalizer_hook",
    "_asyncgen_firstiter_hook",
    "_check_callback",
    "_check_default_executor",
    "_check_running",
    "_check_thread",
    "_do_shutdown",
    "_getaddrinfo_debug",
    "_set_coroutine_origin_tracking",
    "call_exception_handler",
    "default_exception_handler",
    "get_exception_handler",
    "get_task_factory",
    "run_until_complete",
    "set_debug",
    "set_default_executor",
    "set_exception_handler",
    "set_task_factory",
    "shutdown_asyncgens",
    "shutdown_default_executor",
)

# Connection set-up, servers and subprocesses: asyncio's own selector-loop
# implementations of the running Python, over the C fd watchers and the C
# transports (the _make_*_transport methods below).  Behaviour is
# asyncio's by construction.
_FALLBACK_BASE = (
    "_connect_sock", "_create_connection_transport",
    "_create_server_getaddrinfo", "_log_subprocess", "_sendfile_fallback",
    "connect_accepted_socket", "connect_read_pipe", "connect_write_pipe",
    "create_connection", "create_datagram_endpoint", "create_server",
    "sendfile", "subprocess_exec", "subprocess_shell",
)
_FALLBACK_SELECTOR = (
    "_accept_connection2",
    "_sendfile_native", "_start_serving",
)
_FALLBACK_UNIX = (
    "_child_watcher_callback", "create_unix_connection",
    "create_unix_server",
)

_all_loops: weakref.WeakSet[Loop] = weakref.WeakSet()


_UNIX_MAKE_SUBPROCESS = unix_events._UnixSelectorEventLoop.__dict__[
    "_make_subprocess_transport"]


# asyncio's own check, without 3.14's deprecation warning of the public
# asyncio.iscoroutinefunction (3.14+ has the private one).
_iscoroutinefunction: Callable[[Any], bool] = getattr(
    coroutines, "_iscoroutinefunction", coroutines.iscoroutinefunction)


def _user_child_watcher() -> Any:
    """The child watcher set on the current policy, if any (policies
    create one lazily only when asked: tideloop never asks)."""
    policy = events._event_loop_policy  # type: ignore[attr-defined]
    return getattr(policy, "_watcher", None) if policy is not None else None


class _SelectorView:
    """Read-only stand-in for the selector of asyncio's selector loop.

    asyncio's pipe transports show in their repr whether the loop polls
    their fd, through ``loop._selector.get_key(fd).events`` (tideloop's
    pipe reprs ask the same way); this answers from tideloop's fd
    watchers.  Nothing can be registered through it."""

    __slots__ = ("_loop",)

    def __init__(self, loop: Loop) -> None:
        self._loop = loop

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        events = self._loop._fd_events(fileobj)
        if not events:
            raise KeyError(f"{fileobj!r} is not registered")
        fd = selectors._fileobj_to_fd(fileobj)  # type: ignore[attr-defined]
        return selectors.SelectorKey(fileobj, fd, events, None)


def _sighandler_noop(signum: int, frame: FrameType | None) -> None:
    """Dummy signal handler: Python's C handler writes the signal number
    to the wake-up fd, which the loop reads."""


# ignore: LoopBase's call_soon() & co. return tideloop's own Handle types.
class Loop(_core.LoopBase, _AbstractEventLoop):  # type: ignore[misc]
    """An asyncio event loop implemented in C on libuv."""

    def __init__(self) -> None:
        self._default_executor: Any = None
        self._internal_fds = 0
        self._clock_resolution = time.get_clock_info("monotonic").resolution
        self._exception_handler: Any = None
        self._old_agen_hooks: Any = None
        self.slow_callback_duration = 0.1
        self._task_factory = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth: int | None = None
        self._asyncgens: weakref.WeakSet[Any] = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._executor_shutdown_called = False
        self._signal_handlers: dict[int, _core.Handle] = {}
        # fd -> transport, as in asyncio's selector loop: add_reader()
        # refuses an fd that a live transport owns.
        self._transports: weakref.WeakValueDictionary[int, Any] = (
            weakref.WeakValueDictionary())
        # Listening Unix sockets to unlink on close (3.13's cleanup).
        self._unix_server_sockets: dict[Any, int] = {}
        self._saved_wakeup_fd: int | None = None
        # Pending sock_* operations, swept for closed sockets (issue 15.3a):
        # future -> [future, socket, fd, (st_dev, st_ino), handle, writer,
        # name, ...] (ext/sockops.c's record, or _sock_watch()'s).
        self._sock_waiters: dict[Any, list[Any]] = {}
        self._sock_sweeper: Any = None
        self._sock_sweep_delay = _SOCK_SWEEP_FIRST
        self.set_debug(coroutines._is_debug_mode())  # type: ignore[attr-defined]
        # asyncio's selector loop logs "Using selector: EpollSelector".
        logger.debug("Using backend: %s", self._stats()["backend"])
        _all_loops.add(self)

    # -- running ---------------------------------------------------------

    def _run_forever_setup(self) -> None:
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                               finalizer=self._asyncgen_finalizer_hook)
        events._set_running_loop(self)
        # Ctrl-C must wake a blocked poll: have Python's C signal handler
        # write to our wake-up socket while we run in the main thread.
        if threading.current_thread() is threading.main_thread():
            try:
                self._saved_wakeup_fd = signal.set_wakeup_fd(
                    self._signal_wakeup_fd())
            except (ValueError, OSError):
                self._saved_wakeup_fd = None

    def _run_forever_cleanup(self) -> None:
        self._stopping = False
        self._thread_id = None
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None
        if self._saved_wakeup_fd is not None:
            fd, self._saved_wakeup_fd = self._saved_wakeup_fd, None
            # With signal handlers left, keep our fd, as asyncio does from
            # add_signal_handler() on: signals between runs are not lost.
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(fd)
                except (ValueError, OSError):
                    pass

    def run_forever(self) -> None:
        """Run until stop() is called."""
        self._run_forever_setup()
        try:
            self._run()
        finally:
            self._run_forever_cleanup()

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def run_in_executor(
        self, executor: Executor | None,
        func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
    ) -> asyncio.Future[_T]:
        """asyncio's BaseEventLoop.run_in_executor(); wrap_future() of the
        submitted future in C (_core._wrap_future) when it is an exact
        concurrent.futures.Future, as ThreadPoolExecutor makes."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, 'run_in_executor')
        if executor is None:
            executor = self._default_executor
            # Only check when the default executor is being used
            self._check_default_executor()
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio'
                )
                self._default_executor = executor
        future = executor.submit(func, *args)
        if type(future) is _ConcurrentFuture:
            return _core._wrap_future(self, future)
        return futures.wrap_future(future, loop=self)

    def close(self) -> None:
        """Close the loop: drop pending callbacks, shut the default
        executor down without waiting, remove signal handlers and free
        the libuv resources.  The loop must not be running."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        self._closed = True
        self._clear_queues()
        self._sock_waiters.clear()
        self._sock_sweeper = None
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        if not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        elif self._signal_handlers:
            warnings.warn(f"Closing the loop {self!r} "
                          f"on interpreter shutdown "
                          f"stage, skipping signal handlers removal",
                          ResourceWarning,
                          source=self)
            self._signal_handlers.clear()
        self._close_impl()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning,
                  source=self)
            if not self.is_running():
                self.close()

    # -- sock_* operations pending on a socket that gets closed --------

    # The kernel drops a closed fd from the poll set without an event, so
    # stock asyncio's sock_recv() & co. then wait forever.  The C
    # _add_reader()/_add_writer() report the sock_* registrations here
    # (ext/sockops.c); while any is pending a timer checks, with a delay
    # that backs off from 5 ms to 1 s, whether its socket was closed,
    # detached, or its fd closed or reused, and fails it with OSError(EBADF).
    # The delay starts again from 5 ms once a sweep finds nothing pending.

    # sock_recv(), sock_recv_into(), sock_sendall() and (3.11+)
    # sock_recvfrom(), sock_recvfrom_into(), sock_sendto() in C (14.2):
    # ext/sockops.c makes asyncio's checks and tries the call; when it
    # would block, it watches the fd and returns the operation's record,
    # whose future the coroutine awaits; _sock_end() removes the watch,
    # also when the operation was cancelled.

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        """Receive up to n bytes from the non-blocking socket."""
        r = self._sock_start(_SOP_RECV, sock, n)
        if r.__class__ is list:
            try:
                return await r[0]  # type: ignore[no-any-return]
            finally:
                self._sock_end(r)
        return r  # type: ignore[no-any-return]

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        """Receive into the writable buffer buf; the number of bytes."""
        r = self._sock_start(_SOP_RECV_INTO, sock, buf)
        if r.__class__ is list:
            try:
                return await r[0]  # type: ignore[no-any-return]
            finally:
                self._sock_end(r)
        return r  # type: ignore[no-any-return]

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        """Send all of data to the connected socket."""
        r = self._sock_start(_SOP_SENDALL, sock, data)
        if r.__class__ is list:
            try:
                await r[0]
            finally:
                self._sock_end(r)

    async def sock_recvfrom(self, sock: socket.socket,
                            bufsize: int) -> tuple[bytes, Any]:
        """Receive a datagram: (data, address)."""
        r = self._sock_start(_SOP_RECVFROM, sock, bufsize)
        if r.__class__ is list:
            try:
                return await r[0]  # type: ignore[no-any-return]
            finally:
                self._sock_end(r)
        return r  # type: ignore[no-any-return]

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any,
                                 nbytes: int = 0) -> tuple[int, Any]:
        """Receive a datagram into buf: (nbytes, address)."""
        if not nbytes:
            # asyncio checks the socket before it looks at buf.
            self._sock_check(sock)
            nbytes = len(buf)
        r = self._sock_start(_SOP_RECVFROM_INTO, sock, buf, nbytes)
        if r.__class__ is list:
            try:
                return await r[0]  # type: ignore[no-any-return]
            finally:
                self._sock_end(r)
        return r  # type: ignore[no-any-return]

    async def sock_sendto(self, sock: socket.socket, data: Any,
                          address: Any) -> int:
        """Send a datagram to address; the number of bytes sent."""
        r = self._sock_start(_SOP_SENDTO, sock, data, address)
        if r.__class__ is list:
            try:
                return await r[0]  # type: ignore[no-any-return]
            finally:
                self._sock_end(r)
        return r  # type: ignore[no-any-return]

    if "sock_recvfrom" not in selector_events.BaseSelectorEventLoop.__dict__:
        # Python < 3.11 has none of the three.
        del sock_recvfrom, sock_recvfrom_into, sock_sendto

    def _sock_check(self, sock: Any) -> None:
        """asyncio's checks at the start of every sock_* method (ext/
        sockops.c calls this unless sock is an exact socket.socket and
        the loop is not in debug mode)."""
        if _SSLSocket is not None and isinstance(sock, _SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _sock_arm_sweeper(self) -> None:
        if self._sock_sweeper is None:
            self._sock_sweeper = self.call_later(self._sock_sweep_delay,
                                                 self._sock_sweep)

    def _sock_watch(self, handle: Any, writer: int) -> None:
        name = _SOCK_CALLBACKS.get(getattr(handle._callback, "__func__", None))
        if name is None:
            return
        fut, sock = handle._args[0], handle._args[1]
        fd = sock.fileno()
        try:
            st = os.fstat(fd)
        except OSError:
            return
        self._sock_waiters[fut] = [fut, sock, fd, (st.st_dev, st.st_ino),
                                   handle, writer, name]
        fut.add_done_callback(self._sock_waiter_done)
        self._sock_arm_sweeper()

    def _sock_waiter_done(self, fut: Any) -> None:
        # The sweeper stays armed: the next sweep stops it if nothing is
        # pending then (no timer churn when operations come and go).
        self._sock_waiters.pop(fut, None)

    def _sock_sweep(self) -> None:
        self._sock_sweeper = None
        if not self._sock_waiters:
            self._sock_sweep_delay = _SOCK_SWEEP_FIRST
            return
        for fut, rec in list(self._sock_waiters.items()):
            sock, fd, ident, handle, writer, name = rec[1:7]
            if not fut.done() and not _sock_still_open(sock, fd, ident):
                self._sock_fail(fut, fd, handle, writer, name)
        if self._sock_waiters and not self._closed:
            self._sock_sweep_delay = min(self._sock_sweep_delay * 2,
                                         _SOCK_SWEEP_MAX)
            self._sock_sweeper = self.call_later(self._sock_sweep_delay,
                                                 self._sock_sweep)

    def _sock_fail(self, fut: Any, fd: int, handle: Any, writer: int,
                   name: str) -> None:
        # A cancelled handle was replaced by another add_reader() on the
        # (reused) fd number: that watch is not ours to remove.
        if not handle.cancelled():
            handle.cancel()
            if writer:
                self._remove_writer(fd)
            else:
                self._remove_reader(fd)
        fut.set_exception(OSError(
            errno.EBADF,
            f"the socket was closed while {name}() was waiting on it"))

    # -- signals ---------------------------------------------------------

    # -- transports ----------------------------------------------------

    @property
    def _selector(self) -> _SelectorView | None:
        # None once closed, as asyncio's selector loop sets it.
        return None if self._closed else _SelectorView(self)

    # The factories take asyncio 3.15's context= (the contextvars.Context
    # a connection's protocol callbacks run in) on every Python; without
    # one each transport makes its own (README: known differences).

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None, context=None):
        # type: (Any, Any, Any, Any, Any, Any) -> _core.SocketTransport
        """TCP and Unix stream sockets get tideloop's C transport."""
        return _transports.make_socket_transport(
            self, sock, protocol, waiter, extra=extra, server=server,
            context=context)

    def _make_datagram_transport(self, sock, protocol, address=None,
                                 waiter=None, extra=None, *, context=None):
        # type: (Any, Any, Any, Any, Any, Any) -> _core.DatagramTransport
        """UDP and Unix datagram sockets get tideloop's C transport."""
        return _transports.make_datagram_transport(
            self, sock, protocol, address, waiter, extra, context=context)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext,
                            waiter=None, **kwargs):
        # type: (Any, Any, Any, Any, **Any) -> Any
        """asyncio's SSLProtocol over tideloop's C transport."""
        return _transports.make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter, **kwargs)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None,
                                  extra=None, *, context=None):
        # type: (Any, Any, Any, Any, Any) -> _core.ReadPipeTransport
        """Pipes, sockets and character devices get tideloop's C read
        pipe transport (connect_read_pipe, subprocess stdout/stderr)."""
        return _pipes.make_read_pipe_transport(self, pipe, protocol, waiter,
                                               extra, context=context)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None,
                                   extra=None, *, context=None):
        # type: (Any, Any, Any, Any, Any) -> _core.WritePipeTransport
        """Pipes, sockets and character devices get tideloop's C write
        pipe transport (connect_write_pipe, subprocess stdin)."""
        return _pipes.make_write_pipe_transport(self, pipe, protocol,
                                                waiter, extra,
                                                context=context)

    # -- servers: the accept loop ---------------------------------------

    def _accept_connection(
            self, protocol_factory, sock, sslcontext=None, server=None,
            backlog=100, *more, **kw):
        # type: (Any, Any, Any, Any, int, *Any, **Any) -> None
        """asyncio's accept loop of this Python (up to `backlog` accepts
        per readiness event, `backlog` + 1 on 3.14+; EMFILE & co. logged
        and retried after ACCEPT_RETRY_DELAY), without a Task per plain
        connection.  asyncio's accept tasks (_accept_connection2) run one
        iteration later, one after the other: so does one call_soon()
        (_accept_made, ext/accept.c) per run of connections, where the
        protocols and C transports are made, each in its own copy of the
        context (3.15: of the server's; before: of the accept's, as a
        task's), and
        connection_made() comes at the same iteration and in the same
        order as under asyncio.  `more`, `kw`: what this Python's
        _start_serving() passes after `backlog` (the TLS timeouts, the
        second from 3.11, and 3.15's server context), handed back to it
        for a retry and to asyncio's accept loop.  TLS, debug mode and a
        task factory (which may run the accept task eagerly) keep
        asyncio's own code."""
        if sslcontext or self._debug or self._task_factory is not None:
            _SEL_ACCEPT(self, protocol_factory, sock, sslcontext, server,
                        backlog, *more, **kw)
            return None
        context = more[2] if len(more) > 2 else kw.get("context")
        # socket.accept()'s work, with the listener's family, type and
        # proto read once per event, not per connection, as plain ints
        # (socket.socket's properties make an enum member each time); a
        # socket subclass keeps its own accept().
        plain = sock.__class__ is _socket_cls
        nodelay = None
        if plain:
            family, kind = _SOCK_FAMILY(sock), _SOCK_TYPE(sock)
            proto = sock.proto
            nodelay = (family in _TCP_FAMILIES and kind == socket.SOCK_STREAM
                       and proto == socket.IPPROTO_TCP)
            if _HAVE_ACCEPT_BATCH and family in _BATCH_FAMILIES:
                # The loop below with the accepts made in C (ext/accept.c),
                # inline: this frame runs once per readiness event, and a
                # server that keeps up sees about one connection per event.
                # Each batch ends at the first error, handled as below;
                # after EMFILE & co. the accepts go on to `backlog` tries,
                # as asyncio's do.
                kind |= _SOCK_NONBLOCK
                fd = sock.fileno()
                tries = backlog + _ACCEPT_EXTRA
                while tries > 0:
                    made, exc, used = self._accept_batch(
                        _socket_cls, family, kind, proto, fd, tries,
                        _ACCEPT_ABORTED_CONTINUES)
                    tries -= used
                    if made:
                        self.call_soon(self._accept_made, protocol_factory,
                                       server, nodelay, context, made)
                    if exc is None:
                        return None
                    if (not isinstance(exc, OSError)
                            or exc.errno not in _ACCEPT_RESOURCE_ERRNOS):
                        raise exc  # the loop logs it, as asyncio's does
                    self._accept_out_of_resource(
                        exc, (protocol_factory, sock, sslcontext, server,
                              backlog, *more), kw)
                return None
        run = None  # the connections the pending _accept_made() will make
        for _ in range(backlog + _ACCEPT_EXTRA):
            try:
                if plain:
                    fd, addr = sock._accept()
                    conn = _socket_cls(family, kind, proto, fileno=fd)
                else:
                    conn, addr = sock.accept()
                conn.setblocking(False)
            except ConnectionAbortedError:
                if _ACCEPT_ABORTED_CONTINUES:
                    continue
                return None
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRNOS:
                    raise  # the loop logs it, as asyncio's does
                # The exception handler may schedule callbacks: the
                # connections accepted after it are made after those, as
                # asyncio's tasks created after it would run.
                run = None
                self._accept_out_of_resource(
                    exc, (protocol_factory, sock, sslcontext, server, backlog,
                          *more), kw)
            else:
                if run is None:
                    run = [conn, addr]
                    self.call_soon(self._accept_made, protocol_factory,
                                   server, nodelay, context, run)
                else:
                    run += (conn, addr)
        return None

    def _accept_out_of_resource(self, exc, args, kw):
        # type: (OSError, tuple[Any, ...], dict[str, Any]) -> None
        """Linux keeps reporting the listener readable: stop watching it
        and start again after ACCEPT_RETRY_DELAY, as asyncio does."""
        self.call_exception_handler({
            "message": "socket.accept() out of system resource",
            "exception": exc,
            "socket": trsock.TransportSocket(args[1]),
        })
        self._remove_reader(args[1].fileno())
        start = self._start_serving  # type: ignore[attr-defined]
        if kw:
            start = functools.partial(start, **kw)
        self.call_later(constants.ACCEPT_RETRY_DELAY, start, *args)

    # asyncio's start_tls() of this Python, with the C SSL protocol.
    start_tls = _sslproto.start_tls

    # -- subprocesses --------------------------------------------------

    async def _make_subprocess_transport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        # type: (Any, Any, Any, Any, Any, Any, Any, Any, **Any) -> Any
        """asyncio's subprocess transport (subprocess.Popen: every Popen
        option, vfork where CPython uses it), with the child's exit
        watched by a pidfd on this loop instead of a child watcher (no
        thread per child, no SIGCHLD handler)."""
        watcher = _user_child_watcher()
        if watcher is not None:
            # A child watcher the program installed (deprecated asyncio
            # API, gone in 3.14) is honoured exactly as asyncio does.
            return await _UNIX_MAKE_SUBPROCESS(
                self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                extra=extra, **kwargs)
        waiter = self.create_future()
        transp = _pipes.SubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs)
        self._watch_child(transp.get_pid(), transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _watch_child(self, pid: int, transp: Any) -> None:
        try:
            if _PORTABLE:
                # A portable build (what macOS and the BSDs get) uses no
                # Linux-only call: no pidfd.
                raise AttributeError("pidfd_open")
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            # No pidfd (Linux < 5.3, macOS, a portable build): asyncio's
            # own watcher of this Python
            # (3.14 removed get_child_watcher(); its loop then uses a
            # _ThreadedChildWatcher, a thread per child).
            watcher: Any
            if sys.version_info >= (3, 14):
                watcher = getattr(unix_events, "_ThreadedChildWatcher")()
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    watcher = events.get_child_watcher()
            watcher.add_child_handler(pid, self._child_watcher_callback,
                                      transp)
            return
        self._add_reader(pidfd, self._child_exited, pid, pidfd, transp)

    def _child_exited(self, pid: int, pidfd: int, transp: Any) -> None:
        self._remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            returncode = 255
            logger.warning("child process pid %d exit status already read: "
                           " will report returncode 255", pid)
        else:
            returncode = os.waitstatus_to_exitcode(status)
        finally:
            os.close(pidfd)
        # As asyncio's watchers report it: _process_exited() is scheduled.
        self._child_watcher_callback(pid, returncode, transp)

    # -- servers -------------------------------------------------------

    def _stop_serving(self, sock: Any) -> None:
        """Stop accepting on a listening socket; on 3.13+ also remove the
        file of a Unix server socket that create_unix_server() made (if it
        is still the same file), as asyncio does."""
        if sock in self._unix_server_sockets:
            path = sock.getsockname()
        else:
            path = None
        self._remove_reader(sock.fileno())
        sock.close()
        if path is not None:
            prev_ino = self._unix_server_sockets.pop(sock)
            try:
                if os.stat(path).st_ino == prev_ino:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error("Unable to clean up listening UNIX socket "
                             "%r: %r", path, err)

    def _check_signal(self, sig: int) -> None:
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def add_signal_handler(self, sig: int,
                           callback: Callable[[Unpack[_Ts]], object],
                           *args: Unpack[_Ts]) -> None:
        """Add a handler for a signal.

        Raise ValueError if the signal number is invalid or uncatchable.
        Raise RuntimeError if there is a problem setting up the handler.
        """
        if (coroutines.iscoroutine(callback) or
                _iscoroutinefunction(callback)):
            raise TypeError("coroutines cannot be used "
                            "with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        try:
            # Raises ValueError outside the main thread: a loop running in
            # another thread cannot add a signal handler.
            signal.set_wakeup_fd(self._signal_wakeup_fd())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))

        handle = self._new_handle(callback, *args)
        if handle._source_traceback:
            # Debug mode: created where asyncio's add_signal_handler()
            # creates it (reprs say "created at unix_events.py:...").
            handle._source_traceback[-1] = _asyncio_frame(
                _UNIX["add_signal_handler"])
        self._signal_handlers[sig] = handle
        # From now on the C loop polls every iteration for the signal
        # socket, even with no fd watched.
        self._signals_watched = True
        try:
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    logger.info("set_wakeup_fd(-1) failed: %s", nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught")
            raise

    def _handle_signal(self, sig: int) -> None:
        """Called by the C loop for each signal number read from the
        wake-up socket."""
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return
        if handle._cancelled:
            self.remove_signal_handler(sig)
        else:
            self._push_handle(handle)

    def remove_signal_handler(self, sig: int) -> bool:
        """Remove a handler for a signal.

        Return True if a signal handler was removed, False if not.
        """
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        if sig == signal.SIGINT:
            handler: Any = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught")
            raise
        if not self._signal_handlers:
            try:
                # While running, run_forever() restores the fd it replaced
                # when it returns; until then Ctrl-C must still wake us.
                if not (self.is_running() and
                        self._saved_wakeup_fd is not None):
                    signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                logger.info("set_wakeup_fd(-1) failed: %s", exc)
        return True

    # -- DNS ---------------------------------------------------------------

    async def getaddrinfo(
            self, host: bytes | str | None, port: bytes | str | int | None,
            *, family: int = 0, type: int = 0, proto: int = 0,
            flags: int = 0) -> list[tuple[Any, Any, int, str, Any]]:
        if (self._debug or self._executor_shutdown_called
                or flags.__class__ is not int
                or (socket.getaddrinfo is not _SOCKET_GETADDRINFO
                    and not _adopt_socket_getaddrinfo())):
            # asyncio's own path: its debug log lines, its executor error,
            # its messages for odd flags, and a replaced socket.getaddrinfo
            # (a test's mock) called as stock asyncio calls it.
            return await _BASE_GETADDRINFO(
                self, host, port, family=family, type=type, proto=proto,
                flags=flags)
        self._check_closed()
        # In C: numeric hosts answered at once (the list, no thread), names
        # looked up on libuv's pool (a Future; None from another thread).
        res = self._getaddrinfo(host, port, family, type, proto, flags)
        if res is NotImplemented:
            # Arguments C leaves to socket.getaddrinfo(): it checks them
            # (same errors as stock asyncio) and answers numeric hosts.
            try:
                return socket.getaddrinfo(host, port, family, type, proto,
                                          flags | _AI_NUMERIC)
            except socket.gaierror:
                pass        # a name: resolve it for real
            res = self._getaddrinfo(host, port, family, type, proto, flags,
                                    True)
        if isinstance(res, list):
            return res
        if res is None:     # called from another thread than the loop's
            return await _BASE_GETADDRINFO(
                self, host, port, family=family, type=type, proto=proto,
                flags=flags)
        return await res

    async def getnameinfo(self, sockaddr: tuple[Any, ...],
                          flags: int = 0) -> tuple[str, str]:
        if (self._debug or self._executor_shutdown_called
                or flags.__class__ is not int):
            return await _BASE_GETNAMEINFO(
                self, sockaddr, flags)
        self._check_closed()
        if flags & _NI_NUMERIC == _NI_NUMERIC:
            # Nothing to look up.
            return socket.getnameinfo(sockaddr, flags)
        # Checks the arguments as the real call would (NI_NAMEREQD left
        # out: without a lookup it would always fail).
        socket.getnameinfo(sockaddr,
                           (flags | _NI_NUMERIC) & ~socket.NI_NAMEREQD)
        fut = self._getnameinfo(sockaddr, flags)
        if fut is None:
            return await _BASE_GETNAMEINFO(
                self, sockaddr, flags)
        return await fut

    # -- introspection ---------------------------------------------------

    def stats(self) -> dict[str, int | float | str]:
        """Return a new dict of the loop's counters and gauges.

        Counters (since the loop was created): ``iterations``,
        ``callbacks`` (handles run), ``timers_scheduled``,
        ``timers_fired``, ``timers_cancelled``, ``bytes_read`` and
        ``bytes_written`` (through tideloop's C socket transports),
        ``slow_callbacks`` (debug mode only).  Gauges (now): ``ready``,
        ``timers_pending``, ``fd_watchers``, ``readers``, ``writers``,
        ``transports`` (live C transports) and ``uptime`` (seconds since
        creation), and ``backend``: ``"epoll"`` or ``"libuv"``, what the
        loop waits in.  On a closed loop the counters keep their final values,
        the gauges of queues and watchers are 0 and ``uptime`` stops at
        close().  See docs/observability.md.
        """
        return self._stats()

    def print_debug_info(self, file: Any = None) -> None:
        """Print a readable summary of the loop's state and counters to
        ``file`` (default: sys.stdout)."""
        if file is None:
            file = sys.stdout
        st = self._stats()
        lines = [
            f"---- tideloop debug info: {self!r} ----",
            f"tideloop {_tideloop_version()} on libuv "
            f"{_core.libuv_version()}, Python {sys.version.split()[0]}",
            f"backend: {st['backend']}",
            f"debug: {self.get_debug()}  "
            f"slow_callback_duration: {self.slow_callback_duration} s",
            f"uptime: {st['uptime']:.3f} s",
            "",
            "Counters:",
            f"  iterations:          {st['iterations']}",
            f"  callbacks run:       {st['callbacks']}",
            f"  slow callbacks:      {st['slow_callbacks']}",
            f"  timers scheduled:    {st['timers_scheduled']}",
            f"  timers fired:        {st['timers_fired']}",
            f"  timers cancelled:    {st['timers_cancelled']}",
            f"  bytes read:          {st['bytes_read']}",
            f"  bytes written:       {st['bytes_written']}",
            "",
            "Now:",
            f"  ready callbacks:     {st['ready']}",
            f"  pending timers:      {st['timers_pending']}",
            f"  transports:          {st['transports']}",
            f"  fd watchers:         {st['fd_watchers']} "
            f"({st['readers']} readers, {st['writers']} writers)",
        ]
        for fd, reader, writer in self._watchers():
            if reader is not None:
                lines.append(f"    fd {fd} reader: {reader!r}")
            if writer is not None:
                lines.append(f"    fd {fd} writer: {writer!r}")
        if self._signal_handlers:
            lines.append(f"  signal handlers:     "
                         f"{sorted(self._signal_handlers)}")
        if self.is_running():
            lines.append(f"  running in thread:   {self._thread_id}")
            # Set in debug mode only, as asyncio's _current_handle.
            if self._current_handle is not None:
                lines.append(f"  current handle:      "
                             f"{self._current_handle!r}")
        print("\n".join(lines), file=file)


# asyncio's own (executor) versions, for the cases tideloop leaves to them.
_BASE_GETADDRINFO: Callable[
    ..., Awaitable[list[tuple[Any, Any, int, str, Any]]]] = (
        _BaseEventLoop.getaddrinfo)
_BASE_GETNAMEINFO: Callable[..., Awaitable[tuple[str, str]]] = (
    _BaseEventLoop.getnameinfo)
# Plain ints: `flags | socket.AI_NUMERICHOST` would be an AddressInfo
# IntFlag, which turns a negative (invalid) flags value into valid bits.
_AI_NUMERIC = int(socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
_NI_NUMERIC = int(socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)


def _is_stdlib_getaddrinfo(fn: Any) -> bool:
    """Whether fn is socket.py's own getaddrinfo, not a replacement."""
    code = getattr(fn, "__code__", None)
    return (code is not None and code.co_name == "getaddrinfo"
            and getattr(fn, "__module__", None) == "socket"
            and os.path.normcase(os.path.abspath(code.co_filename))
            == os.path.normcase(os.path.abspath(socket.__file__)))


def _adopt_socket_getaddrinfo() -> bool:
    """socket.getaddrinfo is not the one the C fast path stands for: if it
    is socket.py's own after all (a replacement made before tideloop was
    imported, since restored), the fast path may answer; a replacement is
    what loop.getaddrinfo() must call, as stock asyncio does."""
    global _SOCKET_GETADDRINFO
    fn = socket.getaddrinfo
    if not _is_stdlib_getaddrinfo(fn):
        return False
    _SOCKET_GETADDRINFO = fn
    return True


# socket.getaddrinfo as tideloop's import finds it, unless something
# replaced it before (then None: each call checks again).
_SOCKET_GETADDRINFO: Any = (socket.getaddrinfo
                            if _is_stdlib_getaddrinfo(socket.getaddrinfo)
                            else None)

for _name in _BORROWED:
    setattr(Loop, _name, _BaseEventLoop.__dict__[_name])

# add_reader() & co. and the sock_* methods: asyncio's selector-loop code
# of this Python, on top of the C fd watchers (_add_reader, _remove_reader,
# _add_writer, _remove_writer); sock_sendfile() with the os.sendfile()
# path of the Unix loop.
_SEL = selector_events.BaseSelectorEventLoop.__dict__
for _name in _SEL:
    if (_name.startswith(("sock_", "_sock_")) or _name in (
            "add_reader", "remove_reader", "add_writer", "remove_writer",
            "_ensure_fd_no_transport")) and _name not in Loop.__dict__:
        setattr(Loop, _name, _SEL[_name])
_UNIX = unix_events._UnixSelectorEventLoop.__dict__
for _name in _UNIX:
    if _name.startswith(("_sock_sendfile", "_sock_add_cancellation")):
        setattr(Loop, _name, _UNIX[_name])
# The sock_* methods' watches go through ext/sockops.c (see _sock_watch).
Loop._add_reader = _core.LoopBase.__dict__["_sock_add_reader"]  # type: ignore[method-assign]
Loop._add_writer = _core.LoopBase.__dict__["_sock_add_writer"]  # type: ignore[method-assign]
# The loop's own sock_* readiness callbacks -> the public method's name.
_SOCK_CALLBACKS = {
    _SEL[_cb]: _public for _cb, _public in (
        ("_sock_recv", "sock_recv"), ("_sock_recv_into", "sock_recv_into"),
        ("_sock_recvfrom", "sock_recvfrom"),
        ("_sock_recvfrom_into", "sock_recvfrom_into"),
        ("_sock_sendall", "sock_sendall"), ("_sock_sendto", "sock_sendto"),
        ("_sock_connect_cb", "sock_connect"), ("_sock_accept", "sock_accept"))
    if _cb in _SEL}
_SOCK_SWEEP_FIRST = 0.005
_SOCK_SWEEP_MAX = 1.0
_SEL_ACCEPT = _SEL["_accept_connection"]
_socket_cls = socket.socket
# _socket.socket's own family/type getters: the ints, no enum member.
_SOCK_FAMILY = _socket.socket.family.__get__
_SOCK_TYPE = _socket.socket.type.__get__
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_ACCEPT_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                           errno.ENOMEM)
# 3.14's accept loop: backlog + 1 accepts per event, and a connection
# aborted before accept() is skipped rather than ending the batch.
_ACCEPT_EXTRA = 1 if sys.version_info >= (3, 14) else 0
_ACCEPT_ABORTED_CONTINUES = sys.version_info >= (3, 14)
# The C accept loop (ext/accept.c: accept4(), where the OS has
# SOCK_NONBLOCK), for the families whose addresses it makes.
_HAVE_ACCEPT_BATCH = hasattr(_core.LoopBase, "_accept_batch")
_SOCK_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_BATCH_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


def _sock_still_open(sock: Any, fd: int,
                     ident: tuple[int, int] | None) -> bool:
    """Whether `sock` still owns `fd` and `fd` is still the same file."""
    if sock.fileno() != fd:
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return ident is None or (st.st_dev, st.st_ino) == ident


(_SOP_RECV, _SOP_RECV_INTO, _SOP_SENDALL, _SOP_RECVFROM, _SOP_RECVFROM_INTO,
 _SOP_SENDTO) = range(6)
try:
    import ssl as _ssl
    _SSLSocket: Any = _ssl.SSLSocket
except ImportError:  # pragma: no cover - Python built without ssl
    _SSLSocket = None


for _name in ("sock_sendfile", "_sock_sendfile_fallback",
              "_check_sendfile_params", "_ensure_resolved"):
    if _name in _BaseEventLoop.__dict__ and _name not in Loop.__dict__:
        setattr(Loop, _name, _BaseEventLoop.__dict__[_name])

# The C create_task() handles the common case and calls this for the rest
# (task factories, debug mode, eager_start= and other keywords).
Loop._create_task_py = _BaseEventLoop.__dict__["create_task"]


for _names, _cls in ((_FALLBACK_BASE, _BaseEventLoop),
                     (_FALLBACK_SELECTOR,
                      selector_events.BaseSelectorEventLoop),
                     (_FALLBACK_UNIX, unix_events._UnixSelectorEventLoop)):
    for _name in _names:
        setattr(Loop, _name, _cls.__dict__[_name])
del _names, _cls, _name


# -- helpers the C core calls on slow paths ------------------------------

_SOURCE_TAKES_DEBUG = "debug" in inspect.signature(
    format_helpers._format_callback_source).parameters


def _callback_source(handle: Any) -> str:
    if _SOURCE_TAKES_DEBUG:
        return format_helpers._format_callback_source(  # type: ignore[call-arg,unused-ignore]
            handle._callback, handle._args, debug=handle._loop.get_debug())
    return format_helpers._format_callback_source(handle._callback,
                                                  handle._args)


def _report_exception(handle: _core.Handle, exc: BaseException) -> None:
    """What asyncio's Handle._run() does with an exception."""
    context = {
        "message": f"Exception in callback {_callback_source(handle)}",
        "exception": exc,
        "handle": handle,
    }
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    handle._loop.call_exception_handler(context)


def _extract_stack() -> Any:
    # Frame 0 is this helper; the C caller has no frame, so frame 1 is
    # the Python code that called loop.call_soon() & co.
    return format_helpers.extract_stack(sys._getframe(1))


def _log_slow(loop: Loop, handle: _core.Handle, dt: float) -> bool:
    """Log a slow callback as asyncio's _run_once() does; True if it was
    slow (the C loop counts it for stats())."""
    if dt >= loop.slow_callback_duration:
        # Through base_events.logger, looked up now, as asyncio's own
        # _run_once() does (tests and tools patch that name).
        base_events.logger.warning(  # type: ignore[attr-defined]
            "Executing %s took %.3f seconds",
            base_events._format_handle(handle), dt)  # type: ignore[attr-defined]
        return True
    return False


def _tideloop_version() -> str:
    return getattr(sys.modules.get("tideloop"), "__version__", "?")


def _check_debug(loop: Loop, callback: Callable[..., object], method: str,
                 check_thread: bool) -> None:
    if check_thread:
        loop._check_thread()
    loop._check_callback(callback, method)


# 3.13 returns an events._ThreadSafeHandle from call_soon_threadsafe().
_THREADSAFE_NAME = ("_ThreadSafeHandle"
                    if hasattr(events, "_ThreadSafeHandle") else "Handle")


def _handle_repr(handle: _core.Handle) -> str:
    info = [_THREADSAFE_NAME if handle._threadsafe else type(handle).__name__]
    if handle._cancelled:
        info.append("cancelled")
    if isinstance(handle, _core.TimerHandle):
        info.append(f"when={handle._when}")
    if handle._callback is not None:
        info.append(_callback_source(handle))
    if handle._source_traceback:
        frame = handle._source_traceback[-1]
        info.append(f"created at {frame[0]}:{frame[1]}")
    return "<{}>".format(" ".join(info))


_ASYNCIO_FRAMES: dict[Any, traceback.FrameSummary] = {}


def _asyncio_frame(func: Any) -> traceback.FrameSummary:
    """The frame summary of the line of asyncio's ``func`` (a function of
    this Python's asyncio) that creates its events.Handle: where stock
    asyncio's debug mode says such a handle was "created at"."""
    frame = _ASYNCIO_FRAMES.get(func)
    if frame is None:
        code = func.__code__
        lineno = code.co_firstlineno
        try:
            lines, start = inspect.getsourcelines(func)
        except (OSError, TypeError):
            pass
        else:
            for i, text in enumerate(lines):
                if "events.Handle(" in text:
                    lineno = start + i
                    break
        frame = traceback.FrameSummary(code.co_filename, lineno,
                                       code.co_name, lookup_line=False)
        _ASYNCIO_FRAMES[func] = frame
    return frame


def _fd_origin(source_traceback: list[Any], writer: bool) -> None:
    """Debug mode: asyncio's add_reader()/add_writer() make their Handle
    one frame deeper, in _add_reader()/_add_writer(); the C versions of
    those have no frame.  Append it (dropping the oldest frame past
    asyncio's depth) so that reprs and logged tracebacks match."""
    source_traceback.append(_asyncio_frame(
        _SEL["_add_writer" if writer else "_add_reader"]))
    if len(source_traceback) > constants.DEBUG_STACK_DEPTH:
        del source_traceback[0]


_core._set_helpers(report_exception=_report_exception,
                   extract_stack=_extract_stack,
                   log_slow=_log_slow,
                   check_debug=_check_debug,
                   handle_repr=_handle_repr,
                   fd_origin=_fd_origin)


def _after_fork_in_child() -> None:
    for loop in list(_all_loops):
        loop._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

Loop.__module__ = "tideloop"
