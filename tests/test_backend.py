"""The loop's backends (ext/backend.h): epoll and libuv.

- choice: TIDELOOP_BACKEND, loop.stats()["backend"], print_debug_info(),
  the debug log line that stands for asyncio's "Using selector: ...";
- closing a watched fd at every point (before the first poll, after it,
  closed and replaced by another socket or a regular file, a dup closed
  while the file stays open), on each backend of this build, compared
  with stock asyncio: libuv 1.44 abort()s when a deferred registration
  fails, and the libuv backend must never get there;
- timers never run before their `when` on either backend;
- the portable build (TIDELOOP_PORTABLE=1) uses no Linux-only call.
"""
import asyncio
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from support import import_tideloop, run_forever_guarded, run_until
from netsupport import NET_MARKS, call_ev, nb_socketpair

pytestmark = NET_MARKS


def _backends():
    try:
        from tideloop import _core
    except ImportError:
        return ("epoll", "libuv")
    return _core.BACKENDS


BACKENDS = _backends()


@pytest.fixture(params=("epoll", "libuv"))
def backend(request, monkeypatch):
    """Each backend of this build in turn, through TIDELOOP_BACKEND (read
    at loop creation)."""
    if request.param not in BACKENDS:
        pytest.skip("this build has no %s backend" % request.param)
    monkeypatch.setenv("TIDELOOP_BACKEND", request.param)
    return request.param


def spin(loop, n):
    """Run n loop iterations (a call_soon chain), then return."""
    left = [n]

    def tick():
        left[0] -= 1
        if left[0] <= 0:
            loop.stop()
        else:
            loop.call_soon(tick)

    loop.call_soon(tick)
    run_forever_guarded(loop)


# --------------------------------------------------------------------------
# Choice and reporting
# --------------------------------------------------------------------------

@pytest.mark.tideloop_only
def test_stats_names_the_backend(backend):
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()
    try:
        assert loop.stats()["backend"] == backend
        spin(loop, 3)
        assert loop.stats()["backend"] == backend
    finally:
        loop.close()
    # A closed loop still says which backend it had.
    assert loop.stats()["backend"] == backend


@pytest.mark.tideloop_only
def test_default_backend(monkeypatch):
    monkeypatch.delenv("TIDELOOP_BACKEND", raising=False)
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()
    try:
        want = "epoll" if sys.platform.startswith("linux") and \
            "epoll" in BACKENDS else "libuv"
        assert loop.stats()["backend"] == want == BACKENDS[0]
    finally:
        loop.close()


@pytest.mark.tideloop_only
@pytest.mark.parametrize("value", ["kqueue", "EPOLL", "uv"])
def test_unknown_backend_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("TIDELOOP_BACKEND", value)
    tideloop = import_tideloop()
    with pytest.raises(ValueError) as info:
        tideloop.new_event_loop()
    assert str(info.value) == (
        "TIDELOOP_BACKEND=%s: expected 'epoll' or 'libuv'" % value)


@pytest.mark.tideloop_only
def test_epoll_missing_from_a_portable_build(monkeypatch):
    if "epoll" in BACKENDS:
        pytest.skip("this build has the epoll backend")
    monkeypatch.setenv("TIDELOOP_BACKEND", "epoll")
    tideloop = import_tideloop()
    with pytest.raises(ValueError, match="no epoll backend"):
        tideloop.new_event_loop()


@pytest.mark.tideloop_only
def test_debug_info_and_log_name_the_backend(backend, caplog):
    import io
    tideloop = import_tideloop()
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop = tideloop.new_event_loop()
    try:
        assert ("asyncio", logging.DEBUG, "Using backend: %s" % backend) in \
            caplog.record_tuples
        out = io.StringIO()
        loop.print_debug_info(file=out)
        assert "backend: %s\n" % backend in out.getvalue()
    finally:
        loop.close()


def test_stock_logs_its_selector(kind, caplog):
    """The line tideloop's "Using backend" stands for (so that a change of
    asyncio's shows up here)."""
    if kind != "asyncio":
        pytest.skip("stock asyncio's line")
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop = asyncio.new_event_loop()
    loop.close()
    assert any(m.startswith("Using selector: ")
               for _, _, m in caplog.record_tuples)


# --------------------------------------------------------------------------
# Closing watched fds at every point: same as stock asyncio
# --------------------------------------------------------------------------

def _fired(loop, fd, side, trace, name):
    """A callback that records its firing and removes itself."""
    def cb():
        remove = loop.remove_reader if side == "r" else loop.remove_writer
        trace.append((name, "fired", call_ev(remove, fd)))
    return cb


def test_close_before_first_poll(compare, backend):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        b.send(b"x")
        fd = a.fileno()
        trace.append(call_ev(loop.add_reader, fd,
                             _fired(loop, fd, "r", trace, "reader"))[0])
        a.close()
        spin(loop, 5)
        trace.append(("after", call_ev(loop.remove_reader, fd)))
        b.close()
        return trace
    compare(scenario)


def test_close_after_first_poll(compare, backend):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        fd = a.fileno()
        trace.append(call_ev(loop.add_reader, fd,
                             _fired(loop, fd, "r", trace, "reader"))[0])
        spin(loop, 3)
        b.send(b"x")
        a.close()
        spin(loop, 5)
        trace.append(("after", call_ev(loop.remove_reader, fd)))
        b.close()
        return trace
    compare(scenario)


def _close_dup_scenario(whens):
    def scenario(loop):
        trace = []
        for when in whens:
            a, b = nb_socketpair()
            d = os.dup(a.fileno())
            trace.append(call_ev(loop.add_reader, d,
                                 _fired(loop, d, "r", trace, when))[0])
            if when == "after poll":
                spin(loop, 3)
            os.close(d)
            b.send(b"x")
            spin(loop, 5)
            trace.append((when, call_ev(loop.remove_reader, d)))
            a.close()
            b.close()
        return trace
    return scenario


def test_close_dup_while_file_stays_open(compare, backend):
    """The fd number is closed but its file lives on in another fd: the
    kernel keeps the registration, and asyncio's callback still runs.
    (Before the first poll the libuv backend differs: see below.)"""
    whens = ("after poll",) if backend == "libuv" else (
        "before poll", "after poll")
    compare(_close_dup_scenario(whens))


@pytest.mark.tideloop_only
def test_close_dup_before_first_poll_libuv(backend):
    """The libuv backend registers a watch in the poll after add_reader()
    and checks the fd right before it: an fd number closed by then is
    dropped even if its file lives on in another fd, as asyncio on kqueue
    (macOS, the BSDs) drops it; asyncio on epoll would still report it.
    No abort, no callback, and remove_reader() still finds the reader."""
    if backend != "libuv":
        pytest.skip("the epoll backend matches asyncio on epoll (above)")
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()
    try:
        trace = _close_dup_scenario(("before poll",))(loop)
    finally:
        loop.close()
    assert trace == ["ok", ("before poll", ("ok", True))]


def test_closed_fd_replaced_by_another_socket(compare, backend):
    def scenario(loop):
        trace = []
        for when in ("before poll", "after poll"):
            a, b = nb_socketpair()
            c, d = nb_socketpair()
            fd = a.fileno()
            trace.append(call_ev(loop.add_reader, fd,
                                 _fired(loop, fd, "r", trace,
                                        when + " reader"))[0])
            if when == "after poll":
                spin(loop, 3)
            a.close()
            os.dup2(c.fileno(), fd)       # fd now names c's file
            d.send(b"x")
            # asyncio: modify() registers the new file for both sides.
            trace.append((when, "add_writer", call_ev(
                loop.add_writer, fd,
                _fired(loop, fd, "w", trace, when + " writer"))))
            spin(loop, 5)
            trace.append((when, "remove_reader",
                          call_ev(loop.remove_reader, fd)))
            trace.append((when, "remove_writer",
                          call_ev(loop.remove_writer, fd)))
            os.close(fd)
            for s in (b, c, d):
                s.close()
        return trace
    compare(scenario)


def test_closed_fd_replaced_by_a_regular_file(compare, backend):
    def scenario(loop):
        trace = []
        with tempfile.TemporaryFile() as f:
            for when in ("before poll", "after poll"):
                a, b = nb_socketpair()
                fd = a.fileno()
                trace.append(call_ev(loop.add_reader, fd,
                                     _fired(loop, fd, "r", trace, when))[0])
                if when == "after poll":
                    spin(loop, 3)
                a.close()
                os.dup2(f.fileno(), fd)   # fd now names a regular file
                spin(loop, 3)
                trace.append((when, "add_writer",
                              call_ev(loop.add_writer, fd, lambda: None)))
                spin(loop, 3)
                trace.append((when, "remove_writer",
                              call_ev(loop.remove_writer, fd)))
                trace.append((when, "remove_reader",
                              call_ev(loop.remove_reader, fd)))
                os.close(fd)
                b.close()
        return trace
    compare(scenario)


def test_close_with_both_sides_then_remove_one(compare, backend):
    def scenario(loop):
        trace = []
        for when in ("before poll", "after poll"):
            a, b = nb_socketpair()
            fd = a.fileno()
            trace.append(call_ev(loop.add_reader, fd, lambda: None)[0])
            trace.append(call_ev(loop.add_writer, fd, lambda: None)[0])
            if when == "after poll":
                spin(loop, 3)
            a.close()
            trace.append((when, "remove_reader",
                          call_ev(loop.remove_reader, fd)))
            spin(loop, 3)
            trace.append((when, "add_reader again",
                          call_ev(loop.add_reader, fd, lambda: None)[0]))
            trace.append((when, "remove_writer",
                          call_ev(loop.remove_writer, fd)))
            trace.append((when, "remove_reader",
                          call_ev(loop.remove_reader, fd)))
            b.close()
        return trace
    compare(scenario)


def test_fd_table_grows_past_high_fds(compare, backend):
    """The backends' tables by fd (tl_fd_table_reserve) grow for fds far
    past their first size (64), several doublings at once, keeping what
    was registered below and leaving the new slots empty: readers on a
    low fd, then a high one, then one in between, then each made
    readable in turn: each reader fires once and removes itself."""
    def scenario(loop):
        trace = []
        pairs, fds = [], []
        for low in (3, 1100, 300):
            a, b = nb_socketpair()
            fd = fcntl.fcntl(a.fileno(), fcntl.F_DUPFD_CLOEXEC, low)
            a.close()
            pairs.append(b)
            fds.append(fd)
        for i, fd in enumerate(fds):
            trace.append(call_ev(loop.add_reader, fd,
                                 _fired(loop, fd, "r", trace, "r%d" % i))[0])
            spin(loop, 2)
        for i in range(len(fds)):
            trace.append(("before send", i))
            pairs[i].send(b"x")
            spin(loop, 3)
        for fd in fds:
            trace.append(("removed again", call_ev(loop.remove_reader, fd)))
            os.close(fd)
        for b in pairs:
            b.close()
        return trace
    compare(scenario)


def test_close_inside_the_callback(compare, backend):
    """A reader closes its own fd and another watched one whose event is
    already queued in the same iteration."""
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        c, d = nb_socketpair()
        fa, fc = a.fileno(), c.fileno()

        def on_a():
            trace.append("a fired")
            trace.append(("remove a", call_ev(loop.remove_reader, fa)))
            a.close()
            c.close()             # still watched, its handle queued

        def on_c():
            trace.append("c fired")
            trace.append(("remove c", call_ev(loop.remove_reader, fc)))

        loop.add_reader(fa, on_a)
        loop.add_reader(fc, on_c)
        b.send(b"x")
        d.send(b"y")
        spin(loop, 5)
        trace.append(("remove c after", call_ev(loop.remove_reader, fc)))
        b.close()
        d.close()
        return trace
    compare(scenario)


def test_transport_fd_closed_under_it(kind, backend, new_loop):
    """A transport whose socket fd is closed behind its back: nothing
    crashes (libuv would abort() on a failed deferred registration) and
    the transport still closes."""
    loop = new_loop()
    a, b = socket.socketpair()

    class P(asyncio.Protocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        tr, pr = await loop.create_connection(P, sock=a)
        fd = a.fileno()
        os.close(os.dup(fd))        # a harmless close of a dup first
        tr.pause_reading()
        tr.resume_reading()
        await asyncio.sleep(0)
        tr.close()
        return await pr.lost

    assert run_until(loop, main()) is None
    b.close()


# --------------------------------------------------------------------------
# Timers: never early, on either backend
# --------------------------------------------------------------------------

@pytest.mark.tideloop_only
def test_timers_never_early(backend):
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()
    early = []

    def check(when):
        if loop.time() < when:
            early.append((loop.time(), when))

    async def main():
        for i in range(60):
            delay = (i % 7) * 0.0003    # sub-millisecond: libuv's ms clock
            when = loop.time() + delay
            loop.call_at(when, check, when)
            await asyncio.sleep(delay)
            assert loop.time() >= when

    try:
        run_until(loop, main())
    finally:
        loop.close()
    assert early == []


@pytest.mark.tideloop_only
def test_many_tiny_sleeps(backend):
    """A timer due before libuv polls (uv_run() runs due timers first)
    must not leave the poll blocked with nothing armed."""
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()

    async def main():
        for _ in range(3000):
            await asyncio.sleep(1e-6)
        return "done"

    try:
        assert run_until(loop, main()) == "done"
    finally:
        loop.close()


@pytest.mark.tideloop_only
def test_wakeup_from_thread(backend):
    import threading
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()

    async def main():
        fut = loop.create_future()
        t = threading.Thread(
            target=lambda: loop.call_soon_threadsafe(fut.set_result, 7))
        t.start()
        r = await fut
        t.join()
        return r

    try:
        assert run_until(loop, main()) == 7
    finally:
        loop.close()


# --------------------------------------------------------------------------
# The portable build
# --------------------------------------------------------------------------

# Linux-only calls a portable build (POSIX + libuv) must not use.
LINUX_ONLY = (
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "timerfd_create", "timerfd_settime",
    "timerfd_gettime", "eventfd", "eventfd_read", "eventfd_write",
    "signalfd", "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
    "accept4", "pipe2", "dup3", "inotify_init1", "splice", "tee",
    "sendmmsg", "recvmmsg", "memfd_create", "syscall", "prctl",
)


def _core_undefined_symbols():
    from tideloop import _core
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm (binutils)")
    out = subprocess.run([nm, "-D", "--undefined-only", _core.__file__],
                         check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if parts:
            names.add(parts[-1].split("@")[0])
    assert "PyModule_AddObjectRef" in names or "PyModule_AddObject" in \
        names, "nm output not understood:\n" + out
    return names


@pytest.mark.tideloop_only
def test_portable_build_uses_no_linux_only_call():
    import_tideloop()
    names = _core_undefined_symbols()
    if "epoll" in BACKENDS:
        # The default build does use them: the check below can fail.
        assert {"epoll_wait", "timerfd_settime", "eventfd"} <= names
        pytest.skip("not a portable build (make test-portable runs this)")
    assert sorted(names & set(LINUX_ONLY)) == []
    assert "uv_poll_start" in names and "uv_timer_start" in names


@pytest.mark.tideloop_only
def test_portable_build_runs_subprocesses(backend):
    """Without pidfd (a portable build never uses one) a child's exit is
    still seen."""
    tideloop = import_tideloop()
    loop = tideloop.new_event_loop()

    async def main():
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.exit(3)")
        return await p.wait()

    try:
        assert run_until(loop, main()) == 3
    finally:
        loop.close()
