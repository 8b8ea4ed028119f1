"""Pipe transports: connect_read_pipe/connect_write_pipe with os.pipe(),
socketpairs, character devices and a child process's pipes; EOF, close,
peer close, flow control, write errors.  Compared with stock asyncio."""
import asyncio
import os
import socket
import subprocess
import sys
import tempfile

import pytest

from support import capture_asyncio_log, run_until
from netsupport import (NET_MARKS, KiB, MiB, Recorder, call_ev, digest, exc_ev,
                        outcome, payload, swallow_unraisable, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


def pipe_files():
    r, w = os.pipe()
    return os.fdopen(r, "rb", buffering=0), os.fdopen(w, "wb", buffering=0)


def test_read_pipe(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), rf))
            trace = [("isinstance ReadTransport",
                      isinstance(tr, asyncio.ReadTransport),
                      isinstance(tr, asyncio.WriteTransport)),
                     ("pipe extra", tr.get_extra_info("pipe") is rf),
                     ("keys", [k for k in ("pipe", "socket", "peername")
                               if tr.get_extra_info(k) is not None]),
                     ("is_reading", call_ev(tr.is_reading)),
                     ("repr is str", isinstance(repr(tr), str)),
                     ("blocking", os.get_blocking(rf.fileno()))]
            wf.write(b"first")
            await pr.wait_for_bytes(5)
            tr.pause_reading()
            trace.append(("paused", call_ev(tr.is_reading)))
            wf.write(b"second")
            await asyncio.sleep(0.05)
            trace.append(("while paused", bytes(pr.data)))
            tr.resume_reading()
            await pr.wait_for_bytes(11)
            trace.append(("resumed", bytes(pr.data), call_ev(tr.is_reading)))
            wf.close()
            await wait(pr.lost)
            trace.append(("events", pr.events, pr.lost_count))
            trace.append(("pipe closed", rf.closed, tr.is_closing()))
            trace.append(("close again", call_ev(tr.close)))
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert ("events", [("made",), ("data",), ("eof",), ("lost", None)],
            1) in trace


def test_read_pipe_close_by_transport(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), rf))
            tr.close()
            trace = [("is_closing", tr.is_closing())]
            await wait(pr.lost)
            trace.append(("events", pr.events))
            trace.append(("read end closed", rf.closed))
            trace.append(("writer sees", call_ev(wf.write, b"x")))
            wf.close()
            # pause/resume after close are no-ops
            trace.append(("pause after close", call_ev(tr.pause_reading),
                          call_ev(tr.resume_reading), call_ev(tr.is_reading)))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_write_pipe(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            trace = [("isinstance WriteTransport",
                      isinstance(tr, asyncio.WriteTransport),
                      isinstance(tr, asyncio.ReadTransport)),
                     ("pipe extra", tr.get_extra_info("pipe") is wf),
                     ("can_write_eof", tr.can_write_eof()),
                     ("buffer", tr.get_write_buffer_size()),
                     ("limits", tr.get_write_buffer_limits()),
                     ("repr is str", isinstance(repr(tr), str))]
            trace.append(("write str", call_ev(tr.write, "text")))
            trace.append(("write", call_ev(tr.write, b"hello ")))
            trace.append(("writelines", call_ev(
                tr.writelines, [b"a", bytearray(b"b"), memoryview(b"c")])))
            tr.write_eof()
            trace.append(("write after eof", call_ev(tr.write, b"x")))
            trace.append(("is_closing", tr.is_closing()))
            await wait(pr.lost)
            got = rf.read()
            rf.close()
            trace.append(("reader got", got))
            trace.append(("events", pr.events, pr.lost_count))
            trace.append(("pipe closed", wf.closed))
            return trace

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert ("reader got", b"hello abc") in trace


@pytest.mark.slow
def test_pipe_to_pipe_10mib(compare):
    """10 MiB from a write-pipe transport to a read-pipe transport of the
    same loop, with write flow control."""
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            rtr, rpr = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), rf))
            wtr, wpr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            wtr.set_write_buffer_limits(high=64 * KiB)
            data = payload(10 * MiB, 21)
            wtr.write(data)
            trace = [("paused in write", wpr.events[1:2])]
            wtr.close()
            await wait(rpr.lost, 30)
            await wait(wpr.lost, 30)
            flow = [e[0] for e in wpr.events if e[0] in ("pause_writing",
                                                         "resume_writing")]
            trace.append(("flow alternates", all(
                a != b for a, b in zip(flow, flow[1:])), flow[:1],
                flow[-1:]))
            trace.append(("got", digest(rpr.data), bytes(rpr.data) == data))
            trace.append(("reader events", rpr.events))
            trace.append(("writer lost", wpr.events[-1], wpr.lost_count))
            return trace

        return run_until(loop, main(), 40)

    trace = compare(scenario)
    assert trace[2][2] is True


@pytest.mark.parametrize("buffered", [False, True],
                         ids=["empty-buffer", "pending-buffer"])
def test_write_pipe_reader_closes(compare, buffered):
    """The read end goes away: the write transport notices (reader on the
    pipe) and calls connection_lost(None), or BrokenPipeError when data
    was still buffered; later writes are dropped and logged."""
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            if buffered:
                tr.write(b"x" * (4 * MiB))
            trace = [("buffered", tr.get_write_buffer_size() > 0)]
            rf.close()
            await wait(pr.lost)
            trace.append(("events", [e for e in pr.events
                                     if e[0] not in ("pause_writing",
                                                     "resume_writing")],
                          pr.lost_count))
            with capture_asyncio_log() as records:
                results = [call_ev(tr.write, b"late") for _ in range(7)]
            trace.append(("writes after", results,
                          [r.getMessage() for r in records]))
            trace.append(("buffer after", tr.get_write_buffer_size()))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_write_pipe_abort(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            tr.write(b"y" * (4 * MiB))
            trace = [("buffered", tr.get_write_buffer_size() > 0)]
            tr.abort()
            trace.append(("is_closing", tr.is_closing(),
                          tr.get_write_buffer_size()))
            await wait(pr.lost)
            trace.append(("events", [e for e in pr.events
                                     if e[0] not in ("pause_writing",
                                                     "resume_writing")]))
            rf.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_pipe_kinds(compare):
    """Which file objects the pipe transports accept: pipes, sockets,
    character devices, not regular files."""
    def scenario(loop):
        async def attempt(label, connect, fobj):
            contexts = []
            loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
            # stock asyncio: a pipe transport whose __init__ refused the
            # file fails again in __del__ (unraisable): not compared
            with swallow_unraisable():
                res = await outcome(lambda: connect(lambda: Recorder(loop),
                                                    fobj))
            if res[0] == "ok":
                tr, pr = res[1]
                await asyncio.sleep(0)
                tr.close()
                await wait(pr.lost)
                res = ("ok", pr.events)
            loop.set_exception_handler(None)
            return (label, res, [exc_ev(c.get("exception"))
                                 for c in contexts])

        async def main():
            trace = []
            with tempfile.TemporaryFile() as f:
                trace.append(await attempt("read regular file",
                                           loop.connect_read_pipe, f))
                trace.append(await attempt("write regular file",
                                           loop.connect_write_pipe, f))
            a, b = socket.socketpair()
            fa, fb = a.makefile("rb", buffering=0), b.makefile(
                "wb", buffering=0)
            trace.append(await attempt("read socket",
                                       loop.connect_read_pipe, fa))
            trace.append(await attempt("write socket",
                                       loop.connect_write_pipe, fb))
            for s in (a, b, fa, fb):
                s.close()
            with open(os.devnull, "rb") as dn:
                trace.append(await attempt("read /dev/null",
                                           loop.connect_read_pipe, dn))
            with open(os.devnull, "wb") as dn:
                res = await outcome(lambda: loop.connect_write_pipe(
                    lambda: Recorder(loop), dn))
                if res[0] == "ok":
                    tr, pr = res[1]
                    tr.write(b"into the void" * 1000)
                    trace.append(("/dev/null write buffer",
                                  tr.get_write_buffer_size()))
                    tr.close()
                    await wait(pr.lost)
                    res = ("ok", pr.events)
                trace.append(("write /dev/null", res))
            trace.append(await attempt("read None",
                                       loop.connect_read_pipe, None))
            trace.append(await attempt("read int",
                                       loop.connect_read_pipe, 0))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_subprocess_pipes(compare):
    """A child process's stdin/stdout (subprocess.Popen) as pipe
    transports: 1 MiB through `cat`."""
    def scenario(loop):
        async def main():
            proc = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys, shutil; "
                 "shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            try:
                wtr, wpr = await wait(loop.connect_write_pipe(
                    lambda: Recorder(loop), proc.stdin))
                rtr, rpr = await wait(loop.connect_read_pipe(
                    lambda: Recorder(loop), proc.stdout))
                data = payload(MiB, 22)
                wtr.write(data)
                wtr.write_eof()
                await wait(rpr.lost, 30)
                await wait(wpr.lost, 30)
                rc = await loop.run_in_executor(None, proc.wait, 10)
                return [("got", digest(rpr.data), bytes(rpr.data) == data),
                        ("reader events", rpr.events),
                        ("writer events", [e for e in wpr.events if e[0] not in
                                           ("pause_writing",
                                            "resume_writing")]),
                        ("returncode", rc)]
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert trace[0][2] is True
