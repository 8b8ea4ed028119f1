"""A gunicorn worker class that serves ASGI applications on tideloop.

    gunicorn -k tideloop.gunicorn.Worker app:app

The choice: ``Worker`` is uvicorn's gunicorn worker (``UvicornWorker``)
with the event loop set to tideloop, in the spirit of aiohttp's
``GunicornUVLoopWebWorker``.  uvicorn's worker serves any ASGI application
(Starlette, FastAPI, Django's ASGI handler, ... and aiohttp has its own
workers), and it already takes the loop as a setting: ``"loop":
"tideloop:new_event_loop"`` is the import string of a loop factory, which
uvicorn (0.36 and later) calls to make the worker's loop.  Everything else
(HTTP and websockets implementations, signals, graceful shutdown on
SIGTERM, max-requests, keep-alive, TLS options) is uvicorn's.

The base class comes from the ``uvicorn-worker`` package when it is
installed (where uvicorn's maintainers moved the worker), else from
``uvicorn.workers`` (deprecated by uvicorn in favour of uvicorn-worker but
still shipped; its DeprecationWarning is silenced here since the choice is
made for you).
Both need ``gunicorn``.
"""

import importlib as _importlib
import typing as _typing
import warnings as _warnings


def _base_worker() -> _typing.Any:
    # Imported by name: the base's type is uvicorn's business (and a type
    # checker of this package must not depend on uvicorn being installed).
    try:
        return _importlib.import_module("uvicorn_worker").UvicornWorker
    except ImportError:
        pass
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", DeprecationWarning)
            return _importlib.import_module("uvicorn.workers").UvicornWorker
    except ImportError as exc:
        raise ImportError(
            "tideloop.gunicorn.Worker is uvicorn's gunicorn worker running on "
            "tideloop: it needs the packages uvicorn (0.36 or later) and "
            "gunicorn (pip install uvicorn gunicorn; uvicorn-worker too if "
            "you like). Import failed with: %s: %s"
            % (type(exc).__name__, exc)) from exc


_UvicornWorker: _typing.Any = _base_worker()

__all__ = ("Worker",)


class Worker(_UvicornWorker):  # type: ignore[misc]
    """gunicorn worker (``-k tideloop.gunicorn.Worker``) running uvicorn's
    ASGI server on a tideloop event loop."""

    CONFIG_KWARGS: dict[str, object] = {"loop": "tideloop:new_event_loop",
                                        "http": "auto"}
