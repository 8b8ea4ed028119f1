"""Subprocesses: asyncio.create_subprocess_exec/shell and
loop.subprocess_exec/shell with SubprocessProtocol.  Big data both ways,
exit statuses of killed processes, wait/kill after exit, redirections
(DEVNULL, STDOUT, files), env/cwd, pass_fds, argument errors and many
processes at once.  Compared with stock asyncio."""
import asyncio
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from support import run_until
from netsupport import (NET_MARKS, MiB, Scrub, call_ev, digest, exc_ev,
                        outcome, payload, temp_dir, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS

PY_EXE = sys.executable
TRUE = "/bin/true" if os.path.exists("/bin/true") else "true"


def child(code):
    """argv running ``code`` in a child Python."""
    return [PY_EXE, "-c", code]


def scrub_pid(proc):
    return Scrub().add(proc.pid, "PID")


@pytest.mark.slow
def test_communicate_10mib_both_ways(compare):
    def scenario(loop):
        async def main():
            data = payload(10 * MiB, 31)
            proc = await wait(asyncio.create_subprocess_exec(
                *child("import sys\n"
                       "d = sys.stdin.buffer.read()\n"
                       "sys.stderr.buffer.write(d[:MiB])\n"
                       "sys.stdout.buffer.write(d[::-1])\n"
                       .replace("MiB", str(MiB))),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE))
            trace = [("streams", type(proc.stdin).__name__,
                      type(proc.stdout).__name__,
                      type(proc.stderr).__name__),
                     ("returncode before", proc.returncode)]
            out, err = await wait(proc.communicate(data), 30)
            trace.append(("stdout", digest(out), out == data[::-1]))
            trace.append(("stderr", digest(err), err == data[:MiB]))
            trace.append(("returncode", proc.returncode))
            trace.append(("communicate again", await outcome(
                proc.communicate())))
            return trace

        return run_until(loop, main(), 40)

    trace = compare(scenario)
    assert trace[2][2] is True and trace[3][2] is True


@pytest.mark.slow
def test_cat_10mib_streaming(compare):
    """Write 10 MiB to `cat` with drain() while reading its output
    concurrently."""
    def scenario(loop):
        async def main():
            data = payload(10 * MiB, 32)
            proc = await wait(asyncio.create_subprocess_exec(
                "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE))

            async def feed():
                for i in range(0, len(data), 256 * 1024):
                    proc.stdin.write(data[i:i + 256 * 1024])
                    await proc.stdin.drain()
                proc.stdin.close()
                await proc.stdin.wait_closed()

            feeder = loop.create_task(feed())
            got = await wait(proc.stdout.read(), 30)
            await wait(feeder)
            rc = await wait(proc.wait())
            return [("got", digest(got), got == data), ("returncode", rc),
                    ("at_eof", proc.stdout.at_eof())]

        return run_until(loop, main(), 40)

    trace = compare(scenario)
    assert trace[0][2] is True


@pytest.mark.parametrize("how", ["kill", "terminate", "send_signal"])
def test_killed_returncode(compare, how):
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                "sleep", "30", stdout=subprocess.DEVNULL))
            trace = [("returncode while running", proc.returncode)]
            if how == "send_signal":
                res = call_ev(proc.send_signal, signal.SIGUSR1)
            else:
                res = call_ev(getattr(proc, how))
            trace.append((how, res))
            rc = await wait(proc.wait())
            trace.append(("returncode", rc, proc.returncode))
            trace.append(("wait again", await wait(proc.wait())))
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[2][1] < 0


def test_signals_after_exit(compare):
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                TRUE, stdout=subprocess.PIPE))
            trace = [("wait", await wait(proc.wait()))]
            trace.append(("stdout", await wait(proc.stdout.read())))
            await asyncio.sleep(0.05)
            trace.append(("wait again", await wait(proc.wait())))
            trace.append(("kill after exit", call_ev(proc.kill)))
            trace.append(("terminate after exit", call_ev(proc.terminate)))
            trace.append(("send_signal after exit", call_ev(
                proc.send_signal, signal.SIGTERM)))
            trace.append(("returncode", proc.returncode))
            # Right after wait() returns.  The child (cat) exits only once
            # its stdin is closed, which is after wait() is pending: with
            # /bin/true the outcome depended on whether the exit was seen
            # before wait() was called (3.14 wakes wait() in
            # _process_exited, before connection_lost has run).
            proc2 = await wait(asyncio.create_subprocess_exec(
                "cat", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL))
            waiter = asyncio.ensure_future(proc2.wait())
            await asyncio.sleep(0)
            proc2.stdin.close()
            await wait(waiter)
            trace.append(("kill right after wait", call_ev(proc2.kill)))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_wait_before_and_after_exit_with_pipes(compare):
    """wait() with unread output: output stays readable after the exit."""
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                *child("import sys; sys.stdout.write('x' * 1000); "
                       "sys.exit(7)"),
                stdout=subprocess.PIPE))
            rc = await wait(proc.wait())
            out = await wait(proc.stdout.read())
            return [("rc", rc), ("out", len(out)),
                    ("wait again", await wait(proc.wait()))]

        return run_until(loop, main(), 20)

    assert compare(scenario)[0] == ("rc", 7)


def test_redirections(compare):
    def scenario(loop):
        async def main():
            trace = []
            # stdin=DEVNULL: the child reads EOF
            proc = await wait(asyncio.create_subprocess_exec(
                *child("import sys; print(repr(sys.stdin.read()))"),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE))
            out, err = await wait(proc.communicate())
            trace.append(("stdin DEVNULL", out, err, proc.returncode,
                          proc.stdin))
            # stderr=STDOUT
            proc = await wait(asyncio.create_subprocess_exec(
                *child("import sys; sys.stdout.write('out|'); "
                       "sys.stdout.flush(); sys.stderr.write('err')"),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            out, err = await wait(proc.communicate())
            trace.append(("stderr STDOUT", out, err, proc.stderr))
            # stdout=DEVNULL, stderr=PIPE
            proc = await wait(asyncio.create_subprocess_exec(
                *child("import sys; print('gone'); "
                       "sys.stderr.write('kept')"),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            out, err = await wait(proc.communicate())
            trace.append(("stdout DEVNULL", out, err))
            # stdout to a file object and to an fd
            with tempfile.TemporaryFile() as f:
                proc = await wait(asyncio.create_subprocess_exec(
                    "echo", "to file", stdout=f))
                await wait(proc.wait())
                f.seek(0)
                trace.append(("stdout file", f.read(), proc.stdout))
            with tempfile.TemporaryFile() as f:
                proc = await wait(asyncio.create_subprocess_exec(
                    "echo", "to fd", stdout=f.fileno()))
                await wait(proc.wait())
                f.seek(0)
                trace.append(("stdout fd", f.read()))
            # no pipes at all: inherits ours (here: nothing read)
            proc = await wait(asyncio.create_subprocess_exec(
                TRUE, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            trace.append(("no pipes", proc.stdin, proc.stdout, proc.stderr,
                          await wait(proc.wait())))
            # communicate with input but stdin not a pipe
            proc = await wait(asyncio.create_subprocess_exec(
                TRUE, stdin=subprocess.DEVNULL))
            trace.append(("input without stdin pipe", await outcome(
                proc.communicate(b"data"))))
            return trace

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert trace[0][1] == b"''\n"


def test_env_cwd_shell(compare):
    def scenario(loop):
        async def main():
            trace = []
            with temp_dir() as d:
                scrub = Scrub().add(os.path.realpath(d), "DIR").add(d, "DIR")
                proc = await wait(asyncio.create_subprocess_exec(
                    *child("import os; print(os.getcwd()); "
                           "print(os.environ.get('TL_VAR')); "
                           "print('HOME' in os.environ)"),
                    stdout=subprocess.PIPE, cwd=d,
                    env={"TL_VAR": "value", "PATH": os.environ["PATH"]}))
                out, _ = await wait(proc.communicate())
                trace.append(("exec env/cwd", scrub(out.decode())))
                proc = await wait(asyncio.create_subprocess_shell(
                    "echo $TL_VAR; pwd; exit 3", stdout=subprocess.PIPE,
                    cwd=d, env={"TL_VAR": "shell value",
                                "PATH": os.environ["PATH"]}))
                out, _ = await wait(proc.communicate())
                trace.append(("shell", scrub(out.decode()),
                              proc.returncode))
                proc = await wait(asyncio.create_subprocess_shell(
                    b"echo bytes command", stdout=subprocess.PIPE))
                out, _ = await wait(proc.communicate())
                trace.append(("bytes shell", out))
                proc = await wait(asyncio.create_subprocess_shell(
                    "kill -9 $$", stdout=subprocess.PIPE))
                trace.append(("shell killed itself",
                              await wait(proc.wait())))
                trace.append(("missing cwd", await outcome(
                    lambda: asyncio.create_subprocess_exec(
                        "pwd", cwd=os.path.join(d, "missing")), scrub)))
            return trace

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert trace[1][2] == 3


def test_pass_fds(compare):
    def scenario(loop):
        async def main():
            trace = []
            r, w = os.pipe()
            try:
                code = ("import os, sys; fd = int(sys.argv[1]); "
                        "os.write(fd, b'via passed fd'); print('ok')")
                proc = await wait(asyncio.create_subprocess_exec(
                    PY_EXE, "-c", code, str(w), pass_fds=(w,),
                    stdout=subprocess.PIPE))
                out, _ = await wait(proc.communicate())
                trace.append(("child", out, proc.returncode))
                trace.append(("read", os.read(r, 100)))
                # without pass_fds the fd is closed in the child
                proc = await wait(asyncio.create_subprocess_exec(
                    PY_EXE, "-c", code, str(w), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE))
                out, err = await wait(proc.communicate())
                trace.append(("not passed", out, proc.returncode,
                              err.strip().splitlines()[-1:]))
                # close_fds=False keeps inheritable fds only
                os.set_inheritable(w, True)
                proc = await wait(asyncio.create_subprocess_exec(
                    PY_EXE, "-c", code, str(w), close_fds=False,
                    stdout=subprocess.PIPE))
                out, _ = await wait(proc.communicate())
                trace.append(("close_fds=False inheritable", out,
                              proc.returncode, os.read(r, 100)))
            finally:
                os.close(r)
                os.close(w)
            return trace

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert trace[1] == ("read", b"via passed fd")


def test_streams_readline_and_stdin_eof(compare):
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                *child("import sys\n"
                       "for line in sys.stdin:\n"
                       "    sys.stdout.write(line.upper()); "
                       "sys.stdout.flush()\n"
                       "print('done')\n"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            trace = []
            for word in (b"alpha\n", b"beta\n", b"gamma\n"):
                proc.stdin.write(word)
                await wait(proc.stdin.drain())
                trace.append(("line", await wait(proc.stdout.readline())))
            trace.append(("can_write_eof", proc.stdin.can_write_eof()))
            proc.stdin.write_eof()
            trace.append(("rest", await wait(proc.stdout.read())))
            trace.append(("rc", await wait(proc.wait())))
            proc.stdin.close()
            return trace

        return run_until(loop, main(), 20)

    assert compare(scenario)[0] == ("line", b"ALPHA\n")


def test_write_to_exited_child(compare):
    """Writing to the stdin of a child that exited without reading:
    drain() reports the broken pipe."""
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                TRUE, stdin=subprocess.PIPE))
            await wait(proc.wait())
            await asyncio.sleep(0.05)
            trace = []
            proc.stdin.write(b"x" * MiB)
            res = await outcome(proc.stdin.drain())
            trace.append(("drain", res[:2]))
            trace.append(("communicate", await outcome(
                proc.communicate(b"more"))))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_argument_errors(compare):
    def scenario(loop):
        async def main(d):
            trace = []
            scrub = Scrub().add(d, "DIR")
            not_exec = os.path.join(d, "data.txt")
            with open(not_exec, "w") as f:
                f.write("not a program\n")
            for label, make in (
                    ("missing program", lambda:
                     asyncio.create_subprocess_exec("/nonexistent/prog")),
                    ("not executable", lambda:
                     asyncio.create_subprocess_exec(not_exec)),
                    ("shell list", lambda:
                     asyncio.create_subprocess_shell(["echo", "x"])),
                    ("exec shell=True", lambda:
                     asyncio.create_subprocess_exec(TRUE, shell=True)),
                    ("shell shell=False", lambda:
                     asyncio.create_subprocess_shell("true", shell=False)),
                    ("universal_newlines", lambda:
                     asyncio.create_subprocess_exec(
                         TRUE, universal_newlines=True)),
                    ("text", lambda: asyncio.create_subprocess_exec(
                        TRUE, text=True)),
                    ("encoding", lambda: asyncio.create_subprocess_exec(
                        TRUE, encoding="utf-8")),
                    ("errors", lambda: asyncio.create_subprocess_exec(
                        TRUE, errors="strict")),
                    ("bufsize", lambda: asyncio.create_subprocess_exec(
                        TRUE, bufsize=1)),
                    ("no program", lambda:
                     asyncio.create_subprocess_exec()),
                    ("int program", lambda:
                     asyncio.create_subprocess_exec(1)),
                    ("loop.subprocess_exec no protocol", lambda:
                     loop.subprocess_exec(None, TRUE)),
                    ("preexec_fn raises", lambda:
                     asyncio.create_subprocess_exec(
                         TRUE, preexec_fn=lambda: 1 / 0))):
                res = await outcome(make, scrub)
                if res[0] == "ok":
                    proc = res[1]
                    if hasattr(proc, "wait"):
                        res = ("ok", await wait(proc.wait()))
                    else:
                        res = ("ok", type(proc).__name__)
                trace.append((label, res))
            return trace

        with temp_dir() as d:
            return run_until(loop, main(d), 30)

    trace = compare(scenario)
    assert trace[0][1][1] == "FileNotFoundError"


class SubRecorder(asyncio.SubprocessProtocol):
    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.data = {}
        self.pipe_lost = {}
        self.exited = loop.create_future()
        self.lost = loop.create_future()
        self.order = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def pipe_data_received(self, fd, data):
        self.data.setdefault(fd, bytearray()).extend(data)

    def pipe_connection_lost(self, fd, exc):
        self.pipe_lost[fd] = exc_ev(exc)
        self.order.append(("pipe_connection_lost", fd))

    def process_exited(self):
        self.order.append("process_exited")
        self.exited.set_result(self.transport.get_returncode())

    def connection_lost(self, exc):
        self.order.append(("connection_lost", exc_ev(exc)))
        self.lost.set_result(None)


def test_subprocess_protocol(compare):
    def scenario(loop):
        async def main():
            data = payload(2 * MiB, 33)
            tr, pr = await wait(loop.subprocess_exec(
                lambda: SubRecorder(loop), *child(
                    "import sys\n"
                    "d = sys.stdin.buffer.read()\n"
                    "sys.stdout.buffer.write(d)\n"
                    "sys.stderr.buffer.write(b'err')\n"
                    "sys.exit(5)\n"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE))
            scrub = Scrub().add(tr.get_pid(), "PID")
            trace = [("isinstance SubprocessTransport",
                      isinstance(tr, asyncio.SubprocessTransport)),
                     ("pid is int", type(tr.get_pid()).__name__),
                     ("returncode", tr.get_returncode()),
                     ("pipes", [tr.get_pipe_transport(fd) is not None
                                for fd in (0, 1, 2)]),
                     ("pipe types", [
                         isinstance(tr.get_pipe_transport(0),
                                    asyncio.WriteTransport),
                         isinstance(tr.get_pipe_transport(1),
                                    asyncio.ReadTransport)]),
                     ("bad fd", call_ev(tr.get_pipe_transport, 3)),
                     ("extra subprocess", type(tr.get_extra_info(
                         "subprocess")).__name__),
                     ("repr is str", isinstance(repr(tr), str))]
            stdin = tr.get_pipe_transport(0)
            stdin.write(data)
            stdin.write_eof()
            await wait(pr.lost, 30)
            trace.append(("events", pr.events))
            trace.append(("stdout", digest(pr.data.get(1, b"")),
                          bytes(pr.data.get(1, b"")) == data))
            trace.append(("stderr", bytes(pr.data.get(2, b""))))
            trace.append(("pipe lost", sorted(pr.pipe_lost.items())))
            trace.append(("exited with", pr.exited.result()))
            trace.append(("connection_lost last",
                          pr.order[-1] == ("connection_lost", None),
                          sorted(map(str, pr.order))))
            trace.append(("returncode after", tr.get_returncode()))
            trace.append(("kill after", call_ev(tr.kill)))
            trace.append(("is_closing", tr.is_closing()))
            tr.close()
            trace.append(("close", tr.is_closing(), tr.get_returncode()))
            return scrub(trace)

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert ("exited with", 5) in trace


def test_subprocess_transport_close_kills(compare):
    """Closing the transport of a running child kills it."""
    def scenario(loop):
        async def main():
            tr, pr = await wait(loop.subprocess_exec(
                lambda: SubRecorder(loop), "sleep", "30",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            trace = [("running", tr.get_returncode())]
            tr.close()
            trace.append(("closing", tr.is_closing()))
            rc = await wait(pr.exited)
            await wait(pr.lost)
            trace.append(("exited", rc))
            trace.append(("order", sorted(map(str, pr.order))))
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[2] == ("exited", -signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.watchdog(180)
def test_200_concurrent_true(compare):
    def scenario(loop):
        async def one(i):
            proc = await asyncio.create_subprocess_exec(
                TRUE, stdout=subprocess.PIPE)
            out = await proc.stdout.read()
            return await proc.wait(), out

        async def main():
            results = await wait(asyncio.gather(
                *[one(i) for i in range(200)], return_exceptions=True), 50)
            errors = sorted({exc_ev(r) for r in results
                             if isinstance(r, BaseException)})
            codes = sorted({r for r in results
                            if not isinstance(r, BaseException)})
            return [("errors", errors), ("distinct results", codes),
                    ("count", len(results))]

        return run_until(loop, main(), 60)

    trace = compare(scenario)
    assert trace[1] == ("distinct results", [(0, b"")])


def test_process_repr_and_pid(compare):
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                "sleep", "30", stdin=subprocess.PIPE))
            scrub = scrub_pid(proc)
            trace = [("repr", scrub(repr(proc))),
                     ("pid positive", proc.pid > 0)]
            proc.kill()
            await wait(proc.wait())
            trace.append(("repr after", scrub(repr(proc))))
            proc.stdin.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


# What the child reports about itself: session, process group, umask, ids,
# argv[0] and the fds it inherited (besides the one listdir opens).
CHILD_REPORT = (
    "import os, sys; fds = sorted(int(f) for f in os.listdir('/proc/self/fd'));"
    "print(repr({'sid_is_pid': os.getsid(0) == os.getpid(),"
    " 'pgid_is_pid': os.getpgid(0) == os.getpid(),"
    " 'umask': oct(os.umask(0)), 'uid': os.getuid(), 'gid': os.getgid(),"
    " 'groups': sorted(os.getgroups()), 'argv0': os.path.basename("
    "open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode()),"
    " 'nfds': len(fds) - 1}))")


def test_process_options(compare):
    """Popen options asyncio passes through: start_new_session,
    process_group (3.11+), umask, user/group/extra_groups (as root),
    executable, preexec_fn; and the fds a child inherits (tideloop's own
    fds are close-on-exec, even with close_fds=False)."""
    def scenario(loop):
        async def report(**kw):
            proc = await wait(asyncio.create_subprocess_exec(
                *kw.pop("argv", child(CHILD_REPORT)),
                stdout=subprocess.PIPE, **kw))
            out, _ = await wait(proc.communicate())
            return (proc.returncode, out.decode().strip())

        async def main():
            trace = [("defaults", await report())]
            trace.append(("start_new_session",
                          await report(start_new_session=True)))
            if sys.version_info >= (3, 11):
                trace.append(("process_group=0",
                              await report(process_group=0)))
            trace.append(("umask", await report(umask=0o027)))
            trace.append(("preexec_fn setsid",
                          await report(preexec_fn=os.setsid)))
            trace.append(("executable", await report(
                argv=["fake-name", "-c", CHILD_REPORT],
                executable=PY_EXE)))
            trace.append(("close_fds=False", await report(close_fds=False)))
            if os.geteuid() == 0:
                # (a shell: the nobody user cannot read pyenv's Python)
                trace.append(("user/group/extra_groups", await report(
                    argv=["/bin/sh", "-c", "id -u; id -g; id -G"],
                    user=65534, group=65534, extra_groups=[65534])))
            trace.append(("bad user", await outcome(
                lambda: asyncio.create_subprocess_exec(
                    TRUE, user="no-such-user-tideloop"))))
            return trace

        return run_until(loop, main(), 60)

    trace = compare(scenario)
    defaults = eval(trace[0][1][1])
    assert defaults["nfds"] == 3, trace[0]
    assert eval(trace[1][1][1])["sid_is_pid"] is True
    assert [eval(r[1][1])["argv0"] for r in trace
            if r[0] == "executable"] == ["fake-name"]


def test_transport_api(compare):
    """The SubprocessTransport under a Process: isinstance, get_pid,
    get_pipe_transport() for each fd, get_extra_info('subprocess'),
    get_returncode before and after exit, kill after exit."""
    def scenario(loop):
        async def main():
            proc = await wait(asyncio.create_subprocess_exec(
                "/bin/cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            tr = proc._transport
            trace = [
                ("isinstance", isinstance(tr, asyncio.SubprocessTransport)),
                ("pid", tr.get_pid() == proc.pid),
                ("popen", type(tr.get_extra_info("subprocess")).__name__,
                 tr.get_extra_info("subprocess").pid == proc.pid),
                ("pipes", [
                    (fd, isinstance(tr.get_pipe_transport(fd),
                                    asyncio.WriteTransport),
                     isinstance(tr.get_pipe_transport(fd),
                                asyncio.ReadTransport))
                    if tr.get_pipe_transport(fd) is not None else (fd, None)
                    for fd in (0, 1, 2)]),
                ("returncode running", tr.get_returncode()),
                ("extra pipe", tr.get_pipe_transport(0).get_extra_info(
                    "pipe") is not None),
            ]
            out, _ = await wait(proc.communicate(b"abc"))
            trace.append(("out", out, tr.get_returncode()))
            # communicate() returns once the output is read and the exit
            # seen; the transport finishes (connection_lost, _proc = None)
            # a few callbacks later, in an order that depends on whether
            # the pipe's EOF or the exit came first.  Wait for it: after
            # that, kill() raises ProcessLookupError on every loop.
            for _ in range(200):
                if tr._proc is None:
                    break
                await asyncio.sleep(0.005)
            trace.append(("transport finished", tr._proc is None))
            trace.append(("kill after exit", call_ev(tr.kill)))
            trace.append(("send_signal after exit",
                          call_ev(tr.send_signal, signal.SIGTERM)))
            tr.close()
            trace.append(("closed pipes", [
                None if tr.get_pipe_transport(fd) is None
                else tr.get_pipe_transport(fd).is_closing()
                for fd in (0, 1, 2)]))
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[0] == ("isinstance", True)
