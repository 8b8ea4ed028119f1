"""Construction and slow paths of tideloop's C pipe transports.

``_core.ReadPipeTransport`` and ``_core.WritePipeTransport`` are asyncio's
``unix_events._UnixReadPipeTransport`` / ``_UnixWritePipeTransport`` in C,
with asyncio's classes as their real bases (``ReadTransport``;
``_FlowControlMixin, WriteTransport``).  What runs once per transport
(construction: the mode check with asyncio's messages, O_NONBLOCK) or only
on errors, in debug mode or at repr() lives here.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import logging
import os
import selectors
import stat
import sys
import warnings
from asyncio import (base_subprocess, futures, selector_events, transports,
                     unix_events)

from . import _core

from typing import TYPE_CHECKING, Any, Callable, Union
if TYPE_CHECKING:
    from ._loop import Loop

logger = logging.getLogger("asyncio")

ReadPipeTransport = _core.ReadPipeTransport
WritePipeTransport = _core.WritePipeTransport
_PipeTransport = Union[_core.ReadPipeTransport, _core.WritePipeTransport]

# On AIX the write pipe's reader trick (to learn that the read end was
# closed) only works for sockets.
_WATCH_FIFO = not sys.platform.startswith("aix")


def make_read_pipe_transport(loop, pipe, protocol, waiter=None, extra=None,
                             context=None):
    # type: (Loop, Any, Any, Any, Any, Any) -> _core.ReadPipeTransport
    """What asyncio's _UnixReadPipeTransport.__init__ does, in order.
    Every protocol callback runs in one context (_context_for)."""
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    if not (stat.S_ISFIFO(mode) or
            stat.S_ISSOCK(mode) or
            stat.S_ISCHR(mode)):
        raise ValueError("Pipe transport is for pipes/sockets only.")
    os.set_blocking(fileno, False)
    context = _context_for(protocol, context)
    tr = ReadPipeTransport._new(loop, pipe, fileno, protocol, context)
    transports.BaseTransport.__init__(tr, extra)
    tr._extra["pipe"] = pipe
    loop.call_soon(protocol.connection_made, tr, context=context)
    # only start reading when connection_made() has been called
    loop.call_soon(tr._start_reading, context=context)
    if waiter is not None:
        # only wake up the waiter when connection_made() has been called
        loop.call_soon(futures._set_result_unless_cancelled,  # type: ignore[attr-defined]
                       waiter, None)
    return tr


def make_write_pipe_transport(loop, pipe, protocol, waiter=None, extra=None,
                              context=None):
    # type: (Loop, Any, Any, Any, Any, Any) -> _core.WritePipeTransport
    """What asyncio's _UnixWritePipeTransport.__init__ does, in order.
    Every protocol callback runs in one context (_context_for)."""
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    is_char = stat.S_ISCHR(mode)
    is_fifo = stat.S_ISFIFO(mode)
    is_socket = stat.S_ISSOCK(mode)
    if not (is_char or is_fifo or is_socket):
        raise ValueError("Pipe transport is only for "
                         "pipes, sockets and character devices")
    os.set_blocking(fileno, False)
    context = _context_for(protocol, context)
    tr = WritePipeTransport._new(loop, pipe, fileno, protocol, context)
    transports._FlowControlMixin.__init__(tr, extra, loop)
    tr._extra["pipe"] = pipe
    loop.call_soon(protocol.connection_made, tr, context=context)
    if is_socket or (is_fifo and _WATCH_FIFO):
        # only start reading when connection_made() has been called
        loop.call_soon(tr._start_reading, context=context)
    if waiter is not None:
        # only wake up the waiter when connection_made() has been called
        loop.call_soon(futures._set_result_unless_cancelled,  # type: ignore[attr-defined]
                       waiter, None)
    return tr


def _context_for(protocol: Any, context: Any) -> Any:
    """The context a pipe's protocol callbacks run in: `context` if given;
    for the pipes of a subprocess, the subprocess transport's (so that its
    protocol's pipe_* callbacks share one context with process_exited());
    else a copy of the current one, as asyncio 3.15 gives sockets."""
    if context is not None:
        return context
    if isinstance(protocol, _SUBPROCESS_PIPE_PROTOS):
        context = getattr(getattr(protocol, "proc", None), "_tl_context",
                          None)
    return context if context is not None else contextvars.copy_context()


_SUBPROCESS_PIPE_PROTOS = (base_subprocess.ReadSubprocessPipeProto,
                           base_subprocess.WriteSubprocessPipeProto)


class _LoopInContext:
    """The loop, as asyncio's _connect_pipes() sees it: its call_soon()
    (connection_made() and the callbacks queued before it) runs in the
    subprocess's context.  Everything else is the loop's own.  What
    _connect_pipes() calls is set up front, so that it reads no name
    through __getattr__ (each such read first fails a normal lookup)."""

    __slots__ = ("_tl_loop", "call_soon", "connect_read_pipe",
                 "connect_write_pipe")

    def __init__(self, loop: Any, context: Any) -> None:
        self._tl_loop = loop
        # _connect_pipes() passes no context: each call runs in `context`.
        self.call_soon = functools.partial(loop.call_soon, context=context)
        self.connect_read_pipe = loop.connect_read_pipe
        self.connect_write_pipe = loop.connect_write_pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tl_loop, name)


class SubprocessTransport(unix_events._UnixSubprocessTransport):  # type: ignore[name-defined,misc]
    """asyncio's subprocess transport, whose protocol callbacks
    (connection_made, pipe_data_received, pipe_connection_lost,
    process_exited, connection_lost) all run in one context: a copy of the
    one current when the process was started.  Its pipes take the same
    context (_context_for).  asyncio schedules each in a new copy."""

    _loop: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before asyncio's __init__, which starts _connect_pipes().
        self._tl_context = contextvars.copy_context()
        super().__init__(*args, **kwargs)

    def _call(self, cb: Any, *data: Any) -> None:
        if self._pending_calls is not None:
            self._pending_calls.append((cb, data))
        else:
            self._loop.call_soon(cb, *data, context=self._tl_context)

    async def _connect_pipes(self, waiter: Any) -> None:
        # asyncio's own, which reads self._loop once as it starts.
        loop = self._loop
        self._loop = _LoopInContext(loop, self._tl_context)
        try:
            await _BASE_CONNECT_PIPES(self, waiter)
        finally:
            self._loop = loop


_BASE_CONNECT_PIPES = base_subprocess.BaseSubprocessTransport._connect_pipes
# Reprs say what asyncio's say.
SubprocessTransport.__name__ = "_UnixSubprocessTransport"
SubprocessTransport.__qualname__ = "_UnixSubprocessTransport"


# -- slow paths called from C ---------------------------------------------

def _fatal_error(tr: _PipeTransport, exc: BaseException,
                 message: str) -> None:
    # The read side only keeps quiet about EIO (a pty whose other side
    # closed); the write side about every OSError.
    if (isinstance(exc, OSError) and
            (isinstance(tr, WritePipeTransport) or exc.errno == errno.EIO)):
        if tr._loop.get_debug():
            logger.debug("%r: %s", tr, message, exc_info=exc)
    else:
        tr._loop.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": tr,
            "protocol": tr._protocol,
        })
    # The C caller closes the transport (_close(exc)) next.


def _log(level: int, msg: str, tr: _PipeTransport | None) -> None:
    if tr is None:
        logger.log(level, msg)
    else:
        logger.log(level, msg, tr)


def _finalize(tr: _PipeTransport,
              _warn: Callable[..., object] = warnings.warn) -> None:
    pipe = tr._pipe
    if pipe is not None:
        _warn(f"unclosed transport {tr!r}", ResourceWarning, source=tr)
        pipe.close()


def _repr(tr: Any) -> str:
    # tr: Any, as mypy does not narrow the union through `write` below.
    write = isinstance(tr, WritePipeTransport)
    info = [type(tr).__name__]
    pipe = tr._pipe
    if pipe is None:
        info.append("closed")
    elif tr._closing:
        info.append("closing")
    info.append(f"fd={tr._fileno}")
    selector = getattr(tr._loop, "_selector", None)
    if pipe is not None and selector is not None:
        polling = selector_events._test_selector_event(  # type: ignore[attr-defined]
            selector, tr._fileno,
            selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        info.append("polling" if polling else "idle")
        if write:
            info.append(f"bufsize={tr.get_write_buffer_size()}")
    elif pipe is not None:
        info.append("open")
    else:
        info.append("closed")
    return "<{}>".format(" ".join(info))


_core._set_helpers(pipe_fatal_error=_fatal_error, pipe_log=_log,
                   pipe_finalize=_finalize, pipe_repr=_repr)
