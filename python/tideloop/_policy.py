"""tideloop's event loop policy, and how ``python -m tideloop`` makes
asyncio use tideloop loops, on every Python version.

asyncio's policy system is deprecated by Python 3.14 and removed in 3.16
(CPython gh-127949).  What tideloop does about it:

* 3.9-3.13: ``EventLoopPolicy`` is an ``asyncio.DefaultEventLoopPolicy``
  whose loops are tideloop loops; ``install()`` sets it.  No warning.
* 3.14 and 3.15: the same policy still works.  ``EventLoopPolicy()`` and
  ``install()`` each give one ``DeprecationWarning`` in tideloop's words,
  at the caller's line (``install()`` sets the policy through asyncio's
  private setter, so asyncio does not warn a second time).  The policy
  keeps 3.13's ``get_event_loop()``: in the main thread, with no loop set
  yet, it creates and sets one (with 3.13's "There is no current event
  loop" DeprecationWarning) where 3.14's own policy raises RuntimeError.
* 3.16 and later: ``EventLoopPolicy()`` and ``install()`` raise
  RuntimeError naming the replacements (``tideloop.run``,
  ``loop_factory=tideloop.new_event_loop``, ``python -m tideloop``).

``python -m tideloop`` (``install_for_main``) never goes through the
deprecated public API: up to 3.15 it sets the policy with asyncio's private
setter (nothing to warn about), and from 3.16 it makes
``asyncio.new_event_loop()``, which ``asyncio.run()`` and
``asyncio.Runner`` call, return tideloop loops.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from asyncio import events
from typing import Any

from ._loop import Loop

__all__ = ("EventLoopPolicy", "install", "install_for_main")

_INSTEAD = ("use tideloop.run(main()), asyncio.run(main(), "
            "loop_factory=tideloop.new_event_loop) or "
            "asyncio.Runner(loop_factory=tideloop.new_event_loop); "
            "`python -m tideloop script.py` works on every version")


def _new_loop() -> Loop:
    return Loop()


def install_loop_factory_hooks() -> None:
    """Make ``asyncio.new_event_loop()`` return tideloop loops without a
    policy: asyncio.run() and asyncio.Runner() without a loop_factory call
    ``asyncio.events.new_event_loop()``.  What ``python -m tideloop`` does
    where asyncio has no policies (3.16+); exercised on every version by
    tests/test_entrypoints.py."""
    events.new_event_loop = _new_loop
    asyncio.new_event_loop = _new_loop


class _RemovedEventLoopPolicy:
    """tideloop.EventLoopPolicy on Python 3.16+, where asyncio has no
    event loop policies: creating one raises RuntimeError."""

    def __init__(self) -> None:
        raise RuntimeError(
            "tideloop.EventLoopPolicy: Python %d.%d has no asyncio event loop "
            "policies (removed in 3.16); %s"
            % (sys.version_info[0], sys.version_info[1], _INSTEAD))


def _removed_install() -> None:
    raise RuntimeError(
        "tideloop.install() sets an asyncio event loop policy, and Python "
        "%d.%d has none (removed in 3.16); %s"
        % (sys.version_info[0], sys.version_info[1], _INSTEAD))


def _warn_deprecated(what: str, stacklevel: int) -> None:
    warnings.warn(
        "%s is deprecated: it uses asyncio's event loop policies, which "
        "Python 3.14 deprecates and 3.16 removes; %s" % (what, _INSTEAD),
        DeprecationWarning, stacklevel=stacklevel + 1)


if sys.version_info >= (3, 16):
    class EventLoopPolicy(_RemovedEventLoopPolicy):
        """Gone with asyncio's event loop policies (Python 3.16)."""

    install = _removed_install

    def install_for_main() -> None:
        """Make asyncio.run() & co. use tideloop (python -m tideloop)."""
        install_loop_factory_hooks()

else:
    if sys.version_info >= (3, 14):
        # asyncio.DefaultEventLoopPolicy is this class; the public name
        # warns on access.
        from asyncio.unix_events import (
            _UnixDefaultEventLoopPolicy as _PolicyBase)
        _set_policy = events._set_event_loop_policy
    else:
        _PolicyBase = asyncio.DefaultEventLoopPolicy
        _set_policy = asyncio.set_event_loop_policy

    class EventLoopPolicy(_PolicyBase):
        """An asyncio event loop policy whose loops are tideloop loops.

        asyncio.set_event_loop_policy(tideloop.EventLoopPolicy())

        Deprecated on Python 3.14 and 3.15 (as asyncio's policies are),
        unavailable from 3.16: use tideloop.run() or
        loop_factory=tideloop.new_event_loop.
        """

        _loop_factory = Loop
        _local: Any    # asyncio's per-thread state (untyped in typeshed)

        def __init__(self) -> None:
            if sys.version_info >= (3, 14):
                _warn_deprecated("tideloop.EventLoopPolicy", stacklevel=2)
            super().__init__()

        def __repr__(self) -> str:
            return f"<{type(self).__module__}.{type(self).__qualname__}>"

        if sys.version_info >= (3, 14):
            # 3.13's get_event_loop(): the behaviour the programs that still
            # install a policy were written for.  3.14's policy raises
            # RuntimeError instead of creating the main thread's loop.
            def get_event_loop(self) -> asyncio.AbstractEventLoop:
                """Get the event loop for the current context.

                Returns an instance of EventLoop or raises an exception.
                """
                local = self._local
                if (local._loop is None
                        and not getattr(local, "_set_called", False)
                        and threading.current_thread()
                        is threading.main_thread()):
                    warnings.warn("There is no current event loop",
                                  DeprecationWarning,
                                  stacklevel=_outside_asyncio_stacklevel())
                    self.set_event_loop(self.new_event_loop())
                if local._loop is None:
                    raise RuntimeError(
                        "There is no current event loop in thread %r."
                        % threading.current_thread().name)
                return local._loop  # type: ignore[no-any-return]

            def set_event_loop(
                    self, loop: asyncio.AbstractEventLoop | None) -> None:
                """Set the event loop."""
                # After an explicit set_event_loop(None), get_event_loop()
                # raises instead of creating a loop (as on 3.13).
                self._local._set_called = True
                super().set_event_loop(loop)

    def _new_policy() -> EventLoopPolicy:
        # The policy without the deprecation warning of EventLoopPolicy():
        # install() gives its own, python -m tideloop none.
        policy = EventLoopPolicy.__new__(EventLoopPolicy)
        _PolicyBase.__init__(policy)
        return policy

    def install() -> None:
        """Make tideloop the loop of asyncio.run() and new_event_loop()
        (sets tideloop's event loop policy)."""
        if sys.version_info >= (3, 14):
            _warn_deprecated("tideloop.install()", stacklevel=2)
        _set_policy(_new_policy())

    def install_for_main() -> None:
        """Make asyncio.run() & co. use tideloop (python -m tideloop),
        warning-free on every version."""
        _set_policy(_new_policy())


# Public as tideloop.EventLoopPolicy (reprs, pickling, the tutorial's probe).
EventLoopPolicy.__module__ = "tideloop"


def _outside_asyncio_stacklevel() -> int:
    """The stacklevel of a warning issued by the caller of this function
    that points at the first frame outside asyncio (asyncio's C
    get_event_loop() has no frame of its own), as 3.13's policy does."""
    stacklevel = 2
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if not (module == "asyncio" or module.startswith("asyncio.")):
            break
        frame = frame.f_back  # type: ignore[assignment]
        stacklevel += 1
    return stacklevel
