"""Helpers for the integration tests: real third-party libraries and real
servers (uvicorn, aiohttp, websockets, httpx, asyncpg + PostgreSQL,
redis.asyncio + redis-server, anyio, pytest-asyncio, gunicorn) on tideloop.

Run them with ``make integration`` (installs what they need) or::

    pip install -r tests/integration/requirements.txt
    python -m pytest tests/integration -m integration

Every test here carries the ``integration`` marker.  A missing package or
service SKIPS the test with the reason, except when
``TIDELOOP_REQUIRE_INTEGRATION=1`` is set (``make integration`` and CI set
it): then it FAILS.  Under a plain ``pytest tests`` (``make test``) they are
skipped without importing anything: they run only when asked for, by path
(``tests/integration``), by ``-m integration`` or by that variable.

Servers listen on 127.0.0.1, ::1 or Unix sockets in temporary directories
only.  Every child process is started in its own session with
PR_SET_PDEATHSIG, is killed (its whole process group) when the test ends
however it ends, and every wait has a timeout.
"""
import faulthandler
import os
import sys
import threading

import pytest

pytest.register_assert_rewrite("integsupport")

from integsupport import emergency_cleanup, temp_dir  # noqa: E402

# Per-test hang limit here (tests/conftest.py's is 90 s), overridable with
# @pytest.mark.watchdog(seconds).
DEFAULT_WATCHDOG = 90


@pytest.fixture(autouse=True)
def _watchdog(request):
    """Overrides tests/conftest.py's watchdog: on a hang, dump every thread's
    stack, kill the test's servers, remove its temporary directories, then
    end the run (exit status 1)."""
    marker = request.node.get_closest_marker("watchdog")
    seconds = marker.args[0] if marker else DEFAULT_WATCHDOG

    def expire():
        sys.stderr.write("\nintegration watchdog: %s hung for %ss: "
                         "killing its servers and ending the run\n"
                         % (request.node.nodeid, seconds))
        faulthandler.dump_traceback(all_threads=True)
        emergency_cleanup()
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@pytest.fixture
def tmp_dir():
    """A temporary directory removed at the end of the test (also on failure
    and on a hang); pytest's tmp_path keeps the last runs' directories."""
    with temp_dir() as path:
        yield path
