"""Signals, each in a child interpreter (so pytest's own handlers are left
alone); stock asyncio's output is the reference."""
import os
import signal
import sys
import time

import pytest

from support import PY, ChildLines, spawn_child


def test_signal_handler_runs_with_args(compare_child):
    compare_child('''
import signal, threading, time
loop = new_loop()
out("kind ok", kind_ok(loop))
def handler(*args):
    out("handler", args, "running", loop.is_running())
    loop.stop()
out("add", loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1))
loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
guard = loop.call_later(5, lambda: (out("TIMEOUT"), loop.stop()))
loop.run_forever()
# A signal arriving while the loop is blocked in its poll with no timer.
guard.cancel()
def kill_later():
    time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGUSR1)
threading.Thread(target=kill_later).start()
t0 = time.monotonic()
loop.run_forever()
out("woken promptly", time.monotonic() - t0 < 1.0)
# Replacing the handler.
loop.add_signal_handler(signal.SIGUSR1, lambda: (out("second"), loop.stop()))
os.kill(os.getpid(), signal.SIGUSR1)
loop.run_forever()
out("remove", loop.remove_signal_handler(signal.SIGUSR1))
out("remove again", loop.remove_signal_handler(signal.SIGUSR1))
out("remove never added", loop.remove_signal_handler(signal.SIGUSR2))
out("disposition restored", signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)
loop.add_signal_handler(signal.SIGINT, print)
loop.remove_signal_handler(signal.SIGINT)
out("SIGINT restored", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
loop.close()
out("done")
''', min_lines=8)


def test_signal_handler_errors(compare_child):
    compare_child('''
import signal
loop = new_loop()
def attempt(label, fn, *args):
    try:
        out(label, "->", repr(fn(*args)))
    except BaseException as exc:
        out(label, "raised", type(exc).__name__, str(exc))
async def coro_fn():
    pass
def cb():
    pass
for sig in ("x", None, 0, 1000, -1, 65):
    attempt("add(%r)" % (sig,), loop.add_signal_handler, sig, cb)
attempt("add(SIGKILL)", loop.add_signal_handler, signal.SIGKILL, cb)
attempt("add(SIGSTOP)", loop.add_signal_handler, signal.SIGSTOP, cb)
attempt("add(coroutine function)", loop.add_signal_handler, signal.SIGUSR1, coro_fn)
coro = coro_fn()
attempt("add(coroutine object)", loop.add_signal_handler, signal.SIGUSR1, coro)
coro.close()
attempt("add(non-callable)", loop.add_signal_handler, signal.SIGUSR2, 42)
attempt("remove(SIGUSR2)", loop.remove_signal_handler, signal.SIGUSR2)
for sig in ("x", 0, 1000):
    attempt("remove(%r)" % (sig,), loop.remove_signal_handler, sig)
attempt("remove(SIGKILL)", loop.remove_signal_handler, signal.SIGKILL)
loop.close()
attempt("add on closed loop", loop.add_signal_handler, signal.SIGUSR1, cb)
attempt("remove on closed loop", loop.remove_signal_handler, signal.SIGUSR1)
''', min_lines=10)


def test_signal_handler_from_non_main_thread(compare_child):
    compare_child('''
import signal, threading
loop = new_loop()
result = []
def in_thread():
    try:
        loop.add_signal_handler(signal.SIGUSR1, print)
        result.append("added")
    except BaseException as exc:
        result.append((type(exc).__name__, str(exc)))
t = threading.Thread(target=in_thread)
t.start(); t.join()
out("from thread", result)
# A loop created and used entirely in another thread.
def other_loop():
    lp = new_loop()
    try:
        lp.add_signal_handler(signal.SIGUSR1, print)
        result.append("added")
    except BaseException as exc:
        result.append((type(exc).__name__, str(exc)))
    finally:
        lp.close()
t = threading.Thread(target=other_loop)
t.start(); t.join()
out("loop of another thread", result[-1])
loop.close()
''')


def test_exception_in_signal_handler(compare_child):
    compare_child('''
import signal
loop = new_loop()
def handler():
    loop.call_soon(loop.stop)
    raise ValueError("in signal handler")
loop.set_exception_handler(lambda lp, ctx: out(
    "handler:", ctx["message"], repr(ctx.get("exception"))))
loop.add_signal_handler(signal.SIGUSR1, handler)
os.kill(os.getpid(), signal.SIGUSR1)
guard = loop.call_later(5, loop.stop)
loop.run_forever()
guard.cancel()
out("loop still usable", loop.run_until_complete(asyncio.sleep(0, "yes")))
loop.close()
''')


# The programs below block on nothing or on timers an hour away: only the
# SIGINT can end them, so "interrupted while blocked" needs no time limit
# tighter than this bound on a stuck child (no margin on the machine's
# speed; a loaded machine took more than 2 s to exit a child here).
INTERRUPT_TIMEOUT = 60.0


def interrupt_child(kind, code, ready="ready", timeout=INTERRUPT_TIMEOUT):
    """Start code in a child, wait for the `ready` line, send SIGINT and wait
    up to `timeout` seconds; returns (rc, lines, stderr, seconds, timed_out)."""
    proc = spawn_child(kind, code)
    reader = ChildLines(proc)
    try:
        assert reader.wait_for(ready, 15), (
            "child never became ready: %r\n%s" % (
                reader.lines, proc.stderr.read() if proc.poll() is not None
                else "(still running)"))
        time.sleep(0.1)  # let it block in its poll
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except Exception:  # noqa: BLE001 - TimeoutExpired
            pass
        seconds = time.monotonic() - t0
        rc, lines, err, timed_out = reader.finish(timeout=0.01)
        return rc, lines, err, seconds, timed_out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("blocked_on", ["nothing", "far-timer"])
def test_ctrl_c_interrupts_run_forever(kind, blocked_on):
    code = '''
loop = new_loop()
%s
loop.call_soon(out, "ready")
loop.run_forever()
out("NOT REACHED")
''' % ("loop.call_later(3600, print)" if blocked_on == "far-timer"
       else "")
    ref = interrupt_child("asyncio", code)
    rc, lines, err, seconds, timed_out = interrupt_child(kind, code)
    assert not timed_out, (
        "SIGINT did not end run_forever() (%s)" % blocked_on)
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert "Traceback (most recent call last)" in err
    assert (rc, lines) == (ref[0], ref[1]), (rc, lines, ref[:2])


def test_loop_usable_after_ctrl_c_in_run_until_complete(kind):
    code = '''
loop = new_loop()
async def long():
    out("ready")
    await asyncio.sleep(3600)
task = loop.create_task(long())
try:
    loop.run_until_complete(task)
except KeyboardInterrupt:
    out("KeyboardInterrupt")
out("running after", loop.is_running())
out("again", loop.run_until_complete(asyncio.sleep(0.01, "ok")))
task.cancel()
try:
    loop.run_until_complete(task)
except asyncio.CancelledError:
    out("task cancelled")
loop.close()
out("closed")
'''
    ref = interrupt_child("asyncio", code)
    assert ref[0] == 0 and ref[1][-1] == "closed", ref
    rc, lines, err, seconds, timed_out = interrupt_child(kind, code)
    assert not timed_out, "not interrupted while blocked"
    assert (rc, lines) == (ref[0], ref[1]), (rc, lines, err)


@pytest.mark.skipif(PY < (3, 11), reason="asyncio.run() cancels main on "
                    "SIGINT since 3.11")
def test_ctrl_c_cancels_main_of_run(kind):
    code = '''
install_policy()
async def main():
    out("kind ok", kind_ok(asyncio.get_running_loop()))
    out("ready")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        out("main cancelled")
        raise
try:
    asyncio.run(main())
except KeyboardInterrupt:
    out("KeyboardInterrupt")
out("sigint handler restored",
    __import__("signal").getsignal(2) is __import__("signal").default_int_handler)
'''
    ref = interrupt_child("asyncio", code)
    assert ref[0] == 0 and "main cancelled" in ref[1], ref
    rc, lines, err, seconds, timed_out = interrupt_child(kind, code)
    assert not timed_out, "not interrupted while blocked"
    assert (rc, lines) == (ref[0], ref[1]), (rc, lines, err)


def test_sigint_handler_added_with_add_signal_handler(kind):
    # The pattern of graceful-shutdown code: SIGINT handled by the loop.
    code = '''
import signal
loop = new_loop()
loop.add_signal_handler(signal.SIGINT, lambda: (out("got SIGINT"), loop.stop()))
loop.call_soon(out, "ready")
loop.run_forever()
out("stopped")
loop.close()
'''
    ref = interrupt_child("asyncio", code)
    assert ref[0] == 0, ref
    rc, lines, err, seconds, timed_out = interrupt_child(kind, code)
    assert not timed_out
    assert (rc, lines) == (ref[0], ref[1]), (rc, lines, err)
