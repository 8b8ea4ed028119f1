"""Frameworks' loop hooks with tideloop: asyncio.Runner(loop_factory=...),
anyio.run(..., backend_options={"loop_factory": ...}), anyio's pytest
plugin, and pytest-asyncio (in child pytest runs whose tests record the
loop they ran on)."""
import asyncio
import json
import os
import sys
import textwrap

import pytest

from integsupport import child_env, need, run_process, temp_dir

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]


def _loop_module():
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner: 3.11+")
def test_asyncio_runner_loop_factory():
    import contextvars
    import tideloop
    var = contextvars.ContextVar("var", default="unset")

    async def step(i):
        await asyncio.sleep(0)
        var.set("step %d" % i)
        return _loop_module(), id(asyncio.get_running_loop()), var.get()

    with asyncio.Runner(loop_factory=tideloop.new_event_loop) as runner:
        loop = runner.get_loop()
        assert type(loop) is tideloop.Loop
        results = [runner.run(step(i)) for i in range(3)]
        # The Runner's context is shared by its runs.
        assert runner.run(step(9)) == ("tideloop", id(loop), "step 9")
        assert var.get() == "unset"
    assert loop.is_closed()
    assert results == [("tideloop", id(loop), "step %d" % i) for i in range(3)]
    if sys.version_info >= (3, 12):
        assert asyncio.run(step(5), loop_factory=tideloop.new_event_loop)[::2] \
            == ("tideloop", "step 5")


def test_anyio_run_loop_factory(tmp_dir):
    anyio = need("anyio")
    import tideloop

    async def main():
        assert _loop_module() == "tideloop"
        out = {}
        # Task group + cancel scopes.
        results = []
        async with anyio.create_task_group() as tg:
            for i in range(5):
                async def job(i=i):
                    await anyio.sleep(0.01 * (5 - i))
                    results.append(i)
                tg.start_soon(job)
        out["order"] = results
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(10)
        out["cancelled"] = scope.cancelled_caught
        # Worker thread.
        out["thread"] = await anyio.to_thread.run_sync(lambda: sum(range(1000)))
        # TCP echo with anyio's streams (over tideloop's transports).
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def serve(stream):
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk.upper())

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"hello anyio")
                got = b""
                while len(got) < 11:
                    got += await client.receive()
                out["echo"] = got
            tg.cancel_scope.cancel()
        await listener.aclose()
        # Memory object streams.
        send, receive = anyio.create_memory_object_stream(10)
        async with send, receive:
            for i in range(3):
                await send.send(i)
            out["stream"] = [await receive.receive() for _ in range(3)]
        # A subprocess.
        proc = await anyio.run_process(
            [sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"],
            input=b"olleh")
        out["proc"] = (proc.returncode, proc.stdout)
        # A file.
        path = anyio.Path(tmp_dir) / "f.txt"
        await path.write_text("tide")
        out["file"] = await path.read_text()
        out["loop"] = _loop_module()
        return out

    out = anyio.run(main, backend="asyncio",
                    backend_options={"loop_factory": tideloop.new_event_loop})
    assert out == {"order": [4, 3, 2, 1, 0], "cancelled": True,
                   "thread": 499500, "echo": b"HELLO ANYIO",
                   "stream": [0, 1, 2], "proc": (0, b"hello\n"),
                   "file": "tide", "loop": "tideloop"}


RECORDER = '''
import asyncio, json, os

def record(name, **extra):
    loop = asyncio.get_running_loop()
    with open(os.environ["LOOP_RECORD"], "a") as f:
        f.write(json.dumps(dict(test=name, module=type(loop).__module__,
                                loop=id(loop), **extra)) + "\\n")
'''

PYTEST_ASYNCIO_TESTS = '''
import asyncio
import pytest
import pytest_asyncio
from recorder import record


@pytest_asyncio.fixture
async def fixture_loop():
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.asyncio
async def test_function(fixture_loop):
    record("test_function", fixture=fixture_loop)


@pytest.mark.asyncio(loop_scope="module")
async def test_module_a():
    record("test_module_a")


@pytest.mark.asyncio(loop_scope="module")
async def test_module_b():
    await asyncio.sleep(0.01)
    record("test_module_b")


@pytest.mark.asyncio
async def test_network():
    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    data = await reader.read(100)
    writer.close()
    server.close()
    await server.wait_closed()
    record("test_network", data=data.decode())
'''

HOOK_CONFTEST = '''
import asyncio
import tideloop

def pytest_asyncio_loop_factories(config, item):
    return {FACTORIES}
'''

FIXTURE_CONFTEST = '''
import pytest
import tideloop

@pytest.fixture(scope="session")
def event_loop_policy():
    return tideloop.EventLoopPolicy()
'''


def _run_child_pytest(conftest, *args):
    with temp_dir("tideloop-pytest-asyncio-") as d:
        files = {"recorder.py": RECORDER, "conftest.py": conftest,
                 "test_loops.py": PYTEST_ASYNCIO_TESTS,
                 "pytest.ini": "[pytest]\nasyncio_mode = strict\n"
                               "asyncio_default_fixture_loop_scope = function\n"}
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(textwrap.dedent(text))
        record = os.path.join(d, "record.jsonl")
        env = child_env(LOOP_RECORD=record)
        env.pop("PYTEST_ADDOPTS", None)
        env["PYTHONPATH"] = d
        p = run_process([sys.executable, "-m", "pytest", "-p",
                         "no:cacheprovider", "-v", *args], cwd=d, env=env)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        with open(record) as f:
            rows = [json.loads(line) for line in f]
        return rows, out


def _check_rows(rows, module):
    by_test = {r["test"]: r for r in rows}
    assert sorted(by_test) == ["test_function", "test_module_a",
                               "test_module_b", "test_network"], rows
    assert {r["module"] for r in rows} == {module}, rows
    assert by_test["test_function"]["fixture"] == module
    assert by_test["test_network"]["data"] == "ping"
    # loop_scope="module": both tests on one loop, other tests on their own.
    assert by_test["test_module_a"]["loop"] == by_test["test_module_b"]["loop"]


def test_pytest_asyncio_loop_factories_hook():
    need("pytest_asyncio")
    conftest = HOOK_CONFTEST.replace(
        "{FACTORIES}", '{"tideloop": tideloop.new_event_loop}')
    rows, out = _run_child_pytest(conftest)
    assert len(rows) == 4, out
    _check_rows(rows, "tideloop")
    assert "4 passed" in out


def test_pytest_asyncio_two_factories():
    """With tideloop and stock asyncio in the mapping, every test runs on
    each (ids [tideloop] and [asyncio])."""
    need("pytest_asyncio")
    conftest = HOOK_CONFTEST.replace(
        "{FACTORIES}", '{"tideloop": tideloop.new_event_loop, '
                       '"asyncio": asyncio.new_event_loop}')
    rows, out = _run_child_pytest(conftest)
    assert "8 passed" in out, out
    assert "test_function[tideloop] PASSED" in out, out
    assert "test_function[asyncio] PASSED" in out, out
    _check_rows([r for r in rows if r["module"] == "tideloop"], "tideloop")
    stock = [r for r in rows if r["module"] != "tideloop"]
    assert len(stock) == 4 and {r["module"] for r in stock} == \
        {"asyncio.unix_events"}, rows


def test_pytest_asyncio_event_loop_policy_fixture():
    """The recipe for pytest-asyncio before the hook: override the
    event_loop_policy fixture (deprecated in 1.5, still honoured)."""
    need("pytest_asyncio")
    rows, out = _run_child_pytest(FIXTURE_CONFTEST)
    _check_rows(rows, "tideloop")
    assert "4 passed" in out


def test_anyio_pytest_plugin():
    """anyio's own pytest plugin: the anyio_backend fixture can name the
    loop factory."""
    need("anyio")
    conftest = '''
import pytest
import tideloop

@pytest.fixture
def anyio_backend():
    return ("asyncio", {"loop_factory": tideloop.new_event_loop})
'''
    tests = '''
import asyncio
import anyio
import pytest
from recorder import record

@pytest.mark.anyio
async def test_one():
    await anyio.sleep(0)
    record("test_one")

@pytest.mark.anyio
async def test_two():
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep, 0.01)
    record("test_two")
'''
    with temp_dir("tideloop-anyio-pytest-") as d:
        for name, text in {"recorder.py": RECORDER, "conftest.py": conftest,
                           "test_anyio_loops.py": tests}.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        record = os.path.join(d, "record.jsonl")
        env = child_env(LOOP_RECORD=record, PYTHONPATH=d)
        p = run_process([sys.executable, "-m", "pytest", "-p",
                         "no:cacheprovider", "-p", "no:asyncio", "-q"],
                        cwd=d, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        with open(record) as f:
            rows = [json.loads(line) for line in f]
    assert sorted(r["test"] for r in rows) == ["test_one", "test_two"]
    assert {r["module"] for r in rows} == {"tideloop"}, rows
