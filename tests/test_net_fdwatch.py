"""add_reader/add_writer/remove_reader/remove_writer: return values,
replacement, arguments, level triggering, ordering against other callbacks,
fds owned by transports and invalid fds.  Compared with stock asyncio."""
import os
import socket
import tempfile


from support import run_forever_guarded, run_until
from netsupport import (HOST4, NET_MARKS, Recorder, Scrub, call_ev, exc_ev,
                        is_standard_fd_in_use_message, nb_socketpair, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


def spin(loop, n):
    """Run n loop iterations (call_soon chains) and return."""
    left = [n]

    def tick():
        left[0] -= 1
        if left[0] <= 0:
            loop.stop()
        else:
            loop.call_soon(tick)

    loop.call_soon(tick)
    run_forever_guarded(loop)


def test_return_values(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            cb = lambda: None  # noqa: E731
            trace.append(("remove_reader unregistered",
                          call_ev(loop.remove_reader, a)))
            trace.append(("remove_writer unregistered",
                          call_ev(loop.remove_writer, a)))
            trace.append(("add_reader", call_ev(loop.add_reader, a, cb)))
            trace.append(("add_writer", call_ev(loop.add_writer, a, cb)))
            trace.append(("add_reader again",
                          call_ev(loop.add_reader, a, cb)))
            trace.append(("remove_reader", call_ev(loop.remove_reader, a)))
            trace.append(("remove_reader again",
                          call_ev(loop.remove_reader, a)))
            trace.append(("writer still", call_ev(loop.remove_writer, a)))
            trace.append(("remove_writer again",
                          call_ev(loop.remove_writer, a)))
            # int fds and socket objects name the same registration
            trace.append(("add_reader(int)",
                          call_ev(loop.add_reader, a.fileno(), cb)))
            trace.append(("remove_reader(sock)",
                          call_ev(loop.remove_reader, a)))
            trace.append(("add_writer(sock)",
                          call_ev(loop.add_writer, a, cb)))
            trace.append(("remove_writer(int)",
                          call_ev(loop.remove_writer, a.fileno())))
            # an object with fileno()
            class FileLike:
                def fileno(self):
                    return b.fileno()
            trace.append(("add_reader(filelike)",
                          call_ev(loop.add_reader, FileLike(), cb)))
            trace.append(("remove_reader(int of filelike)",
                          call_ev(loop.remove_reader, b.fileno())))
        finally:
            a.close()
            b.close()
        return trace

    trace = compare(scenario)
    assert ("add_reader", ("ok", None)) in trace
    assert ("remove_reader", ("ok", True)) in trace
    assert ("remove_reader again", ("ok", False)) in trace


def test_reader_with_args_and_replacement(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            def first(*args):
                trace.append(("first", args))

            def second(*args):
                trace.append(("second", args, a.recv(100)))
                loop.remove_reader(a)
                loop.stop()

            loop.add_reader(a, first, 1, "x")
            loop.add_reader(a, second, 2, "y", None)
            b.send(b"ping")
            run_forever_guarded(loop)
            trace.append(("after", call_ev(loop.remove_reader, a)))
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario)[0] == ("second", (2, "y", None), b"ping")


def test_writer_with_args_and_replacement(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            def first(*args):
                trace.append(("first", args))

            def second(*args):
                trace.append(("second", args))
                loop.remove_writer(a)
                loop.stop()

            loop.add_writer(a, first, "a")
            loop.add_writer(a, second, "b", 3)
            run_forever_guarded(loop)
            trace.append(("after", call_ev(loop.remove_writer, a)))
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario)[0] == ("second", ("b", 3))


def test_level_triggered_reader(compare):
    """A reader that does not consume its data runs again on every
    iteration, interleaved with call_soon callbacks as in asyncio."""
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            b.send(b"data")
            count = [0]

            def reader():
                count[0] += 1
                trace.append(("reader", count[0]))
                if count[0] == 4:
                    loop.remove_reader(a)
                    loop.stop()

            def ticker(i):
                trace.append(("tick", i))
                if i < 10:
                    loop.call_soon(ticker, i + 1)

            loop.add_reader(a, reader)
            loop.call_soon(ticker, 0)
            run_forever_guarded(loop)
            trace.append(("still there", a.recv(100)))
            # Consumed: the reader does not run again.
            loop.add_reader(a, reader)
            spin(loop, 3)
            trace.append(("count after consume", count[0]))
            loop.remove_reader(a)
        finally:
            a.close()
            b.close()
        return trace

    trace = compare(scenario)
    assert [ev for ev in trace if ev[0] == "reader"] == [
        ("reader", i) for i in range(1, 5)]


def test_level_triggered_writer(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            count = [0]

            def writer():
                count[0] += 1
                trace.append(("writer", count[0]))
                if count[0] == 3:
                    loop.remove_writer(a)
                    loop.stop()

            def ticker(i):
                trace.append(("tick", i))
                if i < 6:
                    loop.call_soon(ticker, i + 1)

            loop.add_writer(a, writer)
            loop.call_soon(ticker, 0)
            run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace

    compare(scenario)


def test_reader_and_writer_same_fd_order(compare):
    """Both ready in one iteration: the reader runs before the writer,
    I/O callbacks before expired timers, after earlier call_soon ones."""
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            b.send(b"x")

            def done():
                loop.remove_reader(a)
                loop.remove_writer(a)
                loop.stop()

            loop.call_soon(trace.append, "soon")
            loop.call_at(loop.time() - 1, trace.append, "timer")
            loop.add_writer(a, trace.append, "writer")
            loop.add_reader(a, trace.append, "reader")
            loop.call_soon(lambda: loop.call_soon(done))
            run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario) == ["soon", "reader", "writer", "timer"]


def test_remove_from_inside_callback_and_other_fd(compare):
    """A reader removed by another callback of the same iteration does
    not run (its handle is cancelled)."""
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        c, d = nb_socketpair()
        try:
            b.send(b"1")
            d.send(b"2")

            def first():
                trace.append("first")
                # the other reader has fired in this iteration as well
                trace.append(("removed other",
                              loop.remove_reader(c), loop.remove_reader(a)))

            loop.call_soon(first)
            loop.add_reader(a, trace.append, "reader a")
            loop.add_reader(c, trace.append, "reader c")
            spin(loop, 3)
        finally:
            for s in (a, b, c, d):
                s.close()
        return trace

    assert compare(scenario) == ["first", ("removed other", True, True)]


def test_reader_sees_peer_close(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            def reader():
                data = a.recv(100)
                trace.append(("read", data))
                if not data:
                    loop.remove_reader(a)
                    loop.stop()

            loop.add_reader(a, reader)
            b.send(b"last")
            b.close()
            run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario) == [("read", b"last"), ("read", b"")]


def test_fd_reused_after_remove(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        fd = a.fileno()
        loop.add_reader(a, trace.append, "old")
        trace.append(("removed", loop.remove_reader(fd)))
        a.close()
        b.close()
        c, d = nb_socketpair()
        try:
            trace.append(("fd reused", c.fileno() == fd or d.fileno() == fd))
            s = c if c.fileno() == fd else d
            other = d if s is c else c

            def reader():
                trace.append(("new", s.recv(10)))
                loop.remove_reader(s)
                loop.stop()

            loop.add_reader(s, reader)
            other.send(b"hi")
            run_forever_guarded(loop)
        finally:
            c.close()
            d.close()
        return trace

    assert compare(scenario)[-1] == ("new", b"hi")


def test_invalid_fds(compare):
    def scenario(loop):
        trace = []
        cb = lambda: None  # noqa: E731
        a, b = socket.socketpair()
        closed_fd = a.fileno()
        a.close()
        try:
            for label, fd in [("-1", -1), ("'x'", "x"), ("1.5", 1.5),
                              ("None", None), ("closed int", closed_fd),
                              ("closed socket object", a),
                              ("unopened fd", 100000),
                              ("huge int", 2 ** 40)]:
                for meth in ("add_reader", "add_writer"):
                    trace.append((meth, label,
                                  call_ev(getattr(loop, meth), fd, cb)))
                for meth in ("remove_reader", "remove_writer"):
                    trace.append((meth, label,
                                  call_ev(getattr(loop, meth), fd)))
        finally:
            b.close()
        return trace

    trace = compare(scenario)
    assert ("add_reader", "-1", ("raised", "ValueError",
                                 "Invalid file descriptor: -1", None)) in trace
    assert ("add_reader", "'x'", ("raised", "ValueError",
                                  "Invalid file object: 'x'", None)) in trace


def test_regular_file_is_refused(compare):
    def scenario(loop):
        trace = []
        cb = lambda: None  # noqa: E731
        with tempfile.TemporaryFile() as f:
            f.write(b"content")
            for meth in ("add_reader", "add_writer"):
                trace.append((meth, call_ev(getattr(loop, meth), f, cb)))
                trace.append((meth, "int",
                              call_ev(getattr(loop, meth), f.fileno(), cb)))
            for meth in ("remove_reader", "remove_writer"):
                trace.append((meth, call_ev(getattr(loop, meth), f)))
        # Directories cannot be watched either.
        fd = os.open(tempfile.gettempdir(), os.O_RDONLY)
        try:
            trace.append(("dir", call_ev(loop.add_reader, fd, cb)))
            trace.append(("dir remove", call_ev(loop.remove_reader, fd)))
        finally:
            os.close(fd)
        return trace

    assert compare(scenario)[0] == (
        "add_reader", ("raised", "PermissionError",
                       "[Errno 1] Operation not permitted", 1))


def test_pipe_and_dev_null(compare):
    """Pipes are watchable; /dev/null (a character device) is refused by
    epoll like a regular file."""
    def scenario(loop):
        trace = []
        r, w = os.pipe()
        os.set_blocking(r, False)
        try:
            def reader():
                trace.append(("pipe read", os.read(r, 10)))
                loop.remove_reader(r)
                loop.stop()

            loop.add_reader(r, reader)
            os.write(w, b"abc")
            run_forever_guarded(loop)
            # the write end of a pipe is writable
            loop.add_writer(w, lambda: (trace.append("pipe writable"),
                                        loop.remove_writer(w), loop.stop()))
            run_forever_guarded(loop)
        finally:
            os.close(r)
            os.close(w)
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            trace.append(("devnull", call_ev(loop.add_reader, fd,
                                             lambda: None)))
            trace.append(("devnull remove", call_ev(loop.remove_reader, fd)))
        finally:
            os.close(fd)
        return trace

    compare(scenario)


def test_closed_loop(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            loop.add_reader(a, lambda: None)
            loop.add_writer(b, lambda: None)
            loop.close()
            trace.append(("remove_reader", call_ev(loop.remove_reader, a)))
            trace.append(("remove_writer", call_ev(loop.remove_writer, b)))
            trace.append(("remove_reader unknown",
                          call_ev(loop.remove_reader, b)))
            trace.append(("add_reader", call_ev(loop.add_reader, a,
                                                lambda: None)))
            trace.append(("add_writer", call_ev(loop.add_writer, a,
                                                lambda: None)))
            trace.append(("add_reader -1", call_ev(loop.add_reader, -1,
                                                   lambda: None)))
        finally:
            a.close()
            b.close()
        return trace

    assert compare(scenario)[0] == ("remove_reader", ("ok", False))


def test_callback_exception_goes_to_handler(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()
        try:
            def handler(lp, context):
                trace.append(("handler", sorted(context),
                              context["message"].split(" ")[:3],
                              exc_ev(context.get("exception"))))
                loop.remove_reader(a)
                loop.stop()

            def bad(x):
                raise ZeroDivisionError(x)

            loop.set_exception_handler(handler)
            b.send(b"1")
            loop.add_reader(a, bad, "boom")
            run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace

    compare(scenario, min_events=1)


def test_coroutine_callback_refused(compare):
    def scenario(loop):
        trace = []
        a, b = nb_socketpair()

        async def coro():
            pass

        try:
            trace.append(("coroutine function",
                          call_ev(loop.add_reader, a, coro)))
            c = coro()
            trace.append(("coroutine object",
                          call_ev(loop.add_writer, a, c)))
            c.close()
            trace.append(("not callable", call_ev(loop.add_reader, a, 1)))
            loop.set_debug(True)
            trace.append(("debug coroutine function",
                          call_ev(loop.add_reader, a, coro)))
            trace.append(("debug not callable",
                          call_ev(loop.add_writer, a, 1)))
            trace.append(("cleanup", call_ev(loop.remove_reader, a),
                          call_ev(loop.remove_writer, a)))
        finally:
            a.close()
            b.close()
        return trace

    compare(scenario)


def test_fd_owned_by_transport(compare):
    def scenario(loop):
        trace = []
        listener = socket.socket()
        listener.bind((HOST4, 0))
        listener.listen(5)
        listener.setblocking(False)
        scrub = Scrub().port(listener.getsockname()[1])

        async def main():
            server_done = loop.create_future()

            async def serve():
                conn, _ = await loop.sock_accept(listener)
                server_done.set_result(conn)

            task = loop.create_task(serve())
            tr, pr = await wait(loop.create_connection(
                lambda: Recorder(loop), HOST4,
                listener.getsockname()[1]))
            conn = await wait(server_done)
            await task
            sock = tr.get_extra_info("socket")
            fd = sock.fileno()
            for meth in ("add_reader", "add_writer"):
                for label, obj in (("int", fd), ("transport socket", sock)):
                    try:
                        getattr(loop, meth)(obj, lambda: None)
                        trace.append((meth, label, "ok"))
                    except RuntimeError as exc:
                        trace.append((meth, label, "RuntimeError",
                                      is_standard_fd_in_use_message(
                                          str(exc), obj, tr)))
            for meth in ("remove_reader", "remove_writer"):
                try:
                    trace.append((meth, getattr(loop, meth)(fd)))
                except RuntimeError as exc:
                    trace.append((meth, "RuntimeError",
                                  is_standard_fd_in_use_message(
                                      str(exc), fd, tr)))
            # The transport still works.
            conn.sendall(b"still alive")
            await pr.wait_for_bytes(11)
            trace.append(("received", bytes(pr.data)))
            # A closing transport no longer owns its fd.
            tr.close()
            trace.append(("closing remove_reader",
                          call_ev(loop.remove_reader, fd, scrub=scrub)))
            await wait(pr.lost)
            trace.append(("events", pr.events))
            conn.close()

        try:
            run_until(loop, main(), 10)
        finally:
            listener.close()
        return trace

    trace = compare(scenario)
    assert ("add_reader", "int", "RuntimeError", True) in trace


def test_reader_after_socket_error(compare):
    """A socket error (EPOLLERR: here the ICMP 'port unreachable' of a
    connected UDP socket) wakes the reader, which sees the error; the
    watch stays armed: later errors and later data wake it again."""
    def scenario(loop):
        trace = []
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST4, 0))
        s.setblocking(False)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((HOST4, 0))
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind((HOST4, 0))
        closed_addr = closed.getsockname()
        closed.close()
        s.connect(closed_addr)
        try:
            def reader():
                try:
                    trace.append(("read", s.recv(100)))
                except OSError as exc:
                    trace.append(("read error", type(exc).__name__))
                loop.stop()

            loop.add_reader(s, reader)
            for i in range(3):
                s.send(b"ping %d" % i)
                run_forever_guarded(loop, 2)
            # now data from a real peer
            s.connect(peer.getsockname())
            peer.sendto(b"data", s.getsockname())
            run_forever_guarded(loop, 2)
            trace.append(("remove", loop.remove_reader(s)))
        finally:
            s.close()
            peer.close()
        return trace

    trace = compare(scenario)
    assert trace[-2] == ("read", b"data")
