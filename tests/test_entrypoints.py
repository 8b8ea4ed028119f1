"""tideloop's entry points: Loop, new_event_loop(), EventLoopPolicy,
install(), run(), loop_factory with asyncio.run / asyncio.Runner, and
``python -m tideloop script.py``."""
import asyncio
import json
import os
import subprocess
import sys
import warnings

import pytest

from support import (PY, attempt, child_env, exc_event, import_tideloop,
                     is_tideloop_loop, normalize)

@pytest.mark.tideloop_only
def test_public_api_shape():
    tideloop = import_tideloop()
    assert issubclass(tideloop.Loop, asyncio.AbstractEventLoop)
    assert issubclass(tideloop.EventLoopPolicy,
                      asyncio.DefaultEventLoopPolicy)
    for factory in (tideloop.new_event_loop, tideloop.Loop,
                    tideloop.EventLoopPolicy().new_event_loop):
        loop = factory()
        try:
            assert isinstance(loop, tideloop.Loop), factory
            assert isinstance(loop, asyncio.AbstractEventLoop)
            assert not loop.is_running() and not loop.is_closed()
        finally:
            loop.close()
        assert loop.is_closed()


@pytest.mark.tideloop_only
def test_loop_is_subclassable():
    tideloop = import_tideloop()

    class MyLoop(tideloop.Loop):
        def call_soon(self, callback, *args, context=None):
            self.calls = getattr(self, "calls", 0) + 1
            return super().call_soon(callback, *args, context=context)

    loop = MyLoop()
    try:
        loop.custom_attribute = "set"
        assert loop.custom_attribute == "set"
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
        assert loop.calls >= 1
    finally:
        loop.close()


@pytest.mark.tideloop_only
def test_install_sets_the_policy():
    tideloop = import_tideloop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tideloop.install()
        policy = asyncio.get_event_loop_policy()
        assert isinstance(policy, tideloop.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, tideloop.Loop)
        finally:
            loop.close()

        async def main():
            return asyncio.get_running_loop()

        # asyncio.run() picks the policy's loop.
        assert isinstance(asyncio.run(main()), tideloop.Loop)
        asyncio.set_event_loop_policy(None)


def runner_for(kind):
    if kind == "asyncio":
        return asyncio.run
    return import_tideloop().run


def run_semantics_trace(run):
    trace = []
    gen_finalized = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            gen_finalized.append(True)

    async def leftover():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            trace.append("leftover task cancelled")
            raise

    holder = {}

    async def main(x):
        loop = asyncio.get_running_loop()
        holder["loop"] = loop
        trace.append(("debug", loop.get_debug()))
        loop.create_task(leftover())
        g = agen()
        holder["gen"] = g
        await g.__anext__()
        trace.append(("executor", await loop.run_in_executor(None, abs, -3)))
        await asyncio.sleep(0)
        return x * 2

    trace.append(("result", run(main(21))))
    loop = holder["loop"]
    trace.append(("closed after", loop.is_closed()))
    trace.append(("asyncgen finalized", gen_finalized == [True]))
    trace.append(("debug run", run(main(1), debug=True)))
    trace.append(("non-debug run", run(main(1), debug=False)))

    async def boom():
        raise ValueError("from main")

    try:
        run(boom())
    except ValueError as exc:
        trace.append(("raised",) + exc_event(exc))
    attempt(trace, "run(non-coroutine)", run, 1)

    async def nested():
        coro = asyncio.sleep(0)
        try:
            run(coro)
        except RuntimeError as exc:
            trace.append(("nested raised",) + exc_event(exc))
        finally:
            coro.close()

    run(nested())
    return trace, holder["loop"]


def test_run_semantics(kind):
    """tideloop.run() behaves as asyncio.run() and uses a tideloop.Loop."""
    reference, ref_loop = run_semantics_trace(asyncio.run)
    assert not is_tideloop_loop(ref_loop)
    trace, loop = run_semantics_trace(runner_for(kind))
    assert normalize(trace) == normalize(reference)
    assert reference[0] == ("debug", False)
    if kind == "tideloop":
        assert isinstance(loop, import_tideloop().Loop)


@pytest.mark.tideloop_only
@pytest.mark.skipif(PY < (3, 12), reason="asyncio.run(loop_factory=) 3.12+")
def test_run_with_loop_factory_argument():
    tideloop = import_tideloop()

    async def main():
        return asyncio.get_running_loop()

    loop = asyncio.run(main(), loop_factory=tideloop.new_event_loop)
    assert isinstance(loop, tideloop.Loop)
    assert loop.is_closed()
    trace, loop = run_semantics_trace(
        lambda coro, debug=None: asyncio.run(
            coro, debug=debug, loop_factory=tideloop.new_event_loop))
    reference, _ = run_semantics_trace(asyncio.run)
    assert normalize(trace) == normalize(reference)
    assert isinstance(loop, tideloop.Loop)


@pytest.mark.tideloop_only
@pytest.mark.skipif(PY < (3, 11), reason="asyncio.Runner is 3.11+")
def test_runner_with_loop_factory():
    tideloop = import_tideloop()

    async def current():
        await asyncio.sleep(0.001)
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=tideloop.new_event_loop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, tideloop.Loop)
        assert runner.run(current()) is loop
        assert runner.run(current()) is loop
    assert loop.is_closed()
    with asyncio.Runner(loop_factory=tideloop.new_event_loop,
                        debug=True) as runner:
        assert runner.get_loop().get_debug() is True


SCRIPT = '''\
import asyncio, json, os, sys
import helper_module

async def main():
    loop = asyncio.get_running_loop()
    return type(loop).__module__.split(".")[0]

kind = asyncio.run(main())
fresh = asyncio.new_event_loop()
policy_kind = type(fresh).__module__.split(".")[0]
fresh.close()
print(json.dumps({
    "argv": sys.argv,
    "name": __name__,
    "file": os.path.basename(__file__),
    "path0_is_script_dir": os.path.abspath(sys.path[0]) ==
        os.path.dirname(os.path.abspath(__file__)),
    "helper": helper_module.VALUE,
    "main_module_file": os.path.basename(
        getattr(sys.modules["__main__"], "__file__", "") or ""),
    "kind": kind,
    "policy_kind": policy_kind,
}), flush=True)
if sys.argv[-1] == "raise":
    raise ValueError("script failed")
sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0)
'''


@pytest.fixture
def script_dir(tmp_path):
    (tmp_path / "script.py").write_text(SCRIPT)
    (tmp_path / "helper_module.py").write_text("VALUE = 'helper imported'\n")
    return tmp_path


def run_script(kind, script_dir, *args):
    if kind == "tideloop":
        import_tideloop()
        cmd = [sys.executable, "-m", "tideloop", "script.py", *args]
    else:
        cmd = [sys.executable, "script.py", *args]
    return subprocess.run(cmd, cwd=str(script_dir), env=child_env(kind),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def test_python_m_tideloop_runs_script(kind, script_dir):
    """``python -m tideloop script.py a 3`` behaves as ``python script.py a
    3`` with the tideloop policy installed."""
    ref = run_script("asyncio", script_dir, "a", "3")
    got = run_script(kind, script_dir, "a", "3")
    assert ref.returncode == 3, ref.stderr
    assert got.returncode == 3, got.stderr
    ref_info = json.loads(ref.stdout)
    info = json.loads(got.stdout)
    assert info["kind"] == kind
    assert info["policy_kind"] == kind
    for key in ("kind", "policy_kind"):
        del ref_info[key], info[key]
    assert info == ref_info
    assert info["argv"] == ["script.py", "a", "3"]
    assert info["name"] == "__main__"


def test_python_m_tideloop_script_exception(kind, script_dir):
    ref = run_script("asyncio", script_dir, "raise")
    got = run_script(kind, script_dir, "raise")
    assert ref.returncode == 1
    assert got.returncode == ref.returncode, got.stderr
    assert got.stderr.rstrip().splitlines()[-1] == \
        "ValueError: script failed", got.stderr


@pytest.mark.tideloop_only
def test_python_m_tideloop_without_script():
    import_tideloop()
    proc = subprocess.run([sys.executable, "-m", "tideloop"],
                          env=child_env("tideloop"), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.strip(), "no usage message"
