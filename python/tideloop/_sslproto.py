"""TLS on tideloop loops: asyncio's SSL protocol layer in C.

``_core.SSLProtocol`` and ``_core._SSLProtocolTransport`` are asyncio's
``sslproto.SSLProtocol`` and ``_SSLProtocolTransport`` of Python 3.11+ in
C (ext/sslproto.c, sslflow.c, ssltransport.c).  This module holds what
runs once per connection or on errors only (logging, the exception
handler), detects what changed in asyncio's sslproto between Python
versions, and provides the loop's ``start_tls`` and the SSL transport
factory.

``TIDELOOP_SSL=python`` in the environment makes tideloop use asyncio's
own Python ``SSLProtocol`` instead, for comparison and bisecting.  Python
3.9 and 3.10, whose asyncio has the older SSL pipe design (different
flow control, shutdown and close_notify handling), always use asyncio's.
"""

from __future__ import annotations

import contextvars
import os
import sys
import types
from asyncio import base_events, exceptions, sslproto
from asyncio.log import logger as _logger

from . import _core

from typing import Any

_STOCK = sslproto.SSLProtocol

#: True when tideloop runs TLS with the C protocol.
USE_C = (sys.version_info >= (3, 11)
         and os.environ.get("TIDELOOP_SSL", "").strip().lower() != "python")

SSLProtocol: Any = _core.SSLProtocol if USE_C else _STOCK


# -- what changed between Python versions, read off asyncio's own code -----

def _names(func: Any) -> tuple[str, ...]:
    code = getattr(func, "__code__", None)
    return code.co_names if code is not None else ()


# 3.12+: _abort(exc) passes the exception on with transport._force_close().
_ABORT_PASSES_EXC = "_force_close" in _names(_STOCK.__dict__.get("_abort"))
# 3.14+: the app transport is closing once the underlying one is.
_CLOSING_FOLLOWS = hasattr(_STOCK, "_is_transport_closing")
# 3.14+: the shutdown timeout runs until connection_lost(), not only until
# close_notify was exchanged: before 3.14, asyncio's transport.close() then
# waits for a peer that does not read forever.  That is a hang, fixed on
# every version here (the README's known differences say so).
_TIMEOUT_UNTIL_LOST = True


# -- slow paths called from C --------------------------------------------

def _fatal_log(proto: Any, exc: BaseException, message: str) -> None:
    """The logging half of asyncio's SSLProtocol._fatal_error()."""
    loop = proto._loop
    if isinstance(exc, OSError):
        if loop.get_debug():
            _sslproto_logger().debug("%r: %s", proto, message, exc_info=exc)
    elif not isinstance(exc, exceptions.CancelledError):
        loop.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": proto._transport,
            "protocol": proto,
        })


def _flow_failed(proto: Any, message: str, exc: BaseException) -> None:
    """protocol.pause_writing()/resume_writing() raised."""
    proto._loop.call_exception_handler({
        "message": message,
        "exception": exc,
        "transport": proto._app_transport,
        "protocol": proto,
    })


def _sslproto_logger() -> Any:
    # Looked up at each call, as asyncio's module-level name is (tests
    # patch it).
    return getattr(sslproto, "logger", _logger)


def _log(level: int, msg: str, *args: Any) -> None:
    _sslproto_logger().log(level, msg, *args)


if sys.version_info >= (3, 11):
    # (3.9/3.10's sslproto lacks what the C protocol takes from it.)
    _core._set_ssl_helpers(
        fatal_log=_fatal_log, flow_failed=_flow_failed, log=_log,
        abort_passes_exc=_ABORT_PASSES_EXC,
        closing_follows_transport=_CLOSING_FOLLOWS,
        shutdown_timeout_until_lost=_TIMEOUT_UNTIL_LOST,
        asserts=not sys.flags.optimize)

_core._SSLProtocolTransport._sendfile_compatible = (
    sslproto._SSLProtocolTransport._sendfile_compatible)


# -- the loop's side -------------------------------------------------------

def new_ssl_protocol(loop: Any, app_protocol: Any, sslcontext: Any,
                     waiter: Any, server_side: bool = False,
                     server_hostname: Any = None, *,
                     context: Any = None, **timeouts: Any) -> Any:
    """The SSL protocol of a new TLS connection (create_connection,
    create_server, connect_accepted_socket)."""
    if not USE_C:
        return _STOCK(loop, app_protocol, sslcontext, waiter, server_side,
                      server_hostname, **timeouts)
    if context is None:
        # One context per connection for every Python (asyncio 3.15 passes
        # one): a copy of the one the connection is made in.
        context = contextvars.copy_context()
    return _core.SSLProtocol(loop, app_protocol, sslcontext, waiter,
                             server_side, server_hostname, context=context,
                             **timeouts)


_BASE_START_TLS = base_events.BaseEventLoop.start_tls
_SHIM = types.ModuleType("sslproto")


def _make_start_tls() -> Any:
    """asyncio's own BaseEventLoop.start_tls of the running Python, with
    its global ``sslproto`` being a namespace whose SSLProtocol is the C
    protocol: the same signature, checks, messages and steps (3.15 also
    hands the StreamReader's buffered bytes over), and still a coroutine
    function that checks its arguments when called."""
    if not USE_C:
        return _BASE_START_TLS
    fn = _BASE_START_TLS
    g = dict(base_events.__dict__)
    g["sslproto"] = _SHIM
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__,
                             fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__doc__ = fn.__doc__
    return new


for _name, _value in vars(sslproto).items():
    if not _name.startswith("__"):
        setattr(_SHIM, _name, _value)
setattr(_SHIM, "SSLProtocol", _core.SSLProtocol)
del _name, _value


#: Loop.start_tls
start_tls: Any = _make_start_tls()
