"""tideloop's entry points: Loop, new_event_loop(), EventLoopPolicy,
install(), run(), loop_factory with asyncio.run / asyncio.Runner, and
``python -m tideloop script.py``."""
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import warnings

import pytest

from support import (PY, attempt, child_env, describe_child, exc_event,
                     import_tideloop, is_tideloop_loop, normalize, run_child)

def stock_default_policy():
    """asyncio.DefaultEventLoopPolicy (on 3.14+ the name warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.DefaultEventLoopPolicy


@pytest.mark.tideloop_only
def test_public_api_shape():
    tideloop = import_tideloop()
    assert issubclass(tideloop.Loop, asyncio.AbstractEventLoop)
    assert issubclass(tideloop.EventLoopPolicy, stock_default_policy())
    assert repr(tideloop.EventLoopPolicy) == \
        "<class 'tideloop.EventLoopPolicy'>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = tideloop.EventLoopPolicy()
    for factory in (tideloop.new_event_loop, tideloop.Loop,
                    policy.new_event_loop):
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


# --------------------------------------------------------------------------
# Warnings and asyncio's policy deprecation (3.14+)
# --------------------------------------------------------------------------

WARNING_FREE = '''\
import asyncio, sys, tideloop

async def main():
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__.split(".")[0]

print("run", tideloop.run(main()))
if sys.version_info >= (3, 11):
    with asyncio.Runner(loop_factory=tideloop.new_event_loop) as runner:
        print("Runner", runner.run(main()))
if sys.version_info >= (3, 12):
    print("asyncio.run", asyncio.run(main(),
                                     loop_factory=tideloop.new_event_loop))
'''


@pytest.mark.tideloop_only
def test_entry_points_are_warning_free(tmp_path):
    """`import tideloop`, tideloop.run(), asyncio.run(loop_factory=),
    asyncio.Runner(loop_factory=) and `python -m tideloop` (script, -m and
    -c) under -W error, on every Python version."""
    import_tideloop()
    (tmp_path / "prog.py").write_text(WARNING_FREE)
    plain = ("import asyncio\n"
             "async def main():\n"
             "    print(type(asyncio.get_running_loop()).__module__"
             ".split('.')[0])\n"
             "asyncio.run(main())\n")
    (tmp_path / "plain.py").write_text(plain)
    expected_prog = ["run tideloop"]
    if sys.version_info >= (3, 11):
        expected_prog.append("Runner tideloop")
    if sys.version_info >= (3, 12):
        expected_prog.append("asyncio.run tideloop")
    cases = [
        (["-c", "import tideloop"], []),
        (["prog.py"], expected_prog),
        (["-m", "tideloop", "plain.py"], ["tideloop"]),
        (["-m", "tideloop", "-m", "plain"], ["tideloop"]),
        (["-m", "tideloop", "-c", plain], ["tideloop"]),
    ]
    for args, expected in cases:
        for flags in (["-W", "error"], ["-X", "dev", "-W", "error"]):
            proc = subprocess.run(
                [sys.executable, *flags, *args], cwd=str(tmp_path),
                env=child_env("tideloop"), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                timeout=60)
            assert (proc.returncode, proc.stdout.splitlines(),
                    proc.stderr) == (0, expected, ""), (flags, args, proc)


def caught_warnings(func):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func()
    return result, [(w.category, w.filename, str(w.message)) for w in caught]


@pytest.mark.tideloop_only
def test_policy_api_deprecation():
    """On 3.14 and 3.15 install() and EventLoopPolicy() still work and say
    once, in tideloop's words and at the caller's line, that they are
    deprecated (asyncio's own setter does not warn a second time); before
    3.14 they are silent."""
    tideloop = import_tideloop()
    try:
        _, installed = caught_warnings(tideloop.install)
        assert isinstance(asyncio.events._get_event_loop_policy()
                          if PY >= (3, 14) else
                          asyncio.get_event_loop_policy(),
                          tideloop.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        loop.close()
        assert isinstance(loop, tideloop.Loop)
        policy, created = caught_warnings(tideloop.EventLoopPolicy)
        assert isinstance(policy, tideloop.EventLoopPolicy)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(None)
    if PY < (3, 14):
        assert installed == [] and created == []
        return
    for what, caught in (("tideloop.install()", installed),
                         ("tideloop.EventLoopPolicy", created)):
        assert len(caught) == 1, caught
        category, filename, message = caught[0]
        assert category is DeprecationWarning
        assert filename == __file__, "not attributed to the caller"
        assert message.startswith(what + " is deprecated: it uses asyncio's "
                                  "event loop policies, which Python 3.14 "
                                  "deprecates and 3.16 removes; use "), message
        assert "loop_factory=tideloop.new_event_loop" in message
        assert "python -m tideloop" in message


POLICY_SEMANTICS = '''\
import asyncio, sys, threading, warnings
warnings.simplefilter("always")
log = []
warnings.showwarning = lambda msg, cat, filename, *a, **k: log.append(
    (cat.__name__, str(msg), filename == "<string>"))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    install_policy()
    policy = asyncio.get_event_loop_policy()

def get():
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError as exc:
        return "RuntimeError: %s" % exc
    return "loop %s" % ("ours" if kind_ok(loop) else type(loop))

first = get()
out("main thread, no loop:", first, log)
del log[:]
loop = asyncio.get_event_loop()
out("again: same loop", loop is asyncio.get_event_loop(), log)
res = []
t = threading.Thread(target=lambda: res.append(get()))
t.start(); t.join()
out("other thread:", res[0])
asyncio.set_event_loop(None)
loop.close()
out("after set_event_loop(None):", get())
other = new_loop()
asyncio.set_event_loop(other)
out("after set_event_loop(loop):", asyncio.get_event_loop() is other)
out("run_until_complete:", other.run_until_complete(asyncio.sleep(0, "ok")))
asyncio.set_event_loop(None)
other.close()
'''


@pytest.mark.tideloop_only
def test_policy_keeps_313_get_event_loop():
    """tideloop's policy keeps 3.13's get_event_loop() on every version:
    in the main thread with no loop set it creates and sets one (with
    3.12/3.13's DeprecationWarning, at the caller's line); in other threads,
    or after set_event_loop(None), it raises.  The expected trace is
    checked against stock asyncio's policy wherever that still behaves so
    (before 3.14)."""
    import_tideloop()
    warned = ([("DeprecationWarning", "There is no current event loop",
                True)] if PY >= (3, 12) else [])
    expected = [
        "main thread, no loop: loop ours %r" % (warned,),
        "again: same loop True []",
        "other thread: RuntimeError: There is no current event loop in "
        "thread 'Thread-1 (<lambda>)'." if PY >= (3, 10) else
        "other thread: RuntimeError: There is no current event loop in "
        "thread 'Thread-1'.",
        "after set_event_loop(None): RuntimeError: There is no current "
        "event loop in thread 'MainThread'.",
        "after set_event_loop(loop): True",
        "run_until_complete: ok",
    ]
    kinds = ["tideloop"] + (["asyncio"] if PY < (3, 14) else [])
    for kind in kinds:
        proc = run_child(kind, POLICY_SEMANTICS)
        assert proc.returncode == 0, describe_child(proc)
        assert proc.stdout.splitlines() == expected, (kind,
                                                      describe_child(proc))


LOOP_FACTORY_HOOKS = '''\
import asyncio, sys, tideloop._policy
tideloop._policy.install_loop_factory_hooks()

async def main():
    return kind_ok(asyncio.get_running_loop())

out("asyncio.run", asyncio.run(main()))
if sys.version_info >= (3, 11):
    with asyncio.Runner() as runner:
        out("Runner", runner.run(main()))
loop = asyncio.new_event_loop()
out("new_event_loop", kind_ok(loop))
loop.close()
'''


@pytest.mark.tideloop_only
def test_loop_factory_hooks_without_policy():
    """What `python -m tideloop` does on 3.16+, where asyncio has no
    policies (tideloop._policy.install_for_main): asyncio.run(),
    asyncio.Runner() and asyncio.new_event_loop() give tideloop loops,
    without a policy and without a warning.  Checked on this Python."""
    import_tideloop()
    proc = run_child("tideloop", LOOP_FACTORY_HOOKS,
                     python_args=("-W", "error"))
    assert proc.returncode == 0 and proc.stderr == "", describe_child(proc)
    expected = ["asyncio.run True"]
    if PY >= (3, 11):
        expected.append("Runner True")
    expected.append("new_event_loop True")
    assert proc.stdout.splitlines() == expected, describe_child(proc)


@pytest.mark.tideloop_only
def test_policy_api_on_316_names_the_replacements():
    """From 3.16 (asyncio without policies) EventLoopPolicy() and
    install() raise RuntimeError naming what to use instead.  The 3.16
    variants, called directly on this Python."""
    import_tideloop()
    from tideloop import _policy
    for func, what in ((_policy._RemovedEventLoopPolicy,
                        "tideloop.EventLoopPolicy"),
                       (_policy._removed_install, "tideloop.install()")):
        with pytest.raises(RuntimeError) as info:
            func()
        msg = str(info.value)
        assert msg.startswith(what), msg
        assert "removed in 3.16" in msg
        for alternative in ("tideloop.run(main())",
                            "loop_factory=tideloop.new_event_loop",
                            "python -m tideloop"):
            assert alternative in msg, msg


# --------------------------------------------------------------------------
# `python -m tideloop ...` is a stand-in for `python ...`
# --------------------------------------------------------------------------

STANDIN_SCRIPT = '''\
import asyncio, json, os, sys
import helper_module

g = {k: (type(v).__name__ if k in ("__builtins__", "__loader__") else v)
     for k, v in globals().items()
     if k.startswith("__") and k not in ("__doc__",)}
print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "globals": g,
    "main_is_module": sys.modules["__main__"] is sys.modules[__name__],
    "excepthook": sys.excepthook is sys.__excepthook__,
}, sort_keys=True, default=repr))

def fail(how):
    if how == "raise":
        raise ValueError("script failed")
    if how == "chain":
        try:
            {}["key"]
        except KeyError as exc:
            raise RuntimeError("while handling") from exc
    if how == "exit":
        sys.exit("exit message")
    if how == "code":
        sys.exit(3)
    if how == "interrupt":
        raise KeyboardInterrupt
    if how == "hook":
        import traceback
        sys.excepthook = lambda t, v, tb: print(
            "user hook:", [f.name for f in traceback.extract_tb(tb)])
        raise ValueError("to the hook")

async def main(how):
    await asyncio.sleep(0)
    fail(how)

if len(sys.argv) > 1:
    how = sys.argv[1]
    if how in ("raise", "chain"):
        # Through the loop: the frames of asyncio.run() are the same.
        asyncio.run(main(how))
    else:
        fail(how)
'''

MAIN_DIR = '''\
import sys
print("dir main", __name__, __file__, sys.argv, sys.path[0])
raise ValueError("from a directory")
'''


@pytest.fixture
def standin_dir(tmp_path):
    (tmp_path / "script.py").write_text(STANDIN_SCRIPT)
    (tmp_path / "helper_module.py").write_text("VALUE = 1\n")
    (tmp_path / "syntax_error.py").write_text("x = 1\ndef (:\n")
    (tmp_path / "pkgdir").mkdir()
    (tmp_path / "pkgdir" / "__main__.py").write_text(MAIN_DIR)
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "sub").mkdir()
    return tmp_path


def addresses(text):
    return re.sub(r"0x[0-9a-f]+", "0xADDR", text)


def run_python(args, cwd, stdin=None):
    return subprocess.run([sys.executable, *args], cwd=str(cwd),
                          env=child_env("tideloop"), input=stdin or "",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60)


STANDIN_CASES = {
    "script": ["script.py", "a", "b"],
    "script in ./": ["./script.py"],
    "script via ..": ["../" + "script.py"],
    "script raises": ["script.py", "raise"],
    "chained exception": ["script.py", "chain"],
    "sys.exit(message)": ["script.py", "exit"],
    "sys.exit(3)": ["script.py", "code"],
    "KeyboardInterrupt": ["script.py", "interrupt"],
    "program's own excepthook": ["script.py", "hook"],
    "missing script": ["missing.py"],
    "missing script ./": ["./missing.py", "arg"],
    "syntax error": ["syntax_error.py"],
    "directory": ["pkgdir", "x"],
    "directory without __main__": ["emptydir"],
    "-m module": ["-m", "script", "a"],
    "-m module raises": ["-m", "script", "raise"],
    "-m missing module": ["-m", "no_such_module_here"],
    "-m missing submodule": ["-m", "json.no_such_submodule"],
    "-m package without __main__": ["-m", "email"],
    "-c code": ["-c", "import sys; print(sys.argv, repr(sys.path[0]), "
                "sorted(globals()))", "x", "y"],
    "-c raises": ["-c", "import script; script.fail('chain')"],
    "- (stdin)": ["-", "p"],
}


@pytest.mark.tideloop_only
@pytest.mark.parametrize("case", sorted(STANDIN_CASES))
def test_python_m_tideloop_is_python(case, standin_dir):
    """`python -m tideloop ARGS` prints, to stdout and stderr, exactly what
    `python ARGS` prints and exits with the same status: sys.argv,
    sys.path[0], the __main__ globals (__file__ absolute), tracebacks
    without launcher frames, one-line errors for a missing script (status
    2) or module (status 1), -c and stdin programs."""
    import_tideloop()
    args = STANDIN_CASES[case]
    cwd = standin_dir / "sub" if ".." in args[0] else standin_dir
    stdin = ("import sys\nprint('stdin', sys.argv, repr(sys.path[0]), "
             "__name__)\n1/0\n" if args[0] == "-" else None)
    ref = run_python(args, cwd, stdin)
    got = run_python(["-m", "tideloop", *args], cwd, stdin)
    assert (got.returncode, addresses(got.stdout), got.stderr) == (
        ref.returncode, addresses(ref.stdout), ref.stderr), (
        "python %s:\n%s\n\npython -m tideloop %s:\n%s" % (
            args, describe_child(ref), args, describe_child(got)))
    # Not a comparison that cannot fail: the cases do fail on python.
    if case in ("missing script", "missing script ./"):
        assert ref.returncode == 2 and ref.stderr.count("\n") == 1
        assert "can't open file '%s/" % standin_dir in ref.stderr
    if case == "-m missing module":
        assert ref.returncode == 1 and ref.stderr.count("\n") == 1
    if case == "script raises":
        assert ref.stderr.startswith("Traceback (most recent call last):\n"
                                     '  File "%s/script.py"' % standin_dir)
    if case == "KeyboardInterrupt":
        assert ref.returncode == -signal.SIGINT
    if case == "script":
        info = json.loads(got.stdout)
        assert info["globals"]["__file__"] == str(standin_dir / "script.py")


@pytest.mark.tideloop_only
def test_python_m_tideloop_usage_errors(standin_dir):
    import_tideloop()
    for args in (["-m"], ["-c"], ["--bogus"]):
        got = run_python(["-m", "tideloop", *args], standin_dir)
        assert got.returncode == 2, describe_child(got)
        assert "usage: python -m tideloop" in got.stderr
    got = run_python(["-m", "tideloop", "-h"], standin_dir)
    assert got.returncode == 0 and "usage:" in got.stderr
