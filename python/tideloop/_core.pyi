# Type stubs for tideloop._core, the C extension (ext/*.c).
#
# Public names are typed for users; the private ones are the attributes the
# Python half of the package (python/tideloop/*.py) uses, so that mypy
# --strict can check that code against the C core.  `python -m mypy.stubtest
# tideloop` checks this file against the built module (tests/test_typing.py).
import ssl
import sys
from abc import ABCMeta
from _typeshed import (FileDescriptorLike, ReadableBuffer, StrPath,
                       WriteableBuffer)
from asyncio import (AbstractEventLoop, AbstractServer, BaseProtocol,
                     BufferedProtocol, Future,
                     Server, Task, transports)
from asyncio.events import _TaskFactory
from asyncio.transports import BaseTransport
from asyncio.transports import DatagramTransport as _DatagramTransportABC
from asyncio.transports import (ReadTransport, SubprocessTransport,
                                Transport, WriteTransport)
from collections.abc import (Awaitable, Callable, Coroutine, Generator,
                             Sequence)
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures import Future as ConcurrentFuture
from contextvars import Context
from socket import AddressFamily, AddressInfo, SocketKind, socket
from typing import IO, Any, Literal, TypeVar, final, overload, type_check_only

from typing_extensions import TypeAlias, TypeVarTuple, Unpack, disjoint_base

if sys.version_info >= (3, 10):
    from types import NotImplementedType as _NotImplementedType
else:
    from builtins import _NotImplementedType

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_ProtocolT = TypeVar("_ProtocolT", bound=BaseProtocol)
_Context: TypeAlias = dict[str, Any]
_ExceptionHandler: TypeAlias = Callable[[AbstractEventLoop, _Context], object]
_ProtocolFactory: TypeAlias = Callable[[], BaseProtocol]
_SSLContext: TypeAlias = bool | None | ssl.SSLContext
if sys.version_info >= (3, 12):
    _AwaitableLike: TypeAlias = Awaitable[_T]
else:
    _AwaitableLike: TypeAlias = Generator[Any, None, _T] | Awaitable[_T]
# socket's private aliases in typeshed, spelled out.
_Address: TypeAlias = tuple[Any, ...] | str | ReadableBuffer
_RetAddress: TypeAlias = Any
_CoroutineLike: TypeAlias = (
    Coroutine[Any, Any, _T] | Generator[Any, None, _T]
)
_FileDescriptorLike: TypeAlias = Any  # an int or an object with fileno()

def libuv_version() -> str: ...
# The backends of this build, the default first: ("epoll", "libuv") on
# Linux, ("libuv",) in a portable build.
BACKENDS: tuple[str, ...]
def monotonic_ns() -> int: ...
# asyncio.wrap_future(future, loop=loop) for an exact
# concurrent.futures.Future, chained in C (run_in_executor()).
def _wrap_future(loop: AbstractEventLoop, future: ConcurrentFuture[_T], /) -> Future[_T]: ...
# One table of Python helpers for the C core's rare paths; each call
# installs the entries it names.
def _set_helpers(
    *,
    report_exception: Callable[[Handle, BaseException], object] = ...,
    extract_stack: Callable[[], Any] = ...,
    log_slow: Callable[[Any, Handle, float], object] = ...,
    check_debug: Callable[[Any, Callable[..., object], str, bool], object] = ...,
    handle_repr: Callable[[Handle], str] = ...,
    fd_origin: Callable[[list[Any], bool], object] | None = ...,
    tr_fatal_error: Callable[[Any, BaseException, str], object] = ...,
    tr_accepted: Callable[[Any, Any, Any, Any, Any, Any], object] = ...,
    tr_debug_log: Callable[[Any, str], object] = ...,
    tr_warn_send: Callable[[Any], object] = ...,
    tr_finalize: Callable[[Any], object] = ...,
    tr_repr: Callable[[Any], str] = ...,
    pipe_fatal_error: Callable[[Any, BaseException, str], object] = ...,
    pipe_log: Callable[[int, str, Any], object] = ...,
    pipe_finalize: Callable[[Any], object] = ...,
    pipe_repr: Callable[[Any], str] = ...,
) -> None: ...

@disjoint_base
class Handle:
    """What call_soon() and call_soon_threadsafe() return.

    Not an asyncio.Handle subclass at runtime (isinstance() says no); it
    has the same public methods."""

    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...
    def get_context(self) -> Context: ...
    def _run(self) -> None: ...
    @property
    def _callback(self) -> Callable[..., object] | None: ...
    @property
    def _args(self) -> tuple[Any, ...] | None: ...
    @property
    def _cancelled(self) -> bool: ...
    # The tideloop.Loop that made the handle (None once cleared).
    @property
    def _loop(self) -> Any: ...
    @property
    def _source_traceback(self) -> Any: ...
    @property
    def _context(self) -> Context: ...
    @property
    def _repr(self) -> str | None: ...
    @property
    def _threadsafe(self) -> bool: ...

@disjoint_base
class TimerHandle(Handle):
    """What call_later() and call_at() return."""

    def when(self) -> float: ...
    def __hash__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    def __lt__(self, other: TimerHandle) -> bool: ...
    def __le__(self, other: TimerHandle) -> bool: ...
    def __gt__(self, other: TimerHandle) -> bool: ...
    def __ge__(self, other: TimerHandle) -> bool: ...
    @property
    def _when(self) -> float: ...
    @property
    def _scheduled(self) -> bool: ...

@disjoint_base
class LoopBase:
    """The C half of tideloop.Loop: scheduling, timers, the run loop."""

    _closed: bool
    _stopping: bool
    _thread_id: int | None
    _task_factory: Any
    _current_handle: Handle | None
    @property
    def _debug(self) -> bool: ...
    @_debug.setter
    def _debug(self, value: bool) -> None: ...
    @property
    def _timer_cancelled_count(self) -> int: ...
    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> Handle: ...
    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> Handle: ...
    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> TimerHandle: ...
    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> TimerHandle: ...
    # Keywords other than name= and context= go to asyncio's create_task()
    # (eager_start= on 3.13.3+, say), as on stock asyncio.
    if sys.version_info >= (3, 13):
        def create_task(
            self,
            coro: _CoroutineLike[_T],
            *,
            name: object = None,
            context: Context | None = None,
            eager_start: bool | None = None,
        ) -> Task[_T]: ...
    elif sys.version_info >= (3, 11):
        def create_task(
            self,
            coro: _CoroutineLike[_T],
            *,
            name: object = None,
            context: Context | None = None,
        ) -> Task[_T]: ...
    else:
        def create_task(
            self, coro: _CoroutineLike[_T], *, name: object = None
        ) -> Task[_T]: ...

    def time(self) -> float: ...
    def create_future(self) -> Future[Any]: ...
    def stop(self) -> None: ...
    def get_debug(self) -> bool: ...
    def is_running(self) -> bool: ...
    def is_closed(self) -> bool: ...
    # Private: used by tideloop.Loop.
    def _write_to_self(self) -> None: ...
    def _run(self) -> None: ...
    def _close_impl(self) -> None: ...
    def _clear_queues(self) -> None: ...
    def _after_fork(self) -> None: ...
    def _signal_wakeup_fd(self) -> int: ...
    def _push_handle(self, handle: Handle, /) -> None: ...
    def _new_handle(
        self, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts]
    ) -> Handle: ...
    def _stats(self) -> dict[str, int | float | str]: ...
    def _watchers(self) -> list[tuple[int, Handle | None, Handle | None]]: ...
    def _getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0,
        proto: int = 0, flags: int = 0, checked: bool = False, /,
    ) -> (list[tuple[Any, Any, int, str, Any]]
          | Future[list[tuple[Any, Any, int, str, Any]]]
          | _NotImplementedType | None): ...
    def _getnameinfo(
        self, sockaddr: Any, flags: int, /,
    ) -> Future[tuple[str, str]] | None: ...
    def _add_reader(
        self,
        fd: _FileDescriptorLike,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> Handle: ...
    def _add_writer(
        self,
        fd: _FileDescriptorLike,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> Handle: ...
    def _remove_reader(self, fd: _FileDescriptorLike, /) -> bool: ...
    def _remove_writer(self, fd: _FileDescriptorLike, /) -> bool: ...
    def _fd_events(self, fd: _FileDescriptorLike, /) -> int: ...
    def _sock_add_reader(self, fd: _FileDescriptorLike, callback: Any, /,
                         *args: Any, context: Any = ...) -> Any: ...
    def _sock_add_writer(self, fd: _FileDescriptorLike, callback: Any, /,
                         *args: Any, context: Any = ...) -> Any: ...
    def _sock_start(self, op: int, sock: Any, a: Any, b: Any = ..., /) -> Any: ...
    def _accept_batch(
        self, socket_cls: type[socket], family: int, type: int, proto: int,
        fd: int, n: int, aborted_continues: bool, /,
    ) -> tuple[list[Any], BaseException | None, int]: ...
    def _sock_end(self, rec: list[Any], /) -> None: ...
    def _accept_made(
        self, protocol_factory: Callable[[], Any], server: Any,
        nodelay: bool | None, context: Context | None, run: list[Any], /,
    ) -> None: ...

# The transports' real base is asyncio's _FlowControlMixin (write buffer
# limits, pause_writing()/resume_writing(), get_extra_info()).  They cannot
# be subclassed or created directly (tideloop._transports makes them).

@final
class SocketTransport(transports._FlowControlMixin):
    """A TCP or Unix stream socket transport in C."""

    max_size: int
    # Set by asyncio's BaseTransport.__init__ (instance attributes).
    _extra: dict[str, Any]
    _loop: Any
    _start_tls_compatible: bool
    _sendfile_compatible: Any
    def write(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def writelines(
        self, list_of_data: Any, /
    ) -> None: ...
    def write_eof(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_protocol(self, protocol: BaseProtocol, /) -> None: ...
    def get_protocol(self) -> BaseProtocol: ...
    def get_write_buffer_size(self) -> int: ...
    @classmethod
    def _new(
        cls, loop: LoopBase, sock: socket, protocol: BaseProtocol,
        context: Context | None = None, /,
    ) -> SocketTransport: ...
    def _read_ready(self) -> None: ...
    def _write_ready(self) -> None: ...
    def _force_close(self, exc: BaseException | None, /) -> None: ...
    def _call_connection_lost(self, exc: BaseException | None, /) -> None: ...
    def _start_reading(self) -> None: ...
    def _make_empty_waiter(self) -> Future[None]: ...
    def _reset_empty_waiter(self) -> None: ...
    @property
    def _sock(self) -> socket | None: ...
    @property
    def _sock_fd(self) -> int: ...
    @property
    def _protocol(self) -> BaseProtocol: ...
    @property
    def _server(self) -> Any: ...
    @_server.setter
    def _server(self, value: Any) -> None: ...
    @property
    def _empty_waiter(self) -> Future[None] | None: ...
    @property
    def _closing(self) -> bool: ...
    @property
    def _context(self) -> Context | None: ...
    @property
    def _conn_lost(self) -> int: ...
    @property
    def _paused(self) -> bool: ...
    @property
    def _eof(self) -> bool: ...
    @property
    def _reading_watched(self) -> bool: ...
    @property
    def _writing_watched(self) -> bool: ...
    @property
    def _protocol_connected(self) -> bool: ...

@final
class DatagramTransport(
    transports._FlowControlMixin, _DatagramTransportABC
):
    """A UDP or Unix datagram socket transport in C."""

    max_size: int
    # Set by asyncio's BaseTransport.__init__ (instance attributes).
    _extra: dict[str, Any]
    _loop: Any
    def sendto(self, data: bytes | bytearray | memoryview,
               addr: Any = None) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_protocol(self, protocol: BaseProtocol, /) -> None: ...
    def get_protocol(self) -> BaseProtocol: ...
    def get_write_buffer_size(self) -> int: ...
    @classmethod
    def _new(
        cls, loop: LoopBase, sock: socket, protocol: BaseProtocol,
        context: Context | None = None, /,
    ) -> DatagramTransport: ...
    def _read_ready(self) -> None: ...
    def _write_ready(self) -> None: ...
    def _sendto_ready(self) -> None: ...
    def _force_close(self, exc: BaseException | None, /) -> None: ...
    def _call_connection_lost(self, exc: BaseException | None, /) -> None: ...
    def _start_reading(self) -> None: ...
    def _dgram_setup(self, address: Any, connected: bool, /) -> None: ...
    @property
    def _sock(self) -> socket | None: ...
    @property
    def _sock_fd(self) -> int: ...
    @property
    def _protocol(self) -> BaseProtocol: ...
    @property
    def _closing(self) -> bool: ...
    @property
    def _context(self) -> Context | None: ...
    @property
    def _conn_lost(self) -> int: ...
    @property
    def _paused(self) -> bool: ...
    @property
    def _address(self) -> Any: ...
    @property
    def _server(self) -> Any: ...
    @_server.setter
    def _server(self, value: Any) -> None: ...
    @property
    def _reading_watched(self) -> bool: ...
    @property
    def _writing_watched(self) -> bool: ...
    @property
    def _protocol_connected(self) -> bool: ...

# The pipe transports (connect_read_pipe(), connect_write_pipe(), a
# subprocess's pipes) have asyncio's classes as their real bases, as
# unix_events._UnixReadPipeTransport / _UnixWritePipeTransport do.  They
# cannot be subclassed or created directly (tideloop._pipes makes them).

@final
class ReadPipeTransport(ReadTransport):
    """The read end of a pipe, socket or character device, in C."""

    max_size: int
    # Set by asyncio's BaseTransport.__init__ (instance attribute).
    _extra: dict[str, Any]
    # 3.9/3.10 inherit ReadTransport.is_reading() (which raises
    # NotImplementedError), as asyncio's _UnixReadPipeTransport does there.
    if sys.version_info >= (3, 11):
        def is_reading(self) -> bool: ...

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_protocol(self, protocol: BaseProtocol, /) -> None: ...
    def get_protocol(self) -> BaseProtocol: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    @classmethod
    def _new(
        cls, loop: LoopBase, pipe: Any, fileno: int, protocol: BaseProtocol,
        context: Context | None = None, /,
    ) -> ReadPipeTransport: ...
    def _read_ready(self) -> None: ...
    def _close(self, exc: BaseException | None, /) -> None: ...
    def _call_connection_lost(self, exc: BaseException | None, /) -> None: ...
    def _start_reading(self) -> None: ...
    # The file object (None once closed; set to None to skip the unclosed
    # transport warning).
    @property
    def _pipe(self) -> Any: ...
    @_pipe.setter
    def _pipe(self, value: Any) -> None: ...
    @property
    def _protocol(self) -> BaseProtocol: ...
    @_protocol.setter
    def _protocol(self, value: BaseProtocol | None) -> None: ...
    @property
    def _fileno(self) -> int: ...
    @property
    def _closing(self) -> bool: ...
    @property
    def _context(self) -> Context | None: ...
    @property
    def _paused(self) -> bool: ...
    # The tideloop.Loop (None once connection_lost() was called).
    @property
    def _loop(self) -> Any: ...
    @property
    def _reading_watched(self) -> bool: ...

@final
class WritePipeTransport(transports._FlowControlMixin, WriteTransport):
    """The write end of a pipe, socket or character device, in C."""

    # Set by asyncio's BaseTransport.__init__ / _FlowControlMixin.__init__
    # (instance attributes).
    _extra: dict[str, Any]
    _loop: Any
    def write(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def write_eof(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def set_protocol(self, protocol: BaseProtocol, /) -> None: ...
    def get_protocol(self) -> BaseProtocol: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    @classmethod
    def _new(
        cls, loop: LoopBase, pipe: Any, fileno: int, protocol: BaseProtocol,
        context: Context | None = None, /,
    ) -> WritePipeTransport: ...
    def _read_ready(self) -> None: ...
    def _write_ready(self) -> None: ...
    def _close(self, exc: BaseException | None = None, /) -> None: ...
    def _call_connection_lost(self, exc: BaseException | None, /) -> None: ...
    def _start_reading(self) -> None: ...
    @property
    def _pipe(self) -> Any: ...
    @_pipe.setter
    def _pipe(self, value: Any) -> None: ...
    @property
    def _protocol(self) -> BaseProtocol: ...
    @_protocol.setter
    def _protocol(self, value: BaseProtocol | None) -> None: ...
    @property
    def _fileno(self) -> int: ...
    @property
    def _closing(self) -> bool: ...
    @property
    def _context(self) -> Context | None: ...
    @property
    def _conn_lost(self) -> int: ...
    @property
    def _reading_watched(self) -> bool: ...
    @property
    def _writing_watched(self) -> bool: ...

# -- TLS: asyncio's SSL protocol layer in C (ext/ssl*.c) --------------------

def _set_ssl_helpers(
    *,
    fatal_log: Callable[[Any, BaseException, str], object],
    flow_failed: Callable[[Any, str, BaseException], object],
    log: Callable[..., object],
    abort_passes_exc: bool,
    closing_follows_transport: bool,
    shutdown_timeout_until_lost: bool,
    asserts: bool,
) -> None: ...

@final
class SSLProtocol(BufferedProtocol):
    """asyncio's sslproto.SSLProtocol (3.11+) in C."""

    max_size: int
    def __new__(
        cls,
        loop: AbstractEventLoop,
        app_protocol: BaseProtocol,
        sslcontext: ssl.SSLContext | None,
        waiter: Future[Any] | None,
        server_side: bool = ...,
        server_hostname: str | None = ...,
        call_connection_made: bool = ...,
        ssl_handshake_timeout: float | None = ...,
        ssl_shutdown_timeout: float | None = ...,
        context: Context | None = ...,
    ) -> SSLProtocol: ...
    def connection_made(self, transport: BaseTransport, /) -> None: ...
    def connection_lost(self, exc: BaseException | None, /) -> None: ...
    def get_buffer(self, n: int, /) -> memoryview: ...
    def buffer_updated(self, nbytes: int, /) -> None: ...
    def eof_received(self) -> bool | None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def _check_handshake_timeout(self) -> None: ...
    def _check_shutdown_timeout(self) -> None: ...
    def _do_read(self) -> None: ...
    def _resume_reading_cb(self) -> None: ...
    def _get_app_transport(self) -> _SSLProtocolTransport: ...
    def _start_shutdown(self) -> None: ...
    def _abort(self, exc: BaseException | None = ..., /) -> None: ...
    def _get_extra_info(self, name: str, default: Any = ..., /) -> Any: ...
    def _set_app_protocol(self, app_protocol: BaseProtocol, /) -> None: ...
    def _wakeup_waiter(self, exc: BaseException | None = ..., /) -> None: ...
    @property
    def _state(self) -> Any: ...
    @property
    def _app_state(self) -> Any: ...
    @property
    def _write_buffer_size(self) -> int: ...
    @property
    def _write_backlog(self) -> list[Any]: ...
    @property
    def _loop(self) -> AbstractEventLoop: ...
    @property
    def _app_protocol(self) -> BaseProtocol | None: ...
    @property
    def _app_transport(self) -> _SSLProtocolTransport | None: ...
    @property
    def _transport(self) -> BaseTransport | None: ...
    @property
    def _waiter(self) -> Future[Any] | None: ...
    @property
    def _sslcontext(self) -> ssl.SSLContext: ...
    @property
    def _server_side(self) -> bool: ...
    @property
    def _server_hostname(self) -> str | None: ...
    @property
    def _extra(self) -> dict[str, Any]: ...
    @property
    def _incoming(self) -> ssl.MemoryBIO: ...
    @property
    def _outgoing(self) -> ssl.MemoryBIO: ...
    @property
    def _sslobj(self) -> ssl.SSLObject: ...
    @property
    def _context(self) -> Context: ...
    @property
    def _ssl_handshake_timeout(self) -> float: ...
    @property
    def _ssl_shutdown_timeout(self) -> float: ...
    @property
    def _handshake_start_time(self) -> float | None: ...
    @property
    def _handshake_timeout_handle(self) -> Any: ...
    @property
    def _shutdown_timeout_handle(self) -> Any: ...
    @property
    def _incoming_high_water(self) -> int: ...
    @property
    def _incoming_low_water(self) -> int: ...
    @property
    def _outgoing_high_water(self) -> int: ...
    @property
    def _outgoing_low_water(self) -> int: ...
    @property
    def _app_protocol_is_buffer(self) -> bool: ...
    @property
    def _app_transport_created(self) -> bool: ...
    @property
    def _eof_received(self) -> bool: ...
    @property
    def _ssl_writing_paused(self) -> bool: ...
    @property
    def _app_reading_paused(self) -> bool: ...
    @property
    def _ssl_reading_paused(self) -> bool: ...
    @property
    def _app_writing_paused(self) -> bool: ...
    @property
    def _conn_lost(self) -> int: ...

@final
class _SSLProtocolTransport(transports._FlowControlMixin):
    """The transport of an app protocol over TLS (asyncio's
    sslproto._SSLProtocolTransport) in C; SSLProtocol makes it."""

    _start_tls_compatible: bool
    _sendfile_compatible: Any
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def set_protocol(self, protocol: BaseProtocol, /) -> None: ...
    def get_protocol(self) -> BaseProtocol: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def get_write_buffer_size(self) -> int: ...
    def set_read_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None: ...
    def get_read_buffer_limits(self) -> tuple[int, int]: ...
    def get_read_buffer_size(self) -> int: ...
    def write(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def writelines(self, list_of_data: Any, /) -> None: ...
    def write_eof(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def abort(self) -> None: ...
    def _force_close(self, exc: BaseException | None, /) -> None: ...
    def _test__append_write_backlog(self, data: Any, /) -> None: ...
    @property
    def _protocol_paused(self) -> bool: ...
    @property
    def _closed(self) -> bool: ...
    @_closed.setter
    def _closed(self, value: bool) -> None: ...
    @property
    def _loop(self) -> Any: ...
    @property
    def _ssl_protocol(self) -> SSLProtocol | None: ...
    @property
    def _context(self) -> Context | None: ...

@type_check_only
class _LoopAPI(AbstractEventLoop, metaclass=ABCMeta):
    """What tideloop.Loop (python/tideloop/_loop.py) has beyond LoopBase.

    Most of it is asyncio's own BaseEventLoop and selector-loop code of the
    running Python, copied onto Loop (_loop.py's _BORROWED and friends), so
    the signatures are typeshed's asyncio/base_events.pyi ones, per
    version.  Type-check only: no such class exists at runtime; stubtest
    checks these methods on tideloop.Loop.
    """

    slow_callback_duration: float
    def run_forever(self) -> None: ...
    def run_until_complete(self, future: _AwaitableLike[_T]) -> _T: ...
    def close(self) -> None: ...
    async def shutdown_asyncgens(self) -> None: ...

    def set_task_factory(self, factory: _TaskFactory | None) -> None: ...
    def get_task_factory(self) -> _TaskFactory | None: ...
    # Methods for interacting with threads
    def run_in_executor(self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]) -> Future[_T]: ...
    def set_default_executor(self, executor: ThreadPoolExecutor) -> None: ...  # type: ignore[override]
    # Network I/O methods returning Futures.
    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[AddressFamily, SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int]]]: ...
    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int = 0) -> tuple[str, str]: ...
    if sys.version_info >= (3, 12):
        @overload
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: str = ...,
            port: int = ...,
            *,
            ssl: _SSLContext = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: None = None,
            local_addr: tuple[str, int] | None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
            all_errors: bool = False,
        ) -> tuple[Transport, _ProtocolT]: ...
        @overload
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: None = None,
            port: None = None,
            *,
            ssl: _SSLContext = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: socket,
            local_addr: None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
            all_errors: bool = False,
        ) -> tuple[Transport, _ProtocolT]: ...
    elif sys.version_info >= (3, 11):
        @overload
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: str = ...,
            port: int = ...,
            *,
            ssl: _SSLContext = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: None = None,
            local_addr: tuple[str, int] | None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
        ) -> tuple[Transport, _ProtocolT]: ...
        @overload
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: None = None,
            port: None = None,
            *,
            ssl: _SSLContext = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: socket,
            local_addr: None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
        ) -> tuple[Transport, _ProtocolT]: ...
    else:
        @overload
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: str = ...,
            port: int = ...,
            *,
            ssl: _SSLContext = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: None = None,
            local_addr: tuple[str, int] | None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
        ) -> tuple[Transport, _ProtocolT]: ...
        @overload
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: None = None,
            port: None = None,
            *,
            ssl: _SSLContext = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: socket,
            local_addr: None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
        ) -> tuple[Transport, _ProtocolT]: ...

    if sys.version_info >= (3, 13):
        # 3.13 added `keep_alive`.
        @overload
        async def create_server(
            self,
            protocol_factory: _ProtocolFactory,
            host: str | Sequence[str] | None = None,
            port: int = ...,
            *,
            family: int = 0,
            flags: int = 1,
            sock: None = None,
            backlog: int = 100,
            ssl: _SSLContext = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            keep_alive: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> Server: ...
        @overload
        async def create_server(
            self,
            protocol_factory: _ProtocolFactory,
            host: None = None,
            port: None = None,
            *,
            family: int = 0,
            flags: int = 1,
            sock: socket = ...,
            backlog: int = 100,
            ssl: _SSLContext = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            keep_alive: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> Server: ...
    elif sys.version_info >= (3, 11):
        @overload
        async def create_server(
            self,
            protocol_factory: _ProtocolFactory,
            host: str | Sequence[str] | None = None,
            port: int = ...,
            *,
            family: int = AddressFamily.AF_UNSPEC,
            flags: int = AddressInfo.AI_PASSIVE,
            sock: None = None,
            backlog: int = 100,
            ssl: _SSLContext = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> Server: ...
        @overload
        async def create_server(
            self,
            protocol_factory: _ProtocolFactory,
            host: None = None,
            port: None = None,
            *,
            family: int = AddressFamily.AF_UNSPEC,
            flags: int = AddressInfo.AI_PASSIVE,
            sock: socket = ...,
            backlog: int = 100,
            ssl: _SSLContext = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> Server: ...
    else:
        @overload
        async def create_server(
            self,
            protocol_factory: _ProtocolFactory,
            host: str | Sequence[str] | None = None,
            port: int = ...,
            *,
            family: int = AddressFamily.AF_UNSPEC,
            flags: int = AddressInfo.AI_PASSIVE,
            sock: None = None,
            backlog: int = 100,
            ssl: _SSLContext = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            start_serving: bool = True,
        ) -> Server: ...
        @overload
        async def create_server(
            self,
            protocol_factory: _ProtocolFactory,
            host: None = None,
            port: None = None,
            *,
            family: int = AddressFamily.AF_UNSPEC,
            flags: int = AddressInfo.AI_PASSIVE,
            sock: socket = ...,
            backlog: int = 100,
            ssl: _SSLContext = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            start_serving: bool = True,
        ) -> Server: ...

    if sys.version_info >= (3, 11):
        async def start_tls(
            self,
            transport: BaseTransport,
            protocol: BaseProtocol,
            sslcontext: ssl.SSLContext,
            *,
            server_side: bool = False,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
        ) -> Transport | None: ...
        async def connect_accepted_socket(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            sock: socket,
            *,
            ssl: _SSLContext = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
        ) -> tuple[Transport, _ProtocolT]: ...
    else:
        async def start_tls(
            self,
            transport: BaseTransport,
            protocol: BaseProtocol,
            sslcontext: ssl.SSLContext,
            *,
            server_side: bool = False,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
        ) -> Transport | None: ...
        async def connect_accepted_socket(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            sock: socket,
            *,
            ssl: _SSLContext = None,
            ssl_handshake_timeout: float | None = None,
        ) -> tuple[Transport, _ProtocolT]: ...

    async def sock_sendfile(
        self, sock: socket, file: IO[bytes], offset: int = 0, count: int | None = None, *, fallback: bool | None = True
    ) -> int: ...
    async def sendfile(
        self, transport: WriteTransport, file: IO[bytes], offset: int = 0, count: int | None = None, *, fallback: bool = True
    ) -> int: ...
    if sys.version_info >= (3, 11):
        async def create_datagram_endpoint(  # type: ignore[override]
            self,
            protocol_factory: Callable[[], _ProtocolT],
            local_addr: tuple[str, int] | str | None = None,
            remote_addr: tuple[str, int] | str | None = None,
            *,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            reuse_port: bool | None = None,
            allow_broadcast: bool | None = None,
            sock: socket | None = None,
        ) -> tuple[_DatagramTransportABC, _ProtocolT]: ...
    else:
        async def create_datagram_endpoint(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            local_addr: tuple[str, int] | str | None = None,
            remote_addr: tuple[str, int] | str | None = None,
            *,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            reuse_address: bool | None = ...,
            reuse_port: bool | None = None,
            allow_broadcast: bool | None = None,
            sock: socket | None = None,
        ) -> tuple[_DatagramTransportABC, _ProtocolT]: ...
    # Pipes and subprocesses.
    async def connect_read_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[ReadTransport, _ProtocolT]: ...
    async def connect_write_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[WriteTransport, _ProtocolT]: ...
    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        cmd: bytes | str,
        *,
        stdin: int | IO[Any] | None = -1,
        stdout: int | IO[Any] | None = -1,
        stderr: int | IO[Any] | None = -1,
        universal_newlines: Literal[False] = False,
        shell: Literal[True] = True,
        bufsize: Literal[0] = 0,
        encoding: None = None,
        errors: None = None,
        text: Literal[False] | None = None,
        **kwargs: Any,
    ) -> tuple[SubprocessTransport, _ProtocolT]: ...
    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        program: Any,
        *args: Any,
        stdin: int | IO[Any] | None = -1,
        stdout: int | IO[Any] | None = -1,
        stderr: int | IO[Any] | None = -1,
        universal_newlines: Literal[False] = False,
        shell: Literal[False] = False,
        bufsize: Literal[0] = 0,
        encoding: None = None,
        errors: None = None,
        text: Literal[False] | None = None,
        **kwargs: Any,
    ) -> tuple[SubprocessTransport, _ProtocolT]: ...
    def add_reader(self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], Any], *args: Unpack[_Ts]) -> None: ...
    def remove_reader(self, fd: FileDescriptorLike) -> bool: ...
    def add_writer(self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], Any], *args: Unpack[_Ts]) -> None: ...
    def remove_writer(self, fd: FileDescriptorLike) -> bool: ...
    # The sock_* methods (and probably some others) are not actually implemented on
    # BaseEventLoop, only on subclasses. We list them here for now for convenience.
    # asyncio's selector loop (whose code this is) calls the size `n`.
    async def sock_recv(self, sock: socket, n: int) -> bytes: ...
    async def sock_recv_into(self, sock: socket, buf: WriteableBuffer) -> int: ...
    async def sock_sendall(self, sock: socket, data: ReadableBuffer) -> None: ...
    async def sock_connect(self, sock: socket, address: _Address) -> None: ...
    async def sock_accept(self, sock: socket) -> tuple[socket, _RetAddress]: ...
    if sys.version_info >= (3, 11):
        async def sock_recvfrom(self, sock: socket, bufsize: int) -> tuple[bytes, _RetAddress]: ...
        async def sock_recvfrom_into(self, sock: socket, buf: WriteableBuffer, nbytes: int = 0) -> tuple[int, _RetAddress]: ...
        async def sock_sendto(self, sock: socket, data: ReadableBuffer, address: _Address) -> int: ...
    # Signal handling.
    def add_signal_handler(self, sig: int, callback: Callable[[Unpack[_Ts]], Any], *args: Unpack[_Ts]) -> None: ...
    def remove_signal_handler(self, sig: int) -> bool: ...
    # Error handlers.
    def set_exception_handler(self, handler: _ExceptionHandler | None) -> None: ...
    def get_exception_handler(self) -> _ExceptionHandler | None: ...
    def default_exception_handler(self, context: _Context) -> None: ...
    def call_exception_handler(self, context: _Context) -> None: ...
    # Debug flag management.
    def set_debug(self, enabled: bool) -> None: ...
    if sys.version_info >= (3, 12):
        async def shutdown_default_executor(self, timeout: float | None = None) -> None: ...
    else:
        async def shutdown_default_executor(self) -> None: ...

    def __del__(self) -> None: ...
    if sys.version_info >= (3, 13):
        async def create_unix_server(
            self,
            protocol_factory: _ProtocolFactory,
            path: StrPath | None = None,
            *,
            sock: socket | None = None,
            backlog: int = 100,
            ssl: _SSLContext = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
            cleanup_socket: bool = True,
        ) -> Server: ...
    # Private asyncio helpers that Loop borrows and _loop.py calls.
    def _check_closed(self) -> None: ...
    def _check_running(self) -> None: ...
    def _check_thread(self) -> None: ...
    def _check_callback(self, callback: object, method: str) -> None: ...
    def _check_default_executor(self) -> None: ...
    def _set_coroutine_origin_tracking(self, enabled: bool) -> None: ...
    def _asyncgen_firstiter_hook(self, agen: Any) -> None: ...
    def _asyncgen_finalizer_hook(self, agen: Any) -> None: ...
    def _child_watcher_callback(
        self, pid: int, returncode: int, transp: Any
    ) -> None: ...
    def _ensure_fd_no_transport(self, fd: FileDescriptorLike) -> None: ...
    # asyncio's BaseEventLoop.create_task(), which LoopBase.create_task()
    # calls for what its fast path does not handle.
    _create_task_py: Callable[..., Task[Any]]
