"""Construction and slow paths of tideloop's C socket transport.

``_core.SocketTransport`` is asyncio's ``_SelectorSocketTransport`` in C;
its real base is ``asyncio.transports._FlowControlMixin``, so it is an
``asyncio.Transport`` and ``get_extra_info``, the write buffer limits and
``pause_writing``/``resume_writing`` are asyncio's own code.  What runs
once per connection (construction) or only on errors lives here.
"""

from __future__ import annotations

import contextvars
import socket as _socket
import inspect
import logging
import sys
import warnings
from asyncio import base_events, constants, futures, transports
from asyncio import trsock

from . import _core, _sslproto

from typing import TYPE_CHECKING, Any
if TYPE_CHECKING:
    from socket import socket
    from ._loop import Loop

logger = logging.getLogger("asyncio")

SocketTransport = _core.SocketTransport
SocketTransport._sendfile_compatible = constants._SendfileMode.TRY_NATIVE

# Server._attach()/_detach() take the transport on 3.13+.
_ATTACH_TAKES_TRANSPORT = len(inspect.signature(
    base_events.Server._attach).parameters) > 1  # type: ignore[attr-defined]

_IPPROTO_TCP = _socket.IPPROTO_TCP
_TCP_NODELAY = _socket.TCP_NODELAY

# 3.12+ refuse an fd that a live transport still owns.
_CHECKS_FD = sys.version_info >= (3, 12)


def make_socket_transport(loop, sock, protocol, waiter=None, *,
                          extra=None, server=None, context=None,
                          nodelay=None):
    # type: (Loop, socket, Any, Any, Any, Any, Any, bool | None) -> _core.SocketTransport
    """What asyncio's _SelectorSocketTransport.__init__ does, in order.

    Every protocol callback runs in `context`: asyncio 3.15 passes one (a
    copy per accepted connection); older Pythons pass none and get 3.15's
    behaviour all the same, from a copy of the current context (inside
    asyncio's accept task, itself a copy per connection).  `nodelay`:
    whether to set TCP_NODELAY, when the caller knows (None: asyncio's
    _set_nodelay() checks the socket)."""
    if _CHECKS_FD:
        loop._ensure_fd_no_transport(sock)
    if context is None:
        context = contextvars.copy_context()
    tr = SocketTransport._new(loop, sock, protocol, context)
    transports._FlowControlMixin.__init__(tr, extra, loop)
    _init_extra(tr, sock)
    if server is not None:
        # Record the server only once attached: _attach() asserts when the
        # server closed meanwhile, and the finalizer must not then detach.
        if _ATTACH_TAKES_TRANSPORT:
            server._attach(tr)
        else:
            server._attach()
        tr._server = server
    loop._transports[tr._sock_fd] = tr
    if nodelay is None:
        base_events._set_nodelay(sock)  # type: ignore[attr-defined]
    elif nodelay:
        sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
    loop.call_soon(protocol.connection_made, tr, context=context)
    loop.call_soon(tr._start_reading, context=context)
    if waiter is not None:
        loop.call_soon(futures._set_result_unless_cancelled,  # type: ignore[attr-defined]
                       waiter, None)
    return tr


DatagramTransport = _core.DatagramTransport


def _init_extra(tr: Any, sock: socket) -> None:
    tr._extra["socket"] = trsock.TransportSocket(sock)
    try:
        tr._extra["sockname"] = sock.getsockname()
    except OSError:
        tr._extra["sockname"] = None
    if "peername" not in tr._extra:
        try:
            tr._extra["peername"] = sock.getpeername()
        except OSError:
            tr._extra["peername"] = None


def _accepted(loop, sock, protocol, peername, server, context):
    # type: (Loop, socket, Any, Any, Any, Any) -> _core.SocketTransport
    """An accepted connection's transport for a socket subclass (called
    by ext/accept.c's _accept_made(); asyncio's _set_nodelay() checks the
    socket)."""
    return make_socket_transport(loop, sock, protocol,
                                 extra={"peername": peername},
                                 server=server, context=context)


def make_datagram_transport(loop, sock, protocol, address=None,
                            waiter=None, extra=None, context=None):
    # type: (Loop, socket, Any, Any, Any, Any, Any) -> _core.DatagramTransport
    """What asyncio's _SelectorDatagramTransport.__init__ does, in order,
    with the protocol's callbacks in one context as for sockets."""
    if context is None:
        context = contextvars.copy_context()
    tr = DatagramTransport._new(loop, sock, protocol, context)
    transports._FlowControlMixin.__init__(tr, extra, loop)
    _init_extra(tr, sock)
    tr._dgram_setup(address, bool(tr._extra["peername"]))
    loop._transports[tr._sock_fd] = tr
    loop.call_soon(protocol.connection_made, tr, context=context)
    loop.call_soon(tr._start_reading, context=context)
    if waiter is not None:
        loop.call_soon(futures._set_result_unless_cancelled,  # type: ignore[attr-defined]
                       waiter, None)
    return tr


def make_ssl_transport(loop, rawsock, protocol, sslcontext, waiter=None, *,
                       server_side=False, server_hostname=None, extra=None,
                       server=None, context=None, **timeouts):
    # type: (Loop, socket, Any, Any, Any, bool, str | None, Any, Any, Any, **Any) -> Any
    """asyncio's _make_ssl_transport() over the C transport, with the C
    SSL protocol (tideloop/_sslproto.py)."""
    if _CHECKS_FD:
        loop._ensure_fd_no_transport(rawsock)
    ssl_protocol = _sslproto.new_ssl_protocol(
        loop, protocol, sslcontext, waiter, server_side, server_hostname,
        context=context, **timeouts)
    # One context for the connection: the socket transport's callbacks
    # (the SSL protocol's) and the app protocol's.
    make_socket_transport(loop, rawsock, ssl_protocol, extra=extra,
                          server=server,
                          context=getattr(ssl_protocol, "_context", context))
    return ssl_protocol._app_transport


# -- slow paths called from C ---------------------------------------------

def _fatal_error(tr: Any, exc: BaseException, message: str) -> None:
    if isinstance(exc, OSError):
        if tr._loop.get_debug():
            logger.debug("%r: %s", tr, message, exc_info=exc)
    else:
        tr._loop.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": tr,
            "protocol": tr._protocol,
        })
    # The C caller closes the transport (_force_close(exc)) next.


def _server_detach(server: Any, tr: Any) -> None:
    if _ATTACH_TAKES_TRANSPORT:
        server._detach(tr)
    else:
        server._detach()


def _debug_log(tr: Any, fmt: str) -> None:
    logger.debug(fmt, tr)


def _warn_send(tr: Any) -> None:
    logger.warning("socket.send() raised exception.")


def _finalize(tr: Any, _warn: Any = warnings.warn) -> None:
    sock = tr._sock
    if sock is not None:
        _warn(f"unclosed transport {tr!r}", ResourceWarning, source=tr)
        sock.close()
        server = tr._server
        if server is not None:
            _server_detach(server, tr)


def _repr(tr: Any) -> str:
    info = [type(tr).__name__]
    if tr._sock is None:
        info.append("closed")
    elif tr._closing:
        info.append("closing")
    info.append(f"fd={tr._sock_fd}")
    loop = tr._loop
    if loop is not None and not loop.is_closed():
        info.append("read=polling" if tr._reading_watched else "read=idle")
        state = "polling" if tr._writing_watched else "idle"
        info.append(f"write=<{state}, bufsize={tr.get_write_buffer_size()}>")
    return "<{}>".format(" ".join(info))


_core._set_helpers(tr_fatal_error=_fatal_error,
                   tr_accepted=_accepted,
                   tr_debug_log=_debug_log,
                   tr_warn_send=_warn_send,
                   tr_finalize=_finalize,
                   tr_repr=_repr)
