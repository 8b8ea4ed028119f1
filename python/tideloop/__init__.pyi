# Type stubs for the tideloop package: what importers see.
#
# The package's own .py files are annotated too, and mypy --strict checks
# them (tests/test_typing.py); this file is the public contract, kept
# equal to the runtime by `python -m mypy.stubtest tideloop`.
#
# tideloop.Loop is an asyncio.AbstractEventLoop (not a BaseEventLoop).
# Its methods take what asyncio's BaseEventLoop takes on the same Python
# (most are asyncio's own code), so their signatures (_core.pyi, _LoopAPI)
# follow typeshed's asyncio/base_events.pyi, per version.  The callback
# methods (call_soon & co.) come from tideloop._core.LoopBase and return
# tideloop's own Handle and TimerHandle, which have the public methods of
# asyncio's but are not subclasses of them.
import sys
from collections.abc import Coroutine
from typing import Any, TextIO, TypeVar

# asyncio.DefaultEventLoopPolicy, under the name that does not warn on 3.14+.
if sys.version_info >= (3, 14):
    from asyncio.unix_events import _UnixDefaultEventLoopPolicy as _PolicyBase
else:
    from asyncio import DefaultEventLoopPolicy as _PolicyBase

from ._core import LoopBase, _LoopAPI
from ._core import libuv_version as libuv_version

__all__ = ("Loop", "new_event_loop", "EventLoopPolicy", "install", "run",
           "libuv_version")
__version__: str

_T = TypeVar("_T")

def new_event_loop() -> Loop: ...

# Deprecated on 3.14 and 3.15 (a DeprecationWarning at the call, as
# asyncio's policies are); on 3.16, where asyncio has no policies, both
# raise RuntimeError (tideloop/_policy.py).
class EventLoopPolicy(_PolicyBase):
    """An asyncio event loop policy whose loops are tideloop loops."""

    _loop_factory: type[Loop]
    def __init__(self) -> None: ...
    def new_event_loop(self) -> Loop: ...

def install() -> None: ...

# Like asyncio.run() before 3.12 (no loop_factory: the loop is tideloop's).
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T: ...

# An asyncio.AbstractEventLoop (not a BaseEventLoop).  LoopBase's callback
# methods return tideloop's Handle/TimerHandle where AbstractEventLoop's
# return asyncio's: that difference is the ignore.  _LoopAPI (_core.pyi,
# type-check only) holds the asyncio methods Loop takes from asyncio.
class Loop(LoopBase, _LoopAPI):  # type: ignore[misc]
    """An asyncio event loop implemented in C on libuv."""

    def __init__(self) -> None: ...
    def stats(self) -> dict[str, int | float | str]: ...
    def print_debug_info(self, file: TextIO | None = None) -> None: ...
