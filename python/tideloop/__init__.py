"""tideloop: a fast asyncio event loop written in C on libuv.

Use it in any of these ways::

    tideloop.run(main())
    asyncio.run(main(), loop_factory=tideloop.new_event_loop)   # 3.12+
    with asyncio.Runner(loop_factory=tideloop.new_event_loop) as r:  # 3.11+
        r.run(main())
    python -m tideloop script.py [args]     # also -m module, -c code

and, up to Python 3.15 (asyncio's policies: deprecated by 3.14, gone in
3.16; see tideloop._policy)::

    tideloop.install()   # asyncio.set_event_loop_policy(EventLoopPolicy())
"""

from __future__ import annotations

import asyncio as _asyncio
import sys
from typing import TYPE_CHECKING as _TYPE_CHECKING

from . import _core
from ._core import libuv_version
from ._loop import Loop
from ._policy import EventLoopPolicy, install

if _TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any, TypeVar
    _T = TypeVar("_T")

__all__ = ("Loop", "new_event_loop", "EventLoopPolicy", "install", "run",
           "libuv_version")
__version__ = "0.1.0"


def new_event_loop() -> Loop:
    """Return a new tideloop event loop."""
    return Loop()


# `sys`, not an alias, so that type checkers pick the branch.
if sys.version_info >= (3, 11):
    def run(main: Coroutine[Any, Any, _T], *,
            debug: bool | None = None) -> _T:
        """Run the coroutine `main` on a new tideloop loop, like
        asyncio.run(), and return its result."""
        if _asyncio.events._get_running_loop() is not None:
            # Same check and message as asyncio.run().
            raise RuntimeError(
                "asyncio.run() cannot be called from a running event loop")
        with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as r:
            return r.run(main)
else:
    def run(main: Coroutine[Any, Any, _T], *,
            debug: bool | None = None) -> _T:
        """Run the coroutine `main` on a new tideloop loop, like
        asyncio.run(), and return its result."""
        from asyncio import coroutines, events, runners

        if events._get_running_loop() is not None:
            raise RuntimeError(
                "asyncio.run() cannot be called from a running event loop")
        if not coroutines.iscoroutine(main):
            raise ValueError(f"a coroutine was expected, got {main!r}")
        loop = new_event_loop()
        try:
            events.set_event_loop(loop)
            if debug is not None:
                loop.set_debug(debug)
            return loop.run_until_complete(main)
        finally:
            try:
                runners._cancel_all_tasks(loop)  # type: ignore[attr-defined]
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                events.set_event_loop(None)
                loop.close()

del sys
