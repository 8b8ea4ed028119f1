"""gunicorn with tideloop's worker class (`-k tideloop.gunicorn.Worker`,
python/tideloop/gunicorn.py) serving asgi_app.py on a loopback port:
responses, the workers' loop, graceful shutdown on SIGTERM."""
import os
import signal
import sys
import threading
import time
import urllib.request

import pytest

from integsupport import (
    Server, child_env, free_port, http_json, need, pattern_bytes, run,
    run_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]

# The worker's base class: from uvicorn-worker (preferred) or, with that
# package hidden, from uvicorn.workers.
BASES = {
    "uvicorn_worker": "",
    "uvicorn.workers": "sys.modules['uvicorn_worker'] = None; ",
}


def _gunicorn_argv(base, port, *extra):
    code = ("import sys; %sfrom gunicorn.app.wsgiapp import run; "
            "sys.argv[0] = 'gunicorn'; sys.exit(run())" % BASES[base])
    return [sys.executable, "-c", code, "-k", "tideloop.gunicorn.Worker",
            "-b", "127.0.0.1:%d" % port, "--graceful-timeout", "15",
            "--timeout", "30", *extra, "asgi_app:app"]


def _ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _env(tmp_dir):
    # gunicorn 27 puts its control socket in $XDG_RUNTIME_DIR, else in
    # ~/.gunicorn: keep it in the test's directory.
    return child_env(XDG_RUNTIME_DIR=tmp_dir)


@pytest.mark.parametrize("base", sorted(BASES))
def test_gunicorn_worker(base, tmp_dir):
    need("gunicorn")
    need("uvicorn")
    httpx = need("httpx")
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    with Server(_gunicorn_argv(base, port, "-w", "2"), env=_env(tmp_dir),
                name="gunicorn") as server:
        server.wait_port(port)
        server.wait_log("Application startup complete", timeout=30)

        pids = set()
        for _ in range(20):
            info = http_json(url + "/loop")
            assert info["loop_module"] == "tideloop", info
            assert info["loop_class"] == "Loop", info
            assert info["lifespan_loop"] == "tideloop", info
            pids.add(info["pid"])
        for pid in pids:
            assert pid != server.proc.pid
            assert _ppid(pid) == server.proc.pid  # a worker of this arbiter

        body = pattern_bytes(2 * 1024 * 1024 + 1, seed=2)

        async def client():
            async with httpx.AsyncClient(base_url=url, timeout=20) as c:
                r = await c.post("/echo", content=body)
                assert r.content == body
                r = await c.get("/stream?n=20&size=10000")
                assert r.content == b"".join(bytes([i]) * 10000
                                             for i in range(20))
        run(client)

        # Graceful shutdown: a request in flight when the arbiter gets
        # SIGTERM is answered, then every process exits cleanly.
        result = {}

        def slow_request():
            try:
                with urllib.request.urlopen(url + "/sleep?s=1.5",
                                            timeout=20) as resp:
                    result["reply"] = (resp.status, resp.read())
            except Exception as exc:  # noqa: BLE001 - reported below
                result["error"] = exc
        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.5)  # the request has reached a worker
        started = time.monotonic()
        rc = server.stop(signal.SIGTERM, timeout=30)
        t.join(20)
        assert result.get("reply") == (200, b"slept"), (result, server.describe())
        assert rc == 0, server.describe()
        assert time.monotonic() - started < 10, server.describe()
        log = server.log
        assert "Handling signal: term" in log, server.describe()
        assert "Waiting for application shutdown" in log, server.describe()
        assert "Shutting down: Master" in log, server.describe()
        assert "Traceback" not in log, server.describe()
        for pid in pids:
            assert not os.path.exists("/proc/%d/stat" % pid) or \
                open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def _child(code):
    return run_process([sys.executable, "-W", "error::DeprecationWarning",
                        "-c", code], timeout=60)


def test_worker_class_and_import_errors():
    need("gunicorn")
    need("uvicorn")
    # The fallback base is uvicorn.workers, without a DeprecationWarning.
    p = _child("import sys; sys.modules['uvicorn_worker'] = None\n"
               "import tideloop.gunicorn as g, uvicorn.workers as w\n"
               "assert g.Worker.__mro__[1] is w.UvicornWorker\n"
               "print(g.Worker.CONFIG_KWARGS['loop'])")
    assert (p.returncode, p.stdout) == (0, "tideloop:new_event_loop\n"), p.stderr
    # Neither uvicorn-worker nor uvicorn: a clear ImportError.
    p = _child("import sys; sys.modules['uvicorn_worker'] = None\n"
               "sys.modules['uvicorn'] = None\n"
               "try:\n    import tideloop.gunicorn\n"
               "except ImportError as e:\n    print(e)\n")
    assert p.returncode == 0, p.stderr
    assert "tideloop.gunicorn.Worker" in p.stdout
    assert "pip install uvicorn gunicorn" in p.stdout


def test_gunicorn_reload(tmp_dir):
    """SIGHUP: gunicorn starts new workers (again on tideloop) and stops
    the old ones gracefully.  (Not tested: SIGQUIT, which uvicorn's worker
    leaves to gunicorn's SIGKILL after the graceful timeout, on stock
    asyncio as on tideloop.)"""
    need("gunicorn")
    need("uvicorn")
    port = free_port()
    url = "http://127.0.0.1:%d/loop" % port
    argv = _gunicorn_argv("uvicorn_worker", port, "-w", "1")
    with Server(argv, env=_env(tmp_dir), name="gunicorn") as server:
        server.wait_port(port)
        server.wait_log("Application startup complete", timeout=30)
        first = http_json(url)
        assert first["loop_module"] == "tideloop", first
        os.kill(server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:
            info = http_json(url)
            if info["pid"] != first["pid"]:
                break
            assert time.monotonic() < deadline, server.describe()
            time.sleep(0.1)
        assert info["loop_module"] == "tideloop", info
        assert _ppid(info["pid"]) == server.proc.pid
        server.wait_log("Handling signal: hup", timeout=10)
        rc = server.stop(signal.SIGTERM, timeout=30)
        assert rc == 0, server.describe()
        assert "Traceback" not in server.log, server.describe()
        assert "Shutting down: Master" in server.log, server.describe()
