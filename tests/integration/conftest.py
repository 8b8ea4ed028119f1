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
import shutil
import tempfile

import pytest

pytest.register_assert_rewrite("integsupport")


@pytest.fixture
def tmp_dir():
    """A temporary directory removed at the end of the test (also on
    failure); pytest's tmp_path keeps the last few runs' directories."""
    path = tempfile.mkdtemp(prefix="tideloop-integ-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
