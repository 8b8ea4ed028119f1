"""fork(): the child can build and run a new loop; the parent's loop keeps
working.  Run in a child interpreter, compared with stock asyncio."""
import sys

import pytest

FORK_CODE = '''
import time, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork + threads
loop = new_loop()
async def work(tag):
    r = await loop.run_in_executor(None, lambda: "executor-" + tag)
    await asyncio.sleep(0.01)
    return r
out("parent before", loop.run_until_complete(asyncio.wait_for(work("before"), 5)))
loop.call_soon(out, "parent pending callback")
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    status = 1
    try:
        os.close(r)
        # The inherited loop is left alone: closing a selector loop in the
        # child unregisters the self-pipe from the epoll set it shares with
        # the parent, which breaks the parent's loop on stock asyncio.
        child = new_loop()
        asyncio.set_event_loop(child)
        async def main():
            fired = []
            child.call_later(0.01, fired.append, "timer")
            await asyncio.sleep(0.03)
            ex = await child.run_in_executor(None, lambda: "child-executor")
            return fired, ex, kind_ok(child)
        res = child.run_until_complete(asyncio.wait_for(main(), 5))
        child.close()
        os.write(w, repr(res).encode())
        status = 0
    except BaseException as exc:
        os.write(w, ("child failed: %r" % (exc,)).encode())
    finally:
        os.close(w)
        os._exit(status)
os.close(w)
deadline = time.monotonic() + 15
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = "killed after 15 s"
        break
    time.sleep(0.01)
data = b""
while True:
    chunk = os.read(r, 4096)
    if not chunk:
        break
    data += chunk
os.close(r)
out("child said", data.decode())
out("child status", status)
out("parent after", loop.run_until_complete(asyncio.wait_for(work("after"), 5)))
loop.close()
out("parent done")
'''


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_fork_child_runs_new_loop(compare_child):
    proc = compare_child(FORK_CODE, timeout=30)
    lines = proc.stdout.splitlines()
    assert "child said (['timer'], 'child-executor', True)" in lines
    assert "child status 0" in lines


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_fork_child_with_running_parent_loop(compare_child):
    # fork() from inside a callback of the running loop; the child leaves
    # the loop without running it (os._exit) after using a new loop.
    compare_child('''
import time, warnings
warnings.simplefilter("ignore", DeprecationWarning)
loop = new_loop()
result = {}
def do_fork():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            asyncio.events._set_running_loop(None)
            child = new_loop()
            v = child.run_until_complete(
                asyncio.wait_for(asyncio.sleep(0.01, "child ok"), 5))
            child.close()
            os.write(w, v.encode())
            status = 0
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        finally:
            os._exit(status)
    os.close(w)
    result["pid"], result["r"] = pid, r
loop.call_soon(do_fork)
loop.call_later(0.05, loop.stop)
loop.run_forever()
deadline = time.monotonic() + 15
while True:
    done, status = os.waitpid(result["pid"], os.WNOHANG)
    if done or time.monotonic() > deadline:
        break
    time.sleep(0.01)
out("child said", os.read(result["r"], 1000).decode())
out("child status", status)
out("parent", loop.run_until_complete(
    asyncio.wait_for(asyncio.sleep(0.01, "ok"), 5)))
loop.close()
''', timeout=30)
