"""Observability: loop.stats(), loop.print_debug_info() (tideloop-only API),
and debug-mode output compared with stock asyncio's (slow callbacks of every
kind, handle reprs with their origin, exception contexts, warnings, the
debug switches of the environment)."""
import asyncio
import gc
import io
import os
import re
import signal
import socket
import sys
import threading
import time
import warnings

import pytest

from support import (PY, capture_asyncio_log, import_tideloop, normalize,
                     record_event, run_forever_guarded, run_until)

STAT_KEYS = {
    # counters
    "iterations", "callbacks", "timers_scheduled", "timers_fired",
    "timers_cancelled", "bytes_read", "bytes_written", "slow_callbacks",
    # gauges
    "ready", "timers_pending", "fd_watchers", "readers", "writers",
    "transports", "uptime",
}

COUNTERS = ("iterations", "callbacks", "timers_scheduled", "timers_fired",
            "timers_cancelled", "bytes_read", "bytes_written",
            "slow_callbacks")


@pytest.fixture
def tloop():
    loop = import_tideloop().new_event_loop()
    yield loop
    if not loop.is_closed():
        loop.close()
    asyncio.set_event_loop(None)


def delta(before, after):
    return {k: after[k] - before[k] for k in COUNTERS}


def noop(*args):
    pass


# --------------------------------------------------------------------------
# loop.stats()
# --------------------------------------------------------------------------

@pytest.mark.tideloop_only
def test_stats_keys_of_a_new_loop(tloop):
    st = tloop.stats()
    assert set(st) == STAT_KEYS | {"backend"}
    assert st["backend"] in ("epoll", "libuv")
    for key in STAT_KEYS - {"uptime"}:
        assert type(st[key]) is int and st[key] == 0, (key, st[key])
    assert type(st["uptime"]) is float and 0 <= st["uptime"] < 5
    # A new dict each time: changing it changes nothing.
    st["callbacks"] = 99
    assert tloop.stats()["callbacks"] == 0
    assert tloop.stats() is not tloop.stats()


@pytest.mark.tideloop_only
def test_stats_call_soon(tloop):
    n = 250
    before = tloop.stats()
    handles = [tloop.call_soon(noop, i) for i in range(n)]
    handles[7].cancel()        # cancelled handles are not run
    handles[8].cancel()
    handles[8].cancel()        # twice: still one handle not run
    tloop.call_soon(tloop.stop)
    assert tloop.stats()["ready"] == n + 1
    tloop.run_forever()
    after = tloop.stats()
    assert after["ready"] == 0
    assert delta(before, after) == dict(
        delta(before, before), iterations=1, callbacks=n + 1 - 2)


@pytest.mark.tideloop_only
def test_stats_iterations_and_threadsafe(tloop):
    count = []

    def again():
        count.append(1)
        if len(count) == 5:
            tloop.stop()
        else:
            tloop.call_soon(again)

    before = tloop.stats()
    tloop.call_soon(again)
    tloop.run_forever()
    d = delta(before, tloop.stats())
    assert (d["iterations"], d["callbacks"]) == (5, 5)

    # call_soon_threadsafe from a thread wakes the sleeping loop: one
    # iteration that sleeps, one that runs the callbacks.
    before = tloop.stats()
    t = threading.Timer(0.05, lambda: (
        tloop.call_soon_threadsafe(noop),
        tloop.call_soon_threadsafe(tloop.stop)))
    t.start()
    run_forever_guarded(tloop)
    t.join()
    d = delta(before, tloop.stats())
    assert d["callbacks"] == 2
    assert d["iterations"] >= 1


@pytest.mark.tideloop_only
def test_stats_timers(tloop):
    before = tloop.stats()
    now = tloop.time()
    due = [tloop.call_at(now - 1, noop) for _ in range(5)]
    later = [tloop.call_later(1000, noop) for _ in range(4)]
    later[0].cancel()
    later[0].cancel()          # counted once
    later[1].cancel()
    st = tloop.stats()
    assert st["timers_pending"] == 5 + 2
    assert delta(before, st)["timers_scheduled"] == 9
    assert delta(before, st)["timers_cancelled"] == 2
    # A timer that already fired is not cancelled any more; a due timer
    # cancelled before the loop ran counts as cancelled, not fired.
    due[4].cancel()
    tloop.call_soon(tloop.stop)
    tloop.run_forever()
    st = tloop.stats()
    d = delta(before, st)
    assert d["timers_fired"] == 4
    assert d["timers_cancelled"] == 3
    assert d["callbacks"] == 4 + 1
    assert st["timers_pending"] == 2
    due[0].cancel()
    assert delta(before, tloop.stats())["timers_cancelled"] == 3

    # call_later(0) through a real sleep: fired once due.
    before = tloop.stats()

    async def main():
        await asyncio.sleep(0.01)
        await asyncio.sleep(0)

    run_until(tloop, main())
    d = delta(before, tloop.stats())
    # sleep(0.01) and wait_for's timeout timer: 2 scheduled, 1 fired,
    # the timeout timer cancelled.
    assert (d["timers_scheduled"], d["timers_fired"],
            d["timers_cancelled"]) == (2, 1, 1)
    assert tloop.stats()["timers_pending"] == 2


@pytest.mark.tideloop_only
def test_stats_fd_watchers(tloop):
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        tloop.add_reader(a, noop)
        tloop.add_writer(a, noop)
        tloop.add_reader(c, noop)
        tloop.add_reader(c, noop)      # replaces: still one reader
        st = tloop.stats()
        assert (st["fd_watchers"], st["readers"], st["writers"]) == (2, 2, 1)
        tloop.remove_writer(a)
        st = tloop.stats()
        assert (st["fd_watchers"], st["readers"], st["writers"]) == (2, 2, 0)
        tloop.remove_reader(a)
        tloop.remove_reader(c)
        st = tloop.stats()
        assert (st["fd_watchers"], st["readers"], st["writers"]) == (0, 0, 0)
        # Watchers left at close are dropped: the gauges go to zero.
        tloop.add_reader(b, noop)
        assert tloop.stats()["fd_watchers"] == 1
        tloop.close()
        assert tloop.stats()["fd_watchers"] == 0
    finally:
        for s in (a, b, c, d):
            s.close()


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        # Half with write(), half with writelines(): both C write paths.
        half = len(data) // 2
        self.transport.write(data[:half])
        self.transport.writelines([data[half:]])

    def eof_received(self):
        self.transport.close()


class Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.lost = loop.create_future()

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class CollectBuffered(asyncio.BufferedProtocol):
    def __init__(self, loop):
        self.buf = bytearray(4096)
        self.data = bytearray()
        self.lost = loop.create_future()

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]

    def connection_lost(self, exc):
        self.lost.set_result(exc)


@pytest.mark.tideloop_only
@pytest.mark.parametrize("buffered", [False, True],
                         ids=["protocol", "buffered"])
def test_stats_tcp_bytes(tloop, buffered):
    payload = bytes(range(256)) * 4096 + b"tail"     # 1 MiB + 4: queues
    seen = {}

    async def main():
        server = await tloop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proto_cls = CollectBuffered if buffered else Collect
        tr, proto = await tloop.create_connection(
            lambda: proto_cls(tloop), "127.0.0.1", port)
        seen["open"] = tloop.stats()["transports"]
        tr.write(payload[:1000])
        tr.write(payload[1000:])
        tr.write_eof()
        await asyncio.wait_for(proto.lost, 10)
        # Let the server side's connection_lost run too.
        for _ in range(5):
            await asyncio.sleep(0)
        seen["closed"] = tloop.stats()["transports"]
        server.close()
        await server.wait_closed()
        return bytes(proto.data)

    before = tloop.stats()
    echoed = run_until(tloop, main(), timeout=30)
    assert echoed == payload
    d = delta(before, tloop.stats())
    # Client and server run on this loop: each byte is written twice
    # (client, echo) and read twice (server, client).
    assert d["bytes_written"] == 2 * len(payload)
    assert d["bytes_read"] == 2 * len(payload)
    assert (seen["open"], seen["closed"]) == (2, 0)


class DatagramEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)      # unconnected: sock.sendto


class DatagramCollect(asyncio.DatagramProtocol):
    def __init__(self, loop, n):
        self.got = []
        self.n = n
        self.done = loop.create_future()

    def datagram_received(self, data, addr):
        self.got.append(data)
        if len(self.got) == self.n and not self.done.done():
            self.done.set_result(None)


@pytest.mark.tideloop_only
def test_stats_udp_bytes(tloop):
    # (No empty datagram: before 3.13 sendto(b"") sends nothing.)
    sizes = [1, 100, 1400, 9000, 512]
    datagrams = [bytes([i]) * n for i, n in enumerate(sizes)]
    seen = {}

    async def main():
        server, _ = await tloop.create_datagram_endpoint(
            DatagramEcho, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await tloop.create_datagram_endpoint(
            lambda: DatagramCollect(tloop, len(datagrams)),
            remote_addr=addr)
        seen["open"] = tloop.stats()["transports"]
        for d in datagrams:
            client.sendto(d)                   # connected: send()
            await asyncio.sleep(0.005)         # keep them in order
        await asyncio.wait_for(proto.done, 10)
        client.close()
        server.close()
        await asyncio.sleep(0)
        seen["closed"] = tloop.stats()["transports"]
        return proto.got

    before = tloop.stats()
    got = run_until(tloop, main(), timeout=30)
    assert sorted(got) == sorted(datagrams)
    d = delta(before, tloop.stats())
    total = sum(sizes)
    assert d["bytes_written"] == 2 * total
    assert d["bytes_read"] == 2 * total
    assert (seen["open"], seen["closed"]) == (2, 0)


@pytest.mark.tideloop_only
def test_stats_slow_callbacks(tloop):
    tloop.slow_callback_duration = 0.05
    for debug, expected in ((False, 0), (True, 1)):
        tloop.set_debug(debug)
        before = tloop.stats()
        with capture_asyncio_log() as records:
            tloop.call_soon(time.sleep, 0.1)
            tloop.call_soon(noop)
            tloop.call_soon(tloop.stop)
            tloop.run_forever()
        d = delta(before, tloop.stats())
        assert d["slow_callbacks"] == expected
        assert len([r for r in records
                    if "took" in r.getMessage()]) == expected


@pytest.mark.tideloop_only
def test_stats_of_a_closed_loop(tloop):
    for _ in range(3):
        tloop.call_soon(noop)
    tloop.call_later(1000, noop)
    tloop.call_soon(tloop.stop)
    tloop.run_forever()
    tloop.call_soon(noop)              # dropped by close()
    before = tloop.stats()
    assert (before["ready"], before["timers_pending"]) == (1, 1)
    tloop.close()
    st = tloop.stats()
    assert {k: st[k] for k in COUNTERS} == {k: before[k] for k in COUNTERS}
    assert (st["ready"], st["timers_pending"], st["fd_watchers"],
            st["transports"]) == (0, 0, 0, 0)
    # uptime stops at close().
    time.sleep(0.02)
    assert tloop.stats()["uptime"] == st["uptime"]
    assert st["uptime"] >= before["uptime"]
    tloop.close()                      # idempotent: uptime unchanged
    assert tloop.stats()["uptime"] == st["uptime"]


@pytest.mark.tideloop_only
def test_print_debug_info(tloop, capsys):
    tideloop = import_tideloop()
    a, b = socket.socketpair()
    try:
        tloop.set_debug(True)
        tloop.slow_callback_duration = 0.25
        for i in range(7):
            tloop.call_soon(noop, i)
        tloop.call_soon(tloop.stop)
        tloop.run_forever()
        tloop.call_later(100, noop)
        tloop.call_later(100, noop).cancel()
        tloop.call_soon(noop)
        tloop.add_reader(a, noop, "reader-arg")
        out = io.StringIO()
        tloop.print_debug_info(file=out)
        text = out.getvalue()
        st = tloop.stats()
        assert text.startswith("---- tideloop debug info: <Loop running=False"
                               " closed=False debug=True> ----\n")
        assert ("tideloop %s on libuv %s, Python %s"
                % (tideloop.__version__, tideloop.libuv_version(),
                   sys.version.split()[0])) in text
        assert "debug: True  slow_callback_duration: 0.25 s" in text
        for label, value in (("iterations", 1), ("callbacks run", 8),
                             ("slow callbacks", 0), ("timers scheduled", 2),
                             ("timers fired", 0), ("timers cancelled", 1),
                             ("bytes read", 0), ("bytes written", 0),
                             ("ready callbacks", 1), ("pending timers", 1),
                             ("transports", 0)):
            assert re.search(r"^  %s: +%d$" % (label, value), text, re.M), \
                (label, text)
            key = {"callbacks run": "callbacks", "ready callbacks": "ready",
                   "pending timers": "timers_pending"}.get(
                       label, label.replace(" ", "_"))
            assert st[key] == value, key
        assert "  fd watchers:         1 (1 readers, 0 writers)" in text
        assert re.search(r"^    fd %d reader: <Handle noop\('reader-arg'\) "
                         r"at \S+test_observability\.py:\d+ created at "
                         r"\S+selector_events\.py:\d+>$" % a.fileno(),
                         text, re.M), text
        # Default file: sys.stdout, looked up at call time.
        tloop.print_debug_info()
        uptime = re.compile(r"^uptime: .*$", re.M)
        assert (uptime.sub("", capsys.readouterr().out)
                == uptime.sub("", text))
        tloop.remove_reader(a)
        tloop.close()
        out = io.StringIO()
        tloop.print_debug_info(out)
        assert "closed=True" in out.getvalue()
        assert re.search(r"^  ready callbacks: +0$", out.getvalue(), re.M)
    finally:
        a.close()
        b.close()


@pytest.mark.tideloop_only
def test_print_debug_info_while_running(tloop):
    outs = []

    def dump():
        out = io.StringIO()
        tloop.print_debug_info(out)
        outs.append(out.getvalue())

    def then():
        tloop.set_debug(True)
        tloop.call_soon(dump)
        tloop.call_soon(tloop.stop)

    tloop.call_soon(dump)
    tloop.call_soon(then)
    tloop.run_forever()
    thread = "  running in thread:   %d" % threading.get_ident()
    assert thread in outs[0].splitlines()
    assert "current handle" not in outs[0]       # not in debug mode
    assert thread in outs[1].splitlines()
    assert re.search(r"^  current handle:      <Handle .*dump\(\) at "
                     r"\S+test_observability\.py:\d+ created at "
                     r"\S+test_observability\.py:\d+>$", outs[1], re.M)
    out = io.StringIO()
    tloop.print_debug_info(out)
    assert "running in thread" not in out.getvalue()


# --------------------------------------------------------------------------
# Debug mode: the same output as stock asyncio
# --------------------------------------------------------------------------

TOOK = re.compile(r"took \d+\.\d+ seconds")
WHEN = re.compile(r"when=[-\d.e+]+")


def norm_log(records):
    out = []
    for r in records:
        ev = record_event(r)
        msg = WHEN.sub("when=T", TOOK.sub("took N seconds", ev[2]))
        out.append((ev[1], msg, ev[3], r.name))
    return out


def slow(seconds=0.15):
    time.sleep(seconds)


def test_slow_fd_callback_warning(compare):
    # I/O callbacks are timed and reported like any other handle.
    def scenario(loop):
        loop.set_debug(True)
        a, b = socket.socketpair()
        try:
            def on_readable():
                loop.remove_reader(a)
                a.recv(10)
                slow()
                loop.stop()

            with capture_asyncio_log() as records:
                loop.add_reader(a, on_readable)
                b.send(b"x")
                run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return ["ran"] + norm_log(records)

    trace = compare(scenario)
    assert re.fullmatch(
        r"Executing <Handle .*on_readable\(\) at \S+test_observability\.py:"
        r"\d+ created at \S+selector_events\.py:\d+> took N seconds",
        trace[1][1])


def test_fd_callback_source_traceback(compare):
    # The full source traceback of an add_reader()/add_writer() handle, as
    # the default exception handler logs it, ends in asyncio's
    # _add_reader()/_add_writer() frame on both loops.
    def scenario(loop):
        loop.set_debug(True)
        a, b = socket.socketpair()
        trace = []
        try:
            def boom(which):
                if which == "reader":
                    loop.remove_reader(a)
                else:
                    loop.remove_writer(a)
                raise ValueError(which)

            with capture_asyncio_log() as records:
                loop.add_writer(a, boom, "writer")
                loop.add_reader(a, boom, "reader")
                b.send(b"x")
                loop.call_later(0.05, loop.stop)
                run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace + norm_log(records)

    trace = compare(scenario)
    assert sum("source_traceback: Object created at" in ev[1]
               for ev in trace) == 2


def deep_add_reader(loop, sock, depth):
    if depth:
        return deep_add_reader(loop, sock, depth - 1)
    # (The public add_reader() returns None.)
    return loop._add_reader(sock.fileno(), noop)


def test_fd_callback_source_traceback_depth(compare):
    # Deeper than asyncio's DEBUG_STACK_DEPTH: the same frames are kept.
    def scenario(loop):
        loop.set_debug(True)
        a, b = socket.socketpair()
        try:
            h = deep_add_reader(loop, a, 15)
            frames = [(f.name, f.lineno) for f in h._source_traceback]
            loop.remove_reader(a)
        finally:
            a.close()
            b.close()
        return frames

    trace = compare(scenario)
    assert trace[-1][0] == "_add_reader"


def test_slow_signal_handler_warning(compare):
    # A signal handler's handle is created where asyncio creates it, in
    # unix_events.py's add_signal_handler().
    def scenario(loop):
        loop.set_debug(True)
        trace = []

        def on_signal(n):
            trace.append(("signal", n))
            slow()
            if n == 2:
                loop.stop()
            else:
                os.kill(os.getpid(), signal.SIGUSR1)

        def boom():
            loop.remove_signal_handler(signal.SIGUSR2)
            raise ValueError("in a signal handler")

        try:
            with capture_asyncio_log() as records:
                loop.add_signal_handler(signal.SIGUSR2, boom)
                loop.add_signal_handler(signal.SIGUSR1, on_signal, 1)
                trace.append(repr(loop._signal_handlers[signal.SIGUSR1]))
                loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
                loop.call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
                loop.call_later(0.1, loop.add_signal_handler,
                                signal.SIGUSR1, on_signal, 2)
                run_forever_guarded(loop)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            loop.remove_signal_handler(signal.SIGUSR2)
        return trace + norm_log(records)

    trace = compare(scenario)
    assert "created at " in trace[0] and "unix_events.py" in trace[0]


def raise_slowly(exc_type):
    slow()
    raise exc_type("slow and failing")


def test_slow_failing_callbacks(compare):
    # Slow and raising: the exception is reported, then the slow warning;
    # a BaseException stops the loop and is not timed.
    def scenario(loop):
        loop.set_debug(True)
        trace = []
        with capture_asyncio_log() as records:
            loop.call_soon(raise_slowly, ValueError)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
            loop.call_soon(raise_slowly, KeyboardInterrupt)
            try:
                run_forever_guarded(loop)
            except KeyboardInterrupt as exc:
                trace.append(("raised", str(exc)))
        return trace + norm_log(records)

    trace = compare(scenario)
    assert [ev[0] for ev in trace] == ["raised", "ERROR", "WARNING"]


def test_slow_threadsafe_and_cancelled_reprs(compare):
    def scenario(loop):
        loop.set_debug(True)
        trace = []
        with capture_asyncio_log() as records:
            def from_thread():
                loop.call_soon_threadsafe(slow)
                loop.call_soon_threadsafe(loop.stop)

            t = threading.Thread(target=from_thread)
            loop.call_soon(t.start)
            run_forever_guarded(loop)
            t.join()
            h = loop.call_soon(slow, 0.2)
            trace.append(WHEN.sub("when=T", repr(h)))
            h.cancel()
            trace.append(WHEN.sub("when=T", repr(h)))
            th = loop.call_later(10, slow)
            th.cancel()
            trace.append(WHEN.sub("when=T", repr(th)))
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
        return trace + norm_log(records)

    trace = compare(scenario)
    assert "cancelled" in trace[1]


async def slow_coro():
    await asyncio.sleep(0)
    slow()


def test_slow_task_step_warning(compare):
    def scenario(loop):
        loop.set_debug(True)

        async def main():
            t = loop.create_task(slow_coro(), name="slowpoke")
            await t

        with capture_asyncio_log() as records:
            run_until(loop, main(), timeout=10)
        return ["ran"] + norm_log(records)

    trace = compare(scenario)
    assert any("Executing <Task" in ev[1] and "slowpoke" in ev[1]
               for ev in trace[1:] if isinstance(ev, tuple))


def test_exception_context_handle_traceback(compare):
    # call_exception_handler() from inside a callback created in debug mode:
    # the default handler adds the running handle's source traceback.
    def scenario(loop):
        loop.set_debug(True)
        trace = []
        contexts = []

        def report():
            loop.call_exception_handler({"message": "from a callback"})

        def custom(lp, context):
            contexts.append(sorted(context))
            lp.default_exception_handler(context)

        with capture_asyncio_log() as records:
            loop.call_soon(report)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
            loop.set_exception_handler(custom)
            loop.call_soon(report)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
            loop.set_debug(False)
            loop.call_soon(report)
            loop.call_soon(loop.stop)
            run_forever_guarded(loop)
        for ev in norm_log(records):
            # Frames below this module differ between the runs only in
            # the harness (normalize drops those).
            trace.append(ev)
        return trace + contexts

    trace = compare(scenario)
    assert "handle_traceback: Handle created at (most recent call last)" \
        in trace[0][1]
    assert trace[-2] == ["message"]


# The frames of the loop's own machinery between run_until_complete() and
# the coroutine: asyncio's run_forever -> _run_once -> Handle._run, and
# tideloop's run_forever -> _run (C).  They necessarily differ.
LOOP_FRAMES = re.compile(
    r'  File "[^"]*(?:/asyncio/base_events\.py", line \d+, in '
    r'(?:run_forever|_run_once)|/asyncio/events\.py", line \d+, in _run|'
    r'/tideloop/_loop\.py", line \d+, in run_forever)\n    [^\n]*\n')


def drop_loop_frames(text, keep=None):
    """Without the loop's frames; with keep=N, only the N innermost frames
    are kept (the origin of a coroutine is DEBUG_STACK_DEPTH frames deep,
    loop frames included, so tideloop's reaches further out)."""
    text = LOOP_FRAMES.sub("", text)
    if keep is not None:
        head, sep, frames = text.partition("(most recent call last)\n")
        parts = re.split(r"(?m)^(?=  File )", frames)
        text = head + sep + "".join(parts[-keep:])
    return text


def test_never_awaited_coroutine_warning(compare):
    def scenario(loop):
        trace = []
        loop.set_debug(True)

        async def orphan():
            pass

        async def main():
            orphan()
            await asyncio.sleep(0)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_until(loop, main())
            gc.collect()
        for w in caught:
            if "never awaited" in str(w.message):
                trace.append((w.category.__name__,
                              drop_loop_frames(str(w.message), keep=3)))
        return ["ran"] + trace

    trace = compare(scenario)
    assert "Coroutine created at (most recent call last)" in trace[1][1]


def test_unclosed_transport_resource_warning(compare):
    def scenario(loop):
        trace = []

        async def main():
            server = await loop.create_server(asyncio.Protocol,
                                              "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            tr, _ = await loop.create_connection(asyncio.Protocol,
                                                 "127.0.0.1", port)
            server.close()
            return tr

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tr = run_until(loop, main())
            trace.append(tr.is_closing())
            # The loop's fd watchers keep it alive until close().
            loop.close()
            del tr
            gc.collect()
        for w in caught:
            if issubclass(w.category, ResourceWarning):
                msg = re.sub(r"<\w*SocketTransport ", "<TRANSPORT ",
                             str(w.message))
                msg = re.sub(r"(fd=)\d+", r"\1N", msg)
                msg = re.sub(r"\('127\.0\.0\.1', \d+\)", "ADDR", msg)
                trace.append((w.category.__name__, msg))
        return trace

    trace = compare(scenario)
    assert trace[-1] == ("ResourceWarning",
                         "unclosed transport <TRANSPORT fd=N>")


SLOW_CHILD = r'''
import logging, re, time
class Out(logging.Handler):
    def emit(self, record):
        msg = re.sub(r"took \d+\.\d+ seconds", "took N seconds",
                     record.getMessage())
        msg = re.sub(r"when=[-\d.e+]+", "when=T", msg)
        out(record.name, record.levelname, msg)
logging.getLogger("asyncio").addHandler(Out())
logging.getLogger("asyncio").setLevel(logging.WARNING)

def slow():
    time.sleep(0.15)

async def slow_step():
    await asyncio.sleep(0)
    time.sleep(0.15)

async def main():
    loop = asyncio.get_running_loop()
    out("debug", loop.get_debug(), loop.slow_callback_duration)
    loop.call_soon(slow)
    await asyncio.sleep(0.01)
    await loop.create_task(slow_step(), name="step")
    loop.call_later(0.001, slow)
    await asyncio.sleep(0.3)

loop = new_loop()
out("kind ok", kind_ok(loop), "debug", loop.get_debug())
try:
    loop.run_until_complete(main())
finally:
    loop.close()
'''


@pytest.mark.parametrize("how", ["DEBUG-env", "X-dev", "PYTHONDEVMODE",
                                 "plain"])
def test_slow_callbacks_logged_in_debug_child(compare_child, how):
    env, args = None, ()
    if how == "DEBUG-env":
        env = {"PYTHONASYNCIODEBUG": "1"}
    elif how == "PYTHONDEVMODE":
        env = {"PYTHONDEVMODE": "1"}
    elif how == "X-dev":
        args = ("-X", "dev")
    proc = compare_child(SLOW_CHILD, env=env, python_args=args)
    lines = proc.stdout.splitlines()
    on = how != "plain"
    assert lines[0] == "kind ok True debug %s" % on
    took = [ln for ln in lines if "Executing" in ln]
    if on:
        assert len(took) == 3, lines
        assert took[0].startswith(
            "asyncio WARNING Executing <Handle slow() at <string>:")
        assert "<Task" in took[1] and "name='step'" in took[1]
        assert took[2].startswith(
            "asyncio WARNING Executing <TimerHandle when=")
        assert all("created at <string>:" in t for t in took), took
    else:
        assert took == []


NEVER_AWAITED_CHILD = r'''
import gc, re, warnings
warnings.simplefilter("always")
LOOP_FRAMES = re.compile(%r)
def show(message, category, filename, lineno, file=None, line=None):
    out(category.__name__, LOOP_FRAMES.sub("", str(message)))
warnings.showwarning = show

async def orphan():
    pass

async def main():
    orphan()
    await asyncio.sleep(0)

loop = new_loop()
out("debug", loop.get_debug())
loop.run_until_complete(main())
gc.collect()
loop2 = new_loop()
del loop2
gc.collect()
loop.close()
'''


@pytest.mark.parametrize("how", ["DEBUG-env", "X-dev"])
def test_debug_child_warnings(compare_child, how):
    env, args = None, ()
    if how == "DEBUG-env":
        env = {"PYTHONASYNCIODEBUG": "1"}
    else:
        args = ("-X", "dev")
    proc = compare_child(NEVER_AWAITED_CHILD % LOOP_FRAMES.pattern, env=env,
                         python_args=args)
    text = proc.stdout
    assert "RuntimeWarning coroutine 'orphan' was never awaited" in text
    assert "Coroutine created at (most recent call last)" in text
    assert "ResourceWarning unclosed event loop <LOOP running=False " \
           "closed=False debug=True>" in normalize(text)


@pytest.mark.tideloop_only
def test_stats_pipe_bytes(tloop):
    """Pipe transports count what they read and write too (a direct write
    and the buffered rest, through a slow-to-drain pipe)."""
    import os
    payload = bytes(range(256)) * 4096 + b"end"      # > the pipe's buffer

    async def main():
        r, w = os.pipe()
        rtr, rproto = await tloop.connect_read_pipe(
            lambda: Collect(tloop), os.fdopen(r, "rb", 0))
        wtr, _ = await tloop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(w, "wb", 0))
        wtr.write(payload[:10])
        wtr.write(payload[10:])
        wtr.close()
        await asyncio.wait_for(rproto.lost, 10)
        rtr.close()
        return bytes(rproto.data)

    before = tloop.stats()
    assert run_until(tloop, main(), timeout=30) == payload
    d = delta(before, tloop.stats())
    assert d["bytes_written"] == len(payload)
    assert d["bytes_read"] == len(payload)
