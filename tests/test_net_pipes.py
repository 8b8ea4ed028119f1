"""Pipe transports: connect_read_pipe/connect_write_pipe with os.pipe(),
socketpairs, character devices and a child process's pipes; EOF, close,
peer close, flow control, write errors.  Compared with stock asyncio."""
import array
import asyncio
import gc
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import warnings

import pytest

from support import capture_asyncio_log, run_until
from netsupport import (NET_MARKS, KiB, MiB, Recorder, call_ev, digest, exc_ev,
                        outcome, payload, skip_before, swallow_unraisable,
                        wait)
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


class _Chunks(asyncio.Protocol):
    """Each data_received() chunk: its type, length and digest."""

    def __init__(self, loop):
        self.chunks = []
        self.got = loop.create_future()
        self.lost = loop.create_future()

    def data_received(self, data):
        self.chunks.append((type(data).__name__, digest(data)))
        if not self.got.done():
            self.got.set_result(None)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


@pytest.mark.parametrize("first", [64 * KiB, 5])
def test_read_pipe_chunks(compare, first):
    """A full pipe (64 KiB) or a few bytes at the first read, then a few
    bytes, then a full pipe again: every chunk as asyncio reads it (a
    read pipe's first read lands straight in its bytes object)."""
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            wf.write(payload(first, 1))     # waiting before the first read
            pr = _Chunks(loop)
            tr, _ = await wait(loop.connect_read_pipe(lambda: pr, rf))
            for data in (payload(3, 2), payload(64 * KiB, 3)):
                await wait(pr.got)
                pr.got = loop.create_future()
                wf.write(data)
            await wait(pr.got)
            wf.close()
            await wait(pr.lost)
            return pr.chunks

        return run_until(loop, main(), 20)

    chunks = compare(scenario)
    assert chunks[0] == ("bytes", digest(payload(first, 1)))
    assert chunks[-1] == ("bytes", digest(payload(64 * KiB, 3)))


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


# --------------------------------------------------------------------------
# tideloop's C pipe transports (ext/pipe.c) against asyncio's Python ones
# --------------------------------------------------------------------------

def _strip_class(text):
    """asyncio's pipe transports are _UnixReadPipeTransport and
    _UnixWritePipeTransport, tideloop's ReadPipeTransport and
    WritePipeTransport: compare the rest of reprs and messages."""
    return re.sub(r"\b_?\w*(Read|Write)PipeTransport\b", r"<\1Pipe>", text)


def pipe_pair(medium):
    """(read file, write file) over os.pipe() or a socketpair."""
    if medium == "pipe":
        return pipe_files()
    a, b = socket.socketpair()
    ra, wb = os.dup(a.fileno()), os.dup(b.fileno())
    a.close()
    b.close()
    return os.fdopen(ra, "rb", buffering=0), os.fdopen(wb, "wb",
                                                       buffering=0)


def _scrub_fd(text):
    text = re.sub(r"\bfd=\d+", "fd=N", _strip_class(text))
    return re.sub(r"\bpipe \d+ connected", "pipe N connected", text)


MEDIA = ["pipe", "socketpair"]
NOT_FLOW = lambda e: e[0] not in ("pause_writing", "resume_writing")  # noqa


async def _connect_pair(loop, medium, high=None):
    rf, wf = pipe_pair(medium)
    rtr, rpr = await wait(loop.connect_read_pipe(lambda: Recorder(loop), rf))
    wtr, wpr = await wait(loop.connect_write_pipe(lambda: Recorder(loop),
                                                  wf))
    if high is not None:
        wtr.set_write_buffer_limits(high=high)
    return rf, wf, rtr, rpr, wtr, wpr


@pytest.mark.parametrize("medium", MEDIA)
def test_round_trips(compare, medium):
    """1 B .. 1 MiB through a write-pipe transport into a read-pipe
    transport of the same loop, several writes per size, then EOF."""
    sizes = [1, 2, 100, 4095, 4096, 4097, 65535, 65536, 65537,
             256 * KiB + 3, MiB]

    def scenario(loop):
        async def main():
            rf, wf, rtr, rpr, wtr, wpr = await _connect_pair(loop, medium)
            trace = []
            total = bytearray()
            for i, n in enumerate(sizes):
                data = payload(n, 100 + i)
                if i % 3 == 0:
                    wtr.write(data)
                elif i % 3 == 1:
                    wtr.write(bytearray(data))
                else:
                    wtr.write(memoryview(b"--" + data + b"--")[2:-2])
                total += data
                await rpr.wait_for_bytes(len(total))
                trace.append((n, digest(rpr.data) == digest(total)))
            wtr.write_eof()
            await wait(rpr.lost)
            await wait(wpr.lost)
            trace.append(("reader", rpr.events, rpr.lost_count))
            trace.append(("writer", list(filter(NOT_FLOW, wpr.events)),
                          wpr.lost_count))
            trace.append(("closed", rf.closed, wf.closed))
            return trace

        return run_until(loop, main(), 30)

    trace = compare(scenario)
    assert all(t[1] for t in trace[:-3])


@pytest.mark.slow
@pytest.mark.parametrize("medium", MEDIA)
def test_10mib_one_write(compare, medium):
    def scenario(loop):
        async def main():
            rf, wf, rtr, rpr, wtr, wpr = await _connect_pair(loop, medium)
            data = payload(10 * MiB, 7)
            wtr.write(data)
            trace = [("buffered", 0 < wtr.get_write_buffer_size() < len(data)),
                     ("paused", wpr.events[1:])]
            wtr.close()
            await wait(rpr.lost, 30)
            await wait(wpr.lost, 30)
            trace.append(("got", digest(rpr.data), bytes(rpr.data) == data))
            trace.append(("writer", wpr.events, wpr.lost_count))
            trace.append(("buffer", wtr.get_write_buffer_size()))
            return trace

        return run_until(loop, main(), 40)

    trace = compare(scenario)
    assert trace[2][2] is True


@pytest.mark.parametrize("medium", MEDIA)
def test_slow_reader_flow_control(compare, medium):
    """The read transport is paused: the writer's buffer grows past the
    high-water mark (pause_writing), then drains once reading resumes
    (resume_writing at the low-water mark)."""
    def scenario(loop):
        async def main():
            rf, wf, rtr, rpr, wtr, wpr = await _connect_pair(
                loop, medium, high=64 * KiB)
            trace = [("limits", wtr.get_write_buffer_limits())]
            rtr.pause_reading()
            chunk = payload(16 * KiB, 3)
            for i in range(64):
                wtr.write(chunk)
            await asyncio.sleep(0.05)
            size = wtr.get_write_buffer_size()
            trace.append(("while paused", len(rpr.data), size > 64 * KiB,
                          wpr.events))
            rtr.resume_reading()
            await rpr.wait_for_bytes(64 * len(chunk))
            for _ in range(50):
                if wtr.get_write_buffer_size() == 0:
                    break
                await asyncio.sleep(0.01)
            trace.append(("after", len(rpr.data),
                          bytes(rpr.data) == chunk * 64,
                          wtr.get_write_buffer_size(), wpr.events))
            trace.append(("bad limits", call_ev(
                wtr.set_write_buffer_limits, high=1, low=2)))
            wtr.close()
            await wait(rpr.lost)
            await wait(wpr.lost)
            trace.append(("events", rpr.events, wpr.events[-1]))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


@pytest.mark.parametrize("medium", MEDIA)
def test_writer_closes_read_pipe_sees_eof(compare, medium):
    """The other end of the read pipe closes: eof_received, then
    connection_lost(None), once; eof_received's result does not keep
    the transport open."""
    def scenario(loop):
        async def main():
            rf, wf = pipe_pair(medium)
            pr = Recorder(loop)
            pr.eof_result = True
            tr, _ = await wait(loop.connect_read_pipe(lambda: pr, rf))
            wf.write(b"last words")
            wf.close()
            await wait(pr.lost)
            await asyncio.sleep(0.01)
            return [("events", pr.events, pr.lost_count, bytes(pr.data)),
                    ("state", tr.is_closing(), rf.closed,
                      tr.get_extra_info("pipe") is rf,
                      tr.get_protocol() is None)]

        return run_until(loop, main(), 20)

    compare(scenario)


@pytest.mark.parametrize("medium", MEDIA)
@pytest.mark.parametrize("when", ["idle", "buffered", "write"])
def test_reader_goes_away(compare, medium, when):
    """The read end closes while the write transport is idle (reader trick:
    connection_lost(None)), has data buffered (BrokenPipeError), or just
    before a write (EPIPE from the first write(): a fatal error that is
    only logged in debug mode)."""
    def scenario(loop):
        async def main():
            rf, wf = pipe_pair(medium)
            tr, pr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            contexts = []
            loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
            if when == "buffered":
                tr.write(b"z" * (4 * MiB))
            rf.close()
            if when == "write":
                trace = [("write", call_ev(tr.write, b"x"),
                          tr.is_closing(), tr.get_write_buffer_size())]
            else:
                trace = []
            await wait(pr.lost)
            await asyncio.sleep(0.01)
            loop.set_exception_handler(None)
            trace.append(("events", list(filter(NOT_FLOW, pr.events)),
                          pr.lost_count))
            trace.append(("handler", [exc_ev(c.get("exception"))
                                      for c in contexts]))
            trace.append(("closed", wf.closed, tr.is_closing()))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_pause_resume_reading(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), rf))
            trace = [("pause", call_ev(tr.pause_reading),
                      call_ev(tr.pause_reading), tr._paused
                      if hasattr(tr, "_paused") else None)]
            wf.write(b"abc")
            await asyncio.sleep(0.02)
            trace.append(("paused data", bytes(pr.data),
                          call_ev(tr.is_reading)))
            trace.append(("resume", call_ev(tr.resume_reading),
                          call_ev(tr.resume_reading)))
            await pr.wait_for_bytes(3)
            trace.append(("resumed data", bytes(pr.data),
                          call_ev(tr.is_reading)))
            # Pause and resume within one callback; then a read.
            tr.pause_reading()
            tr.resume_reading()
            wf.write(b"def")
            await pr.wait_for_bytes(6)
            trace.append(("again", bytes(pr.data)))
            tr.pause_reading()
            tr.close()
            trace.append(("closed while paused", call_ev(tr.resume_reading),
                          call_ev(tr.is_reading), tr.is_closing()))
            await wait(pr.lost)
            trace.append(("events", pr.events))
            wf.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_pause_in_connection_made(compare):
    """3.11+ do not start reading when connection_made() paused (3.9 and
    3.10 start anyway)."""
    class Pausing(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_read_pipe(
                lambda: Pausing(loop), rf))
            wf.write(b"early")
            await asyncio.sleep(0.03)
            trace = [("data while paused", bytes(pr.data))]
            tr.resume_reading()
            await pr.wait_for_bytes(5)
            trace.append(("after resume", bytes(pr.data)))
            wf.close()
            await wait(pr.lost)
            trace.append(("events", pr.events))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


@skip_before((3, 11), "closing a read pipe in connection_made()")
def test_close_in_connection_made(compare):
    """(3.9/3.10's read pipe starts reading after such a close and then
    hangs when the fd number is reused: not compared there.)"""
    class Closing(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.close()

    def scenario(loop):
        async def main():
            trace = []
            for connect in (loop.connect_read_pipe, loop.connect_write_pipe):
                for _ in range(2):  # the fd number is reused
                    rf, wf = pipe_files()
                    f = rf if connect == loop.connect_read_pipe else wf
                    tr, pr = await wait(connect(lambda: Closing(loop), f))
                    await wait(pr.lost)
                    await asyncio.sleep(0.01)
                    trace.append((pr.events, pr.lost_count, f.closed))
                    rf.close()
                    wf.close()
            # A fresh pair on the reused fd numbers still works.
            rf, wf, rtr, rpr, wtr, wpr = await _connect_pair(loop, "pipe")
            wtr.write(b"still works")
            wtr.close()
            await wait(rpr.lost)
            trace.append(("fresh", bytes(rpr.data), rpr.events))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_write_after_close(compare):
    """Writes after close()/write_eof()/abort() are dropped; from the 5th
    a warning is logged each time.  Bad data types are refused."""
    def scenario(loop):
        async def main():
            trace = []
            for how in ("close", "write_eof", "abort"):
                rf, wf = pipe_files()
                tr, pr = await wait(loop.connect_write_pipe(
                    lambda: Recorder(loop), wf))
                getattr(tr, how)()
                with capture_asyncio_log() as records:
                    res = [call_ev(tr.write, b"late") for _ in range(7)]
                    res.append(call_ev(tr.write, b""))
                    res.append(call_ev(tr.writelines, [b"a", b"b"]))
                await wait(pr.lost)
                with capture_asyncio_log() as records2:
                    res.append(call_ev(tr.write, b"after lost"))
                trace.append((how, res, [r.getMessage() for r in records],
                              [r.getMessage() for r in records2],
                              tr.get_write_buffer_size(), tr.is_closing(),
                              pr.events))
                trace.append((how, "again", call_ev(tr.close),
                              call_ev(tr.write_eof)))
                rf.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_write_data_types(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            trace = []
            for bad in ("str", 42, None, [b"x"], array.array("b", b"ab")):
                trace.append(("bad", repr(bad), call_ev(tr.write, bad)))
            # Buffered data is copied: changing a bytearray afterwards
            # does not change what is written, nor is it locked.
            tr.write(b"\0" * (256 * KiB))
            ba = bytearray(b"original")
            tr.write(ba)
            ba[:] = b"changed!"
            ba.extend(b" and longer")
            mv_src = bytearray(b"viewed")
            tr.write(memoryview(mv_src))
            mv_src[0:1] = b"V"
            trace.append(("strided", call_ev(
                tr.write, memoryview(b"0123456789")[::2])))
            trace.append(("buffer", tr.get_write_buffer_size()))
            tr.write(b"end")
            tr.write_eof()
            got = bytearray()
            loop.add_reader(rf.fileno(), lambda: got.extend(
                os.read(rf.fileno(), MiB)))
            await wait(pr.lost)
            while len(got) < 256 * KiB + 17:
                await asyncio.sleep(0.01)
                if not os.get_blocking(rf.fileno()):
                    break
            loop.remove_reader(rf.fileno())
            got += rf.read() or b""
            trace.append(("got", len(got), bytes(got[256 * KiB:])))
            trace.append(("events", list(filter(NOT_FLOW, pr.events))))
            rf.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_abort_and_connection_lost_once(compare):
    """abort() twice, abort() after close(), close() after abort(): the
    protocol hears connection_lost once (asyncio schedules a second
    _call_connection_lost that fails, reported to the handler)."""
    def scenario(loop):
        async def main():
            trace = []
            for seq in (("abort", "abort"), ("close", "abort"),
                        ("abort", "close"), ("write_eof", "close")):
                rf, wf = pipe_files()
                tr, pr = await wait(loop.connect_write_pipe(
                    lambda: Recorder(loop), wf))
                contexts = []
                loop.set_exception_handler(
                    lambda lp, ctx: contexts.append(ctx))
                if seq[0] != "write_eof":  # would wait for a reader
                    tr.write(b"q" * (200 * KiB))
                res = [call_ev(getattr(tr, m)) for m in seq]
                await wait(pr.lost)
                await asyncio.sleep(0.01)
                res.append(call_ev(tr.abort))
                await asyncio.sleep(0.01)
                loop.set_exception_handler(None)
                trace.append((seq, res, pr.lost_count,
                              list(filter(NOT_FLOW, pr.events)),
                              [exc_ev(c.get("exception")) for c in contexts],
                              wf.closed))
                rf.close()
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_unclosed_resource_warning(compare):
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            rtr, rpr = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), rf))
            wtr, wpr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            rtr.pause_reading()   # drop the loop's references
            return rf, wf, rtr, wtr

        gc.collect()
        rf, wf, rtr, wtr = run_until(loop, main(), 20)
        reprs = [_scrub_fd(repr(t)) for t in (rtr, wtr)]
        loop.close()
        reprs += [_scrub_fd(repr(t)) for t in (rtr, wtr)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del rtr, wtr
            gc.collect()
        msgs = sorted(_scrub_fd(str(w.message)) for w in caught
                      if issubclass(w.category, ResourceWarning))
        return [("reprs", reprs), ("warnings", msgs),
                ("closed", rf.closed, wf.closed)]

    compare(scenario)


def test_transport_classes(compare):
    def scenario(loop):
        async def main():
            rf, wf, rtr, rpr, wtr, wpr = await _connect_pair(loop, "pipe")
            classes = (asyncio.BaseTransport, asyncio.ReadTransport,
                       asyncio.WriteTransport, asyncio.Transport,
                       asyncio.transports._FlowControlMixin,
                       asyncio.SubprocessTransport)
            trace = []
            for tr in (rtr, wtr):
                trace.append(([isinstance(tr, c) for c in classes],
                              [hasattr(tr, m) for m in (
                                  "abort", "write", "pause_reading",
                                  "is_reading", "can_write_eof",
                                  "get_write_buffer_limits", "__dict__")],
                              tr.get_extra_info("pipe") is not None,
                              tr.get_extra_info("nope", 5),
                              tr.get_protocol() in (rpr, wpr)))
            trace.append(("write is_reading", call_ev(wtr.is_reading)))
            other = Recorder(loop)
            rtr.set_protocol(other)
            wtr.write(b"to other")
            await other.wait_for_bytes(8)
            trace.append(("other got", bytes(other.data), bytes(rpr.data)))
            trace.append(("reprs", _scrub_fd(repr(rtr)),
                          _scrub_fd(repr(wtr))))
            rtr.close()
            wtr.close()
            trace.append(("closing reprs", _scrub_fd(repr(rtr)),
                          _scrub_fd(repr(wtr))))
            await wait(other.lost)
            await wait(wpr.lost)
            trace.append(("closed reprs", _scrub_fd(repr(rtr)),
                          _scrub_fd(repr(wtr))))
            trace.append(("events", other.events, rpr.events))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_data_received_raises(compare):
    class Failing(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if len(self.data) < 10:
                raise ZeroDivisionError("boom")

    def scenario(loop):
        async def main():
            contexts = []
            loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
            rf, wf = pipe_files()
            tr, pr = await wait(loop.connect_read_pipe(
                lambda: Failing(loop), rf))
            wf.write(b"12345")
            await pr.wait_for_bytes(5)
            await asyncio.sleep(0.01)
            wf.write(b"67890")
            await pr.wait_for_bytes(10)
            wf.close()
            await wait(pr.lost)
            loop.set_exception_handler(None)
            return [("contexts", [(exc_ev(c.get("exception")),
                                   _strip_class(c["message"]))
                                  for c in contexts]),
                    ("events", pr.events, tr.is_closing())]

        return run_until(loop, main(), 20)

    compare(scenario)


def test_debug_logs(compare):
    def scenario(loop):
        async def main():
            loop.set_debug(True)
            with capture_asyncio_log(logging.DEBUG) as records:
                rf, wf, rtr, rpr, wtr, wpr = await _connect_pair(loop,
                                                                 "pipe")
                rtr.pause_reading()
                rtr.resume_reading()
                wtr.close()
                await wait(rpr.lost)
                await wait(wpr.lost)
                rf2, wf2 = pipe_files()
                tr2, pr2 = await wait(loop.connect_write_pipe(
                    lambda: Recorder(loop), wf2))
                rf2.close()
                await wait(pr2.lost)
                rf3, wf3 = pipe_files()
                tr3, pr3 = await wait(loop.connect_write_pipe(
                    lambda: Recorder(loop), wf3))
                rf3.close()
                tr3.write(b"epipe")
                await wait(pr3.lost)
            loop.set_debug(False)
            return [(r.levelname, _scrub_fd(r.getMessage()),
                     exc_ev(r.exc_info[1]) if r.exc_info else None)
                    for r in records
                    if "Pipe" in r.getMessage() or "pipe" in r.getMessage()]

        return run_until(loop, main(), 20)

    compare(scenario)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs os.openpty()")
def test_pty(compare):
    """A pty: character devices are accepted by both transports; reading
    the master after the slave closed fails with EIO, which closes the
    transport without reporting to the exception handler."""
    def scenario(loop):
        async def main():
            contexts = []
            loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
            master, slave = os.openpty()
            import tty
            tty.setraw(slave)
            mf = os.fdopen(master, "rb", buffering=0)
            sf = os.fdopen(slave, "wb", buffering=0)
            rtr, rpr = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), mf))
            wtr, wpr = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), sf))
            trace = [("watching for reader", wtr._fileno is not None)]
            wtr.write(b"through the pty")
            await rpr.wait_for_bytes(15)
            trace.append(("got", bytes(rpr.data)))
            wtr.close()
            await wait(wpr.lost)
            await wait(rpr.lost)
            loop.set_exception_handler(None)
            trace.append(("reader", rpr.events, rpr.lost_count))
            trace.append(("writer", wpr.events, wpr.lost_count))
            trace.append(("handler", [exc_ev(c.get("exception"))
                                      for c in contexts]))
            return trace

        return run_until(loop, main(), 20)

    compare(scenario)


def test_bad_pipes(compare):
    """Closed fds, directories, regular files, odd fileno() results: Python
    exceptions with asyncio's types and messages."""
    class FakeFile:
        def __init__(self, value):
            self.value = value

        def fileno(self):
            if isinstance(self.value, Exception):
                raise self.value
            return self.value

    def scenario(loop):
        async def main():
            trace = []
            rf, wf = pipe_files()
            closed_fd = rf.fileno()
            os.close(closed_fd)
            dirfd = os.open(".", os.O_RDONLY)
            cases = [("closed fd", FakeFile(closed_fd)),
                     ("directory", FakeFile(dirfd)),
                     ("negative", FakeFile(-1)),
                     ("huge", FakeFile(2 ** 40)),
                     ("str", FakeFile("3")),
                     ("float", FakeFile(1.5)),
                     ("raises", FakeFile(OSError(9, "nope"))),
                     ("no fileno", object())]
            for label, obj in cases:
                for connect in (loop.connect_read_pipe,
                                loop.connect_write_pipe):
                    res = await outcome(lambda: connect(
                        lambda: Recorder(loop), obj))
                    trace.append((label, connect.__name__, res))
            os.close(dirfd)
            try:
                rf.close()
            except OSError:
                pass
            wf.close()
            return trace

        # Stock asyncio's transports whose __init__ failed fail again in
        # __del__ (see swallow_unraisable): not compared.
        with swallow_unraisable():
            trace = run_until(loop, main(), 20)
            loop.run_until_complete(asyncio.sleep(0))
            gc.collect()
        return trace

    compare(scenario)


def test_loop_closed_under_transport(compare):
    """CPython's test_unclosed_pipe_transport: the loop is closed with the
    transports open; their repr says 'open' and setting _pipe = None
    silences the unclosed warning."""
    def scenario(loop):
        async def main():
            rf, wf = pipe_files()
            rtr, _ = await wait(loop.connect_read_pipe(
                lambda: Recorder(loop), rf))
            wtr, _ = await wait(loop.connect_write_pipe(
                lambda: Recorder(loop), wf))
            return rf, wf, rtr, wtr

        rf, wf, rtr, wtr = run_until(loop, main(), 20)
        loop.close()
        trace = [("reprs", _scrub_fd(repr(rtr)), _scrub_fd(repr(wtr)))]
        trace.append(("on closed loop", call_ev(rtr.pause_reading),
                      call_ev(rtr.resume_reading), call_ev(rtr.close),
                      call_ev(wtr.write, b"x"), call_ev(wtr.close)))
        rf.close()
        wf.close()
        rtr._pipe = None
        wtr._pipe = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del rtr, wtr
            gc.collect()
        trace.append(("warnings", [str(w.message) for w in caught]))
        return trace

    compare(scenario)


@pytest.mark.slow
def test_subprocess_exec_protocol_both_ways(compare):
    """loop.subprocess_exec with a SubprocessProtocol: 4 MiB in through the
    stdin pipe transport, out through stdout's, with pipe flow control."""
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self, loop):
            self.events = []
            self.out = bytearray()
            self.exited = loop.create_future()

        def connection_made(self, transport):
            self.events.append("made")

        def pipe_data_received(self, fd, data):
            self.out += data

        def pipe_connection_lost(self, fd, exc):
            self.events.append(("pipe lost", fd, exc_ev(exc)))

        def process_exited(self):
            self.events.append("exited")
            self.exited.set_result(None)

    def scenario(loop):
        async def main():
            data = payload(4 * MiB, 9)
            tr, pr = await wait(loop.subprocess_exec(
                lambda: Proto(loop), sys.executable, "-c",
                "import sys, shutil; "
                "shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL))
            stdin = tr.get_pipe_transport(0)
            stdout = tr.get_pipe_transport(1)
            trace = [("pipes", isinstance(stdin, asyncio.WriteTransport),
                      isinstance(stdout, asyncio.ReadTransport),
                      tr.get_pipe_transport(2))]
            stdin.set_write_buffer_limits(high=256 * KiB)
            stdin.write(data)
            stdin.write_eof()
            await wait(pr.exited, 30)
            for _ in range(100):
                if len(pr.events) >= 4:
                    break
                await asyncio.sleep(0.01)
            trace.append(("out", digest(pr.out), bytes(pr.out) == data))
            trace.append(("events", sorted(map(str, pr.events))))
            trace.append(("rc", tr.get_returncode()))
            tr.close()
            return trace

        return run_until(loop, main(), 40)

    trace = compare(scenario)
    assert trace[1][2] is True


@pytest.mark.tideloop_only
def test_c_pipe_internals_misuse():
    """The C pipe transports' private entry points with bad input or in
    the wrong state raise Python exceptions, never crash (run under ASan
    by scripts/asan.sh)."""
    from support import import_tideloop
    tideloop = import_tideloop()
    from tideloop import _core

    loop = tideloop.new_event_loop()
    try:
        for cls in (_core.ReadPipeTransport, _core.WritePipeTransport):
            for args in ((), (1, 2, 3, 4), (loop, None, -1, None),
                         (loop, None, 2 ** 70, None), (loop, None, "3", None)):
                with pytest.raises((TypeError, ValueError, OverflowError)):
                    cls._new(*args)
            with pytest.raises(TypeError):
                cls()

        async def main():
            rf, wf = pipe_files()
            rtr, rpr = await loop.connect_read_pipe(lambda: Recorder(loop), rf)
            wtr, wpr = await loop.connect_write_pipe(lambda: Recorder(loop),
                                                     wf)
            errors = []

            def attempt(fn, *args):
                try:
                    fn(*args)
                except Exception as exc:  # noqa: BLE001
                    errors.append(type(exc).__name__)

            for tr in (rtr, wtr):
                attempt(tr._call_connection_lost, None)
                attempt(tr._call_connection_lost, None)   # twice
                attempt(tr._read_ready)
                attempt(tr._close, ValueError("x"))
                attempt(tr._close)
                attempt(tr._start_reading)
                attempt(setattr, tr, "_protocol", 42)
                attempt(setattr, tr, "_pipe", "not a file")
                attempt(delattr, tr, "_pipe")
                attempt(tr.set_protocol, None)
                attempt(tr.close)
                attempt(tr.get_extra_info, "pipe")
                attempt(repr, tr)
                tr.__dict__["x"] = 1
            attempt(wtr._write_ready)
            attempt(wtr.write, b"data")
            attempt(wtr.write, memoryview(b"abc")[::2])
            attempt(wtr.write_eof)
            attempt(wtr.abort)
            attempt(rtr.pause_reading)
            attempt(rtr.resume_reading)
            await asyncio.sleep(0.01)
            rf.close()
            wf.close()
            return errors

        with swallow_unraisable():
            errors = loop.run_until_complete(main())
            gc.collect()
        assert errors  # some of those must have been refused
    finally:
        loop.close()
    gc.collect()
