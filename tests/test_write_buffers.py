"""What a transport keeps of the caller's buffer once a write is queued
(issue 15, part 2).  Compared with stock asyncio, whose answer depends on
the version:

* Socket transports (TCP, Unix; write() and StreamWriter.write()):
  before 3.12 asyncio copies whatever it cannot send at once into its own
  bytearray, so the caller may reuse or resize a bytearray at once and the
  peer gets the bytes of the moment of write().  From 3.12 it queues the
  object itself behind earlier data (no export: the caller may resize it,
  and the peer gets its contents at the moment of sending), but a
  memoryview of it after a partial first send (the caller's bytearray is
  then locked until that data is sent).  writelines() joins into a copy
  before 3.12 and queues memoryview(item) of each item from 3.12.
* Datagram transports copy what they queue (bytes(data)), every version.
* Pipe transports (write pipes, subprocess stdin) copy into a bytearray,
  every version.

Each scenario first fills the socket or pipe (nothing reads it yet), so
the writes under test are certainly queued; it mutates the buffers before
the loop runs again, and only then reads everything, so what the peer
receives is decided by what the transport kept, not by timing.
"""
import asyncio
import os
import socket
import sys
import types

import pytest

from support import PY, attempt, run_scenario, run_until
from netsupport import (HOST4, NET_MARKS, Recorder, digest, exc_ev, payload,
                        temp_dir, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS

WHERES = ["tcp", "unix"]

# Far more than a socket or pipe takes before it would block (the socket
# buffers are made small), so that the first write is sent only in part.
BIG = 4 * 1024 * 1024
SMALL_BUF = 16 * 1024


def stream_socket_pair(where):
    """(writer, reader): connected non-blocking stream sockets with small
    buffers; nobody reads the reader until the scenario does."""
    if where == "unix":
        w, r = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
            lsock.bind((HOST4, 0))
            lsock.listen(1)
            w = socket.create_connection(lsock.getsockname())
            r, _ = lsock.accept()
        finally:
            lsock.close()
    w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUF)
    w.setblocking(False)
    r.setblocking(False)
    return w, r


async def open_writer(loop, where, wsock, stream):
    """A transport (or, with stream, a StreamWriter) over wsock: a namespace
    with write, writelines, tr, pr (None for a StreamWriter) and closer()
    (close, and wait until the connection is lost)."""
    if stream:
        if where == "unix":
            _, writer = await wait(asyncio.open_unix_connection(sock=wsock))
        else:
            _, writer = await wait(asyncio.open_connection(sock=wsock))

        async def closer():
            await wait(writer.drain(), 30)
            writer.close()
            await wait(writer.wait_closed(), 30)

        return types.SimpleNamespace(
            write=writer.write, writelines=writer.writelines,
            tr=writer.transport, pr=None, closer=closer)
    if where == "unix":
        tr, pr = await wait(loop.create_unix_connection(
            lambda: Recorder(loop), sock=wsock))
    else:
        tr, pr = await wait(loop.create_connection(
            lambda: Recorder(loop), sock=wsock))

    async def closer():
        tr.close()
        await wait(pr.lost, 30)

    return types.SimpleNamespace(write=tr.write, writelines=tr.writelines,
                                 tr=tr, pr=pr, closer=closer)


def socket_scenario(where, run, stream=False):
    """A scenario: ``await run(loop, w, rsock)`` with w from open_writer()
    over a fresh stream_socket_pair() and rsock its reading end."""
    def scenario(loop):
        async def main():
            wsock, rsock = stream_socket_pair(where)
            try:
                w = await open_writer(loop, where, wsock, stream)
                return await run(loop, w, rsock)
            finally:
                rsock.close()
                wsock.close()

        return run_until(loop, main(), 60)

    return scenario


def lost_events(pr):
    return ("events", [e for e in pr.events if e[0] in ("made", "lost")])


async def read_all(loop, rsock):
    """Everything the peer sends until EOF."""
    data = bytearray()
    while True:
        chunk = await wait(loop.sock_recv(rsock, 256 * 1024), 30)
        if not chunk:
            return bytes(data)
        data += chunk


def received(data, head):
    """What a trace records of the bytes a peer got after head (the start
    of the data that filled the socket): their digest and their start."""
    return ("received", data[:len(head)] == head, digest(data[len(head):]),
            bytes(data[len(head):][:48]))


def received_tail(trace):
    [ev] = [ev for ev in trace if ev[0] == "received"]
    assert ev[1] is True, "the filler arrived changed"
    return ev[3]


def stream_scenario(where, body, stream=False):
    """A scenario: body(w, trace) fills the socket (fill()) and writes,
    synchronously, returning the filler; then everything is read, the
    writer closed, and what the peer got after the filler traced."""
    async def run(loop, w, rsock):
        trace = []
        head = body(w, trace)
        data_task = loop.create_task(read_all(loop, rsock))
        await w.closer()
        data = await wait(data_task, 30)
        trace.append(received(data, head))
        if w.pr is not None:
            trace.append(lost_events(w.pr))
        return trace

    return socket_scenario(where, run, stream)


def fill(w, trace):
    """Write BIG bytes: the socket takes a part, the rest is queued."""
    big = payload(BIG, 1)
    w.write(big)
    trace.append(("filler queued", 0 < w.tr.get_write_buffer_size() < BIG))
    return big


# --------------------------------------------------------------------------
# Sockets: write() and StreamWriter.write()
# --------------------------------------------------------------------------

@pytest.mark.parametrize("api", ["transport", "stream"])
@pytest.mark.parametrize("where", WHERES)
def test_bytearray_reuse_after_queued_write(compare, where, api):
    """The issue's program: append a record to a bytearray, write() it,
    clear() it, 2000 times, with every write queued.  Stock asyncio never
    raises; before 3.12 the peer gets every record, from 3.12 the peer gets
    (2000 times) what the bytearray holds when the data is sent."""
    def body(w, trace):
        head = fill(w, trace)
        size0 = w.tr.get_write_buffer_size()
        buf = bytearray()
        errors = []
        for i in range(2000):
            buf += b"record %04d\n" % i
            w.write(buf)
            try:
                buf.clear()
            except BufferError as exc:
                errors.append((i,) + exc_ev(exc))
                del buf
                buf = bytearray()
        trace.append(("errors", len(errors), errors[:1]))
        trace.append(("buffer size grew by",
                      w.tr.get_write_buffer_size() - size0))
        buf += b"final\n"
        return head

    trace = compare(stream_scenario(where, body, api == "stream"))
    assert ("errors", 0, []) in trace
    start = b"record 0000\nrecord 0001\n" if PY < (3, 12) else b"final\n" * 4
    assert received_tail(trace).startswith(start)


@pytest.mark.parametrize("where", WHERES)
def test_mutation_after_queued_write(compare, where):
    """A bytearray written behind queued data, then changed in place or
    resized: before 3.12 the peer gets the bytes of write() time; from 3.12
    those of send time (asyncio holds the object, no export)."""
    def body(w, trace):
        head = fill(w, trace)
        size0 = w.tr.get_write_buffer_size()
        a = bytearray(b"A" * 10)
        w.write(a)
        a[:] = b"Z" * 10
        b = bytearray(b"B" * 10)
        w.write(b)
        attempt(trace, "resize b", b.extend, b"Y" * 10)
        c = bytearray(b"C" * 10)
        w.write(memoryview(c)[2:8])
        c[:] = b"X" * 10
        attempt(trace, "clear c", c.clear)
        trace.append(("buffer size grew by",
                      w.tr.get_write_buffer_size() - size0))
        return head

    trace = compare(stream_scenario(where, body))
    assert ("ok", "resize b") in trace
    tail = (b"A" * 10 + b"B" * 10 + b"C" * 6 if PY < (3, 12)
            else b"Z" * 10 + b"B" * 10 + b"Y" * 10 + b"X" * 6)
    assert received_tail(trace) == tail


@pytest.mark.parametrize("kind_of_data", ["bytearray", "memoryview"])
@pytest.mark.parametrize("where", WHERES)
def test_partial_first_write(compare, where, kind_of_data):
    """A bytearray (or a memoryview of one) that is only partly sent by
    write() into an empty buffer: before 3.12 the rest is copied (the
    caller may clear the bytearray; the peer gets the original bytes);
    from 3.12 asyncio keeps memoryview(data)[n:], which locks the
    bytearray (BufferError on resize) and sends its contents of send time.
    The caller's own memoryview may be released in both."""
    def body(w, trace):
        original = payload(BIG, 2)
        base = bytearray(original)
        data = base if kind_of_data == "bytearray" else memoryview(base)
        w.write(data)
        trace.append(("queued", 0 < w.tr.get_write_buffer_size() < BIG))
        base[-6:] = b"ZZZZZZ"
        if kind_of_data == "memoryview":
            attempt(trace, "release the memoryview", data.release)
        attempt(trace, "append", base.extend, b"more")
        attempt(trace, "clear", base.clear)
        return original[:-6]

    trace = compare(stream_scenario(where, body))
    if PY < (3, 12):
        assert ("ok", "append") in trace
        assert received_tail(trace) == bytes(payload(BIG, 2)[-6:])
    else:
        assert ("raised", "append", "BufferError",
                "Existing exports of data: object cannot be re-sized") in trace
        assert received_tail(trace) == b"ZZZZZZ"


class _BytesSub(bytes):
    pass


@pytest.mark.parametrize("api", ["transport", "stream"])
@pytest.mark.parametrize("where", WHERES)
def test_bytes_sent_in_part_then_dropped(compare, where, api):
    """Exact bytes (write() sends them from the object itself, without a
    buffer export), a bytes subclass and a memoryview of bytes: the first
    sent only in part, the others queued behind it, and the caller keeps
    no reference to any of them.  The peer gets them all, whole and in
    order."""
    def body(w, trace):
        first = payload(BIG, 4)
        head = bytearray(first)
        w.write(first)
        del first
        trace.append(("queued", 0 < w.tr.get_write_buffer_size() < BIG))
        w.write(_BytesSub(b"subclass;"))
        w.write(memoryview(b"view;" * 2)[:5])
        w.write(b";".join([b"exact", b""]))
        trace.append(("queued", w.tr.get_write_buffer_size() > BIG // 2))
        return head

    trace = compare(stream_scenario(where, body, stream=api == "stream"))
    assert received_tail(trace) == b"subclass;view;exact;"


@pytest.mark.parametrize("where", WHERES)
def test_writelines_then_reuse(compare, where):
    """writelines() behind queued data: before 3.12 a joined copy; from 3.12
    memoryview(item) of each item, which locks the items' bytearrays until
    they are sent."""
    def body(w, trace):
        head = fill(w, trace)
        a = bytearray(b"a" * 8)
        b = bytearray(b"b" * 8)
        w.writelines([a, b, b"c" * 8])
        attempt(trace, "clear a", a.clear)
        b[:] = b"Q" * 8
        attempt(trace, "append b", b.extend, b"!")
        return head

    trace = compare(stream_scenario(where, body))
    if PY < (3, 12):
        assert ("ok", "clear a") in trace
        assert received_tail(trace) == b"a" * 8 + b"b" * 8 + b"c" * 8
    else:
        assert ("ok", "clear a") not in trace
        assert received_tail(trace) == b"a" * 8 + b"Q" * 8 + b"c" * 8


@pytest.mark.parametrize("where", WHERES)
def test_released_memoryview_behind_queued_data(compare, where):
    """A memoryview written behind queued data and then released by the
    caller: asyncio holds no export on it before or after 3.12, so
    release() succeeds.  Before 3.12 its bytes were copied; from 3.12
    sending it fails (a fatal write error, as asyncio's sendmsg() raises
    ValueError)."""
    async def run(loop, w, rsock):
        errors = []
        loop.set_exception_handler(
            lambda lp, ctx: errors.append(
                (ctx.get("message"),
                 exc_ev(ctx["exception"]) if "exception" in ctx else None)))
        trace = []
        head = fill(w, trace)
        mv = memoryview(bytearray(b"m" * 16))
        w.write(mv)
        attempt(trace, "release", mv.release)
        data_task = loop.create_task(read_all(loop, rsock))
        await w.closer()
        data = await wait(data_task, 30)
        trace.append(("head", data[:len(head)] == head[:len(data)]))
        trace.append(("whole", data == head + b"m" * 16))
        trace.append(("handler", errors))
        trace.append(lost_events(w.pr))
        return trace

    trace = compare(socket_scenario(where, run))
    assert ("ok", "release") in trace


@pytest.mark.parametrize("kind_of_data", ["bytearray", "memoryview"])
@pytest.mark.parametrize("where", WHERES)
def test_changed_after_sent_in_part(compare, where, kind_of_data):
    """A buffer queued behind data, changed once it is partly sent: from
    3.12 asyncio then holds data[n:] of it, a copy of a bytearray's rest
    (the change is not sent, and the bytearray may be resized) but a view
    of a memoryview's (the change is sent from where the send stopped).
    Before 3.12 it was copied at write()."""
    size = 1024 * 1024

    async def run(loop, w, rsock):
        trace = []
        head = fill(w, trace)
        base = bytearray(b"a" * size)
        w.write(base if kind_of_data == "bytearray" else memoryview(base))
        got = bytearray()
        while len(got) < len(head) + 1000:
            got += await wait(loop.sock_recv(rsock, 64 * 1024))
        base[:] = b"z" * size
        if kind_of_data == "bytearray":
            attempt(trace, "clear", base.clear)
        data_task = loop.create_task(read_all(loop, rsock))
        await w.closer()
        got += await wait(data_task, 30)
        rest = bytes(got[len(head):])
        nz = rest.count(b"z")
        trace.append(("head", got[:len(head)] == head))
        trace.append(("rest", len(rest), nz > 0,
                      rest == b"a" * (size - nz) + b"z" * nz))
        return trace

    trace = compare(socket_scenario(where, run))
    changed = kind_of_data == "memoryview" and PY >= (3, 12)
    assert ("rest", size, changed, True) in trace


@pytest.mark.parametrize("where", WHERES)
def test_emptied_bytearray_does_not_stall_close(kind, where):
    """A bytearray queued behind data and then emptied: from 3.12 asyncio
    keeps the empty item at the head of its queue once everything before
    it is sent, and polls for ever, so close() never completes.  tideloop
    drops it (README, known differences); before 3.12 both copied it."""
    if kind == "asyncio" and PY >= (3, 12):
        pytest.skip("stock asyncio 3.12+ never completes this close()")

    async def run(loop, w, rsock):
        head = fill(w, [])
        buf = bytearray(b"x" * 10)
        w.write(buf)
        buf.clear()
        data_task = loop.create_task(read_all(loop, rsock))
        await w.closer()
        data = await wait(data_task, 30)
        return [w.pr.events[-1],
                data == (head + b"x" * 10 if PY < (3, 12) else head)]

    assert run_scenario(kind, socket_scenario(where, run)) == [
        ("lost", None), True]


# --------------------------------------------------------------------------
# Datagrams
# --------------------------------------------------------------------------

class Datagrams(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.loop = loop
        self.lost = loop.create_future()

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_datagram_reuse_after_queued_sendto(compare):
    """sendto() of a bytearray once the socket would block: asyncio queues
    bytes(data) on every version, so the caller may resize the bytearray
    at once and the peer gets the bytes of sendto() time."""
    def scenario(loop):
        async def main():
            with temp_dir() as d:
                path = os.path.join(d, "dgram")
                rsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                rsock.bind(path)
                wsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                wsock.connect(path)
                wsock.setblocking(False)
                rsock.setblocking(False)
                return await exchange(wsock, rsock)

        async def exchange(wsock, rsock):
            try:
                tr, pr = await wait(loop.create_datagram_endpoint(
                    lambda: Datagrams(loop), sock=wsock))
                sent = 0
                while tr.get_write_buffer_size() == 0 and sent < 100000:
                    tr.sendto(b"filler %d" % sent)
                    sent += 1
                trace = [("would block", tr.get_write_buffer_size() > 0)]
                buf = bytearray(b"D" * 32)
                tr.sendto(buf)
                attempt(trace, "clear", buf.clear)
                buf += b"second"
                tr.sendto(buf)
                buf[:6] = b"ZZZZZZ"
                attempt(trace, "append", buf.extend, b"!")
                got = []
                while len(got) < sent + 2:
                    got.append(await wait(loop.sock_recv(rsock, 4096)))
                trace.append(("fillers in order", got[:sent] == [
                    b"filler %d" % i for i in range(sent)]))
                trace.append(("last two", got[sent:]))
                trace.append(("buffer", tr.get_write_buffer_size()))
                tr.abort()
                await wait(pr.lost)
                return trace
            finally:
                rsock.close()
                wsock.close()

        return run_until(loop, main(), 60)

    trace = compare(scenario)
    assert ("last two", [b"D" * 32, b"second"]) in trace


# --------------------------------------------------------------------------
# Pipes
# --------------------------------------------------------------------------

def pipe_body(write, trace):
    """Writes to a pipe nobody reads yet: a bytearray bigger than the pipe
    (sent in part), then bytearrays behind it, each reused at once."""
    big = bytearray(payload(BIG, 3))
    original = bytes(big)
    write(big)
    big[-6:] = b"ZZZZZZ"
    attempt(trace, "clear big", big.clear)
    buf = bytearray()
    errors = 0
    for i in range(100):
        buf += b"record %04d\n" % i
        write(buf)
        try:
            buf.clear()
        except BufferError:
            errors += 1
            buf = bytearray()
    trace.append(("clear errors", errors))
    buf += b"final\n"
    return original + b"".join(b"record %04d\n" % i for i in range(100))


def test_pipe_reuse_after_queued_write(compare):
    def scenario(loop):
        async def main():
            r, w = os.pipe()
            rf = os.fdopen(r, "rb", 0)
            wf = os.fdopen(w, "wb", 0)
            try:
                tr, pr = await wait(loop.connect_write_pipe(
                    lambda: Recorder(loop), wf))
                trace = []
                expected = pipe_body(tr.write, trace)
                trace.append(("queued", tr.get_write_buffer_size() > 0))
                rtr, rpr = await wait(loop.connect_read_pipe(
                    lambda: Recorder(loop), rf))
                tr.close()
                await wait(pr.lost, 30)
                await wait(rpr.lost, 30)
                trace.append(("reader got", rpr.data == expected,
                              digest(rpr.data)))
                return trace
            finally:
                rf.close()
                wf.close()

        return run_until(loop, main(), 60)

    trace = compare(scenario)
    assert ("ok", "clear big") in trace


CHILD = r"""
import hashlib, os, sys
os.read(int(sys.argv[1]), 1)
data = sys.stdin.buffer.read()
print(len(data), hashlib.sha256(data).hexdigest()[:16], flush=True)
"""


def test_subprocess_stdin_reuse_after_queued_write(compare):
    """proc.stdin.write() of reused bytearrays; the child reads its stdin
    only once every write is made."""
    def scenario(loop):
        async def main():
            gate_r, gate_w = os.pipe()
            try:
                proc = await wait(asyncio.create_subprocess_exec(
                    sys.executable, "-c", CHILD, str(gate_r),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, pass_fds=(gate_r,)))
                trace = []
                expected = pipe_body(proc.stdin.write, trace)
                trace.append(("queued", proc.stdin.transport
                              .get_write_buffer_size() > 0))
                os.write(gate_w, b"x")
                await wait(proc.stdin.drain(), 30)
                proc.stdin.close()
                out = await wait(proc.stdout.read(), 30)
                trace.append(("child got", out.split()[0] ==
                              str(len(expected)).encode(), out))
                trace.append(("exit", await wait(proc.wait(), 30)))
                return trace
            finally:
                os.close(gate_r)
                os.close(gate_w)

        return run_until(loop, main(), 60)

    compare(scenario)
