"""The servers' accept loop: batches of up to `backlog` connections per
readiness event, a copy of the server's context per connection, and
EMFILE (out of file descriptors) logged and retried after
ACCEPT_RETRY_DELAY without spinning and without dropping the listener.
Compared with stock asyncio."""
import asyncio
import contextvars
import gc
import json
import os
import socket
import sys
import weakref

import pytest

from support import run_until
from netsupport import HOST4, NET_MARKS, temp_dir, wait
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS


class Counted(asyncio.Protocol):
    def __init__(self, made):
        self.made = made

    def connection_made(self, transport):
        self.made.append(transport)


class SubSocket(socket.socket):
    """A socket subclass: tideloop keeps its own accept() and asyncio's
    transport factory for its connections."""


def _listener(where, d, queue=64, cls=socket.socket, proto=0):
    """A listening socket ("tcp4", "tcp6" or "unix" in the folder `d`)
    with a large kernel queue: clients connect before serving starts,
    whatever backlog create_server() gets.  `cls`: socket.socket or
    SubSocket."""
    if where == "unix":
        s = cls(socket.AF_UNIX)
        s.bind(os.path.join(d, "s"))
    else:
        s = cls(socket.AF_INET6 if where == "tcp6" else socket.AF_INET,
                socket.SOCK_STREAM, proto)
        s.bind(("::1" if where == "tcp6" else HOST4, 0))
    s.listen(queue)
    return s


def _serve(loop, where, factory, lsock, **kw):
    """create_unix_server() or create_server() on the listening `lsock`
    (a coroutine)."""
    if where == "unix":
        return loop.create_unix_server(factory, sock=lsock, **kw)
    return loop.create_server(factory, sock=lsock, **kw)


def _run_with_clients(loop, main):
    """run_until(main(d, clients)) in a temporary folder `d`; the client
    sockets main() puts in `clients` are closed after it, whatever
    happened."""
    clients = []
    with temp_dir() as d:
        try:
            return run_until(loop, main(d, clients), 20)
        finally:
            for c in clients:
                c.close()


async def _shut(server, transports):
    """Close the transports, then the server, and wait for it."""
    for tr in transports:
        tr.close()
    server.close()
    await wait(server.wait_closed())


@pytest.mark.parametrize("where", ["tcp4", "unix"])
@pytest.mark.parametrize("backlog", [1, 5, 100])
def test_backlog_batches(compare, where, backlog):
    """20 connections wait in the kernel's queue when serving starts: each
    readiness event accepts up to `backlog` of them, so between two turns
    of a call_soon ticker the protocol factory runs in groups of at most
    `backlog` (asyncio's `for _ in range(backlog)`)."""
    def scenario(loop):
        marks = []
        made = []

        def factory():
            marks.append("f")
            return Counted(made)

        def tick():
            marks.append("t")
            if len(made) < 20:
                loop.call_soon(tick)

        async def main(d, clients):
            lsock = _listener(where, d)
            for _ in range(20):
                c = socket.socket(lsock.family)
                c.connect(lsock.getsockname())
                clients.append(c)
            server = await _serve(loop, where, factory, lsock,
                                  backlog=backlog, start_serving=False)
            loop.call_soon(tick)
            await server.start_serving()
            while len(made) < 20:
                await asyncio.sleep(0)
            groups = [len(g) for g in "".join(marks).split("t") if g]
            families = {tr.get_extra_info("socket").family
                        for tr in made}
            await _shut(server, made)
            return [("groups", groups), ("families", sorted(families))]

        return _run_with_clients(loop, main)

    trace = compare(scenario)
    # 3.14+: backlog + 1 accepts per event.
    extra = 1 if sys.version_info >= (3, 14) else 0
    assert sum(trace[0][1]) == 20 and max(trace[0][1]) <= backlog + extra


VAR = contextvars.ContextVar("VAR", default="unset")


def test_context_per_connection(compare):
    """Each accepted connection gets its own copy of the server's context:
    what one connection's protocol sets is not seen by the next one, and
    the server's own value is seen by all."""
    def scenario(loop):
        seen = []
        made = []

        class P(asyncio.Protocol):
            def __init__(self):
                seen.append(("factory", VAR.get()))
                VAR.set(f"conn{len(made)}")
                made.append(self)

            def connection_made(self, transport):
                self.transport = transport
                seen.append(("made", VAR.get()))

        async def main():
            VAR.set("server")
            server = await loop.create_server(P, HOST4, 0)
            VAR.set("after create_server")
            port = server.sockets[0].getsockname()[1]
            for i in range(3):
                tr, _ = await wait(loop.create_connection(
                    asyncio.Protocol, HOST4, port))
                while len(made) <= i or not hasattr(made[i], "transport"):
                    await asyncio.sleep(0)
                tr.close()
                made[i].transport.close()
            server.close()
            await wait(server.wait_closed())
            return seen

        return run_until(loop, main(), 20)

    compare(scenario)


# The child lowers RLIMIT_NOFILE to what it has open and fills the rest,
# so that accept() fails with EMFILE.  The parent connects 3 clients.  The
# exception handler records each "out of system resource" message and,
# just after it, whether the listener is still in the poll set (it must
# not be: no spinning); the fds are freed at the second message, which
# comes after the retry re-added the listener; then the 3 connections are
# accepted.
EMFILE_CHILD = r'''
import errno, json, resource, socket
from asyncio import constants
constants.ACCEPT_RETRY_DELAY = 0.05
loop = new_loop()
messages = []
made = []
fillers = []

def handler(loop, context):
    exc = context.get("exception")
    messages.append((context["message"], getattr(exc, "errno", None),
                     type(context.get("socket")).__name__))
    fd = context["socket"].fileno()
    loop.call_soon(probe, fd)
    if sum(isinstance(m, tuple) for m in messages) == 2:
        for fd in fillers:
            os.close(fd)
        fillers.clear()

def probe(fd):
    # Right after a failed accept: the listener must be out of the poll
    # set until the retry (asyncio's selector key lookup; tideloop answers
    # it from its fd watchers).
    try:
        loop._selector.get_key(fd)
        messages.append("listener still polled")
    except KeyError:
        messages.append("listener not polled")

class P(asyncio.Protocol):
    def connection_made(self, tr):
        made.append(tr)

async def main():
    loop.set_exception_handler(handler)
    server = await loop.create_server(P, "127.0.0.1", 0, backlog=1)
    await asyncio.sleep(0.01)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    while True:
        try:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as e:
            assert e.errno == errno.EMFILE
            break
    out("port", server.sockets[0].getsockname()[1])
    while len(made) < 3:
        await asyncio.sleep(0.01)
    out("messages", json.dumps(messages))
    out("accepted", len(made), "serving", server.is_serving())
    for tr in made:
        tr.close()
    server.close()
    await server.wait_closed()

loop.run_until_complete(asyncio.wait_for(main(), 30))
loop.close()
out("done")
'''


def _run_emfile_child(kind):
    """The child's output lines after "port"; the child exits by itself
    (its main() is bounded by wait_for)."""
    from support import describe_child, kill_child, spawn_child
    proc = spawn_child(kind, EMFILE_CHILD)
    clients = []
    try:
        line = proc.stdout.readline()
        assert line.startswith("port "), describe_child(proc) + line
        port = int(line.split()[1])
        for _ in range(3):
            clients.append(socket.create_connection((HOST4, port)))
        out, err = proc.communicate(timeout=40)
    except BaseException:
        kill_child(proc)
        raise
    finally:
        for c in clients:
            c.close()
    assert proc.returncode == 0, (out, err)
    return out.splitlines()


def test_emfile_retry(kind):
    """Out of fds: asyncio's message (once per failed accept, here
    backlog=1), the reader removed and re-added after ACCEPT_RETRY_DELAY,
    the listener kept; once fds are free the pending clients are
    accepted."""
    got = _run_emfile_child(kind)
    ref = _run_emfile_child("asyncio")
    assert got == ref
    msgs = json.loads(ref[0].split(" ", 1)[1])
    msg = ["socket.accept() out of system resource", 24, "TransportSocket"]
    if sys.version_info >= (3, 14):
        # backlog + 1 = 2 accepts per event: both fail, in one event.
        assert msgs == [msg, msg] + ["listener not polled"] * 2
    else:
        assert msgs == [msg, "listener not polled"] * 2
    assert ref[1] == "accepted 3 serving True"


@pytest.mark.parametrize("task_factory", [None, "eager"])
@pytest.mark.parametrize("where", ["tcp4", "unix"])
def test_accept_ordering(compare, where, task_factory):
    """asyncio makes each accepted connection's protocol and transport in
    a Task, one loop iteration after the accept, and connection_made() one
    more iteration later.  A call_soon() ticker pins the iterations; the
    factory, connection_made() and data_received() each schedule a
    call_soon() too: all in the same order as under asyncio, for clients
    queued before serving starts and for one connecting while the loop
    runs."""
    if task_factory == "eager" and sys.version_info < (3, 12):
        pytest.skip("asyncio.eager_task_factory is 3.12+")

    def scenario(loop):
        events = []
        made = []
        ticks = [0]

        class P(asyncio.Protocol):
            def __init__(self):
                self.n = len(made)
                made.append(self)
                events.append(f"factory{self.n}")
                loop.call_soon(events.append, f"factory{self.n}-soon")

            def connection_made(self, transport):
                self.transport = transport
                events.append(f"made{self.n}")
                loop.call_soon(events.append, f"made{self.n}-soon")

            def data_received(self, data):
                events.append(f"data{self.n}:{data.decode()}")

        async def main(d, clients):
            lsock = _listener(where, d)

            def connect(i):
                c = socket.socket(lsock.family)
                c.connect(lsock.getsockname())
                c.sendall(b"c%d" % i)
                clients.append(c)

            def tick():
                ticks[0] += 1
                events.append(f"tick{ticks[0]}")
                if ticks[0] == 6:
                    connect(len(clients))
                    events.append("connected")
                if ticks[0] < 14:
                    loop.call_soon(tick)

            if task_factory == "eager":
                # 3.12+: the accept task runs at once, inside the accept
                # (tideloop then keeps asyncio's accept loop).
                loop.set_task_factory(asyncio.eager_task_factory)
            for i in range(3):
                connect(i)
            server = await _serve(loop, where, P, lsock,
                                  start_serving=False)
            loop.call_soon(tick)
            loop.call_soon(events.append, "before start_serving")
            await server.start_serving()
            events.append("start_serving returned")
            while ticks[0] < 14 or len(made) < 4:
                await asyncio.sleep(0)
            await _shut(server, [p.transport for p in made])
            return events

        return _run_with_clients(loop, main)

    trace = compare(scenario)
    assert trace.index("factory0") < trace.index("made0")


@pytest.mark.parametrize("cls", [socket.socket, SubSocket])
def test_factory_keyboard_interrupt(compare, cls):
    """KeyboardInterrupt from the protocol factory leaves the loop's
    run_until_complete() (asyncio: from the accept task); the other
    connections accepted with it are still made when the loop runs
    again.  Only what both loops share is compared: tideloop makes the
    rest of the run at a later call_soon(), after the callbacks scheduled
    meanwhile (README, known differences)."""
    def scenario(loop):
        made = []
        calls = [0]
        events = []

        class P(asyncio.Protocol):
            def __init__(self):
                calls[0] += 1
                if calls[0] == 2:
                    raise KeyboardInterrupt
                self.n = calls[0]

            def connection_made(self, transport):
                self.transport = transport
                made.append(self)

        async def until_made(n):
            while len(made) < n:
                await asyncio.sleep(0)

        async def start(lsock):
            return await loop.create_server(P, sock=lsock,
                                            start_serving=False)

        async def serve(server):
            await server.start_serving()
            await until_made(2)

        async def stop(server):
            for p in made:
                p.transport.close()
            server.close()
            await wait(server.wait_closed())

        lsock = _listener("tcp4", None, cls=cls)
        clients = []
        try:
            for _ in range(3):
                c = socket.socket(lsock.family)
                c.connect(lsock.getsockname())
                clients.append(c)
            server = run_until(loop, start(lsock), 20)
            try:
                loop.run_until_complete(serve(server))
            except KeyboardInterrupt:
                events.append("KeyboardInterrupt")
            run_until(loop, until_made(2), 20)
            events.append(("made", sorted(p.n for p in made),
                           "factory calls", calls[0]))
            run_until(loop, stop(server), 20)
            return events
        finally:
            for c in clients:
                c.close()

    compare(scenario)


def _burst_clients(lsock, where, d, n):
    """`n` connected clients; on Unix sockets one bound to a path and one
    to an abstract name, whose peernames the server sees as str and
    bytes (the others are unnamed: '')."""
    clients = []
    for i in range(n):
        c = socket.socket(lsock.family)
        if where == "unix" and i == 0:
            c.bind(os.path.join(d, "client"))
        elif where == "unix" and i == 1 and sys.platform == "linux":
            c.bind(b"\0tideloop-accept-%d" % os.getpid())
        c.connect(lsock.getsockname())
        clients.append(c)
    return clients


@pytest.mark.parametrize("where", ["tcp4", "tcp6", "unix"])
def test_burst_all_accepted(compare, where):
    """150 connections wait when serving starts, more than the default
    backlog (100): all are accepted, over more than one readiness event.
    Each transport's socket is what asyncio makes of socket.accept()
    (family, type, proto, timeout 0, non-blocking, non-inheritable,
    TCP_NODELAY as asyncio sets it: not here, where the listener was made
    with proto 0), and its peername is the client's address (str or
    bytes for Unix sockets, (host, port, flowinfo, scope_id) for IPv6)."""
    from netsupport import has_ipv6
    if where == "tcp6" and not has_ipv6():
        pytest.skip("no IPv6 loopback")
    n = 150

    def scenario(loop):
        made = []

        async def main(d, clients):
            lsock = _listener(where, d, n + 10)
            clients += _burst_clients(lsock, where, d, n)
            server = await _serve(loop, where, lambda: Counted(made),
                                  lsock)
            while len(made) < n:
                await asyncio.sleep(0)
            # Unnamed Unix clients all have the address ''.
            names = {c.getsockname(): i for i, c in enumerate(clients)}
            names[""] = "unnamed"
            seen = []
            for tr in made:
                s = tr.get_extra_info("socket")
                peer = tr.get_extra_info("peername")
                nodelay = (None if where == "unix" else s.getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
                seen.append((
                    names.get(peer), type(peer).__name__,
                    str(s.family), str(s.type), s.proto,
                    s._sock.gettimeout(),  # TransportSocket: always 0
                    os.get_blocking(s.fileno()),
                    os.get_inheritable(s.fileno()), nodelay,
                    tr.get_extra_info("sockname") == lsock.getsockname()
                    if where != "tcp6" else None))
            await _shut(server, made)
            return sorted(seen, key=lambda e: (
                not isinstance(e[0], int), e[0]
                if isinstance(e[0], int) else 0))

        return _run_with_clients(loop, main)

    trace = compare(scenario)
    named = 2 if where == "unix" and sys.platform == "linux" else 1
    want = (list(range(named)) + ["unnamed"] * (n - named)
            if where == "unix" else list(range(n)))
    assert [e[0] for e in trace] == want


@pytest.mark.parametrize("cls", [socket.socket, SubSocket])
def test_factory_raises(compare, cls):
    """A protocol factory that raises: outside debug mode nothing is
    reported, that connection is closed (its client reads EOF), and the
    connections accepted with it are made."""
    def scenario(loop):
        made = []
        events = []
        calls = [0]

        def factory():
            calls[0] += 1
            if calls[0] == 2:
                raise ValueError("no protocol")
            return Counted(made)

        async def main(d, clients):
            loop.set_exception_handler(
                lambda lp, ctx: events.append(("handler", ctx["message"])))
            # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on its
            # connections.
            lsock = _listener("tcp4", None, cls=cls,
                              proto=socket.IPPROTO_TCP)
            clients += _burst_clients(lsock, "tcp4", None, 3)
            server = await loop.create_server(factory, sock=lsock)
            while len(made) < 2:
                await asyncio.sleep(0)
            for _ in range(3):
                await asyncio.sleep(0)
            eof = []
            for c in clients:
                c.setblocking(False)
                try:
                    eof.append(c.recv(1) == b"")
                except BlockingIOError:
                    eof.append(False)
            events.append(("eof", eof, "calls", calls[0]))
            for tr in made:
                s = tr.get_extra_info("socket")
                events.append((
                    "made", type(s._sock).__name__, s.proto,
                    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
                    tr.get_extra_info("peername") in
                    [c.getsockname() for c in clients]))
            await _shut(server, made)
            return events

        return _run_with_clients(loop, main)

    compare(scenario, min_events=1)


class Lost(asyncio.Protocol):
    """Records connection_made/connection_lost in `events`."""

    def __init__(self, made, events):
        self.made = made
        self.events = events

    def connection_made(self, transport):
        self.transport = transport
        self.made.append(transport)
        self.events.append("made")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))


def _accepted_state(loop, tr, lsock, client):
    """What asyncio's _SelectorSocketTransport.__init__ leaves on an
    accepted connection's transport: its extra info, write buffer limits,
    flow control state, and its loop._transports entry (a KeyedRef to the
    transport under its fd, with the dictionary's own callback)."""
    s = tr.get_extra_info("socket")
    fd = s.fileno()
    ref = loop._transports.data[fd]
    return [
        ("socket", type(s).__name__, str(s.family), str(s.type), s.proto,
         s._sock.gettimeout(), s._sock._io_refs, s._sock._closed),
        ("sockname", tr.get_extra_info("sockname") == lsock.getsockname()),
        ("peername", tr.get_extra_info("peername") == client.getsockname()),
        ("extra keys", sorted(tr._extra)),
        ("limits", tr.get_write_buffer_limits(), tr._protocol_paused,
         tr._loop is loop),
        ("_transports", loop._transports.get(fd) is tr,
         type(ref).__name__, ref.key == fd, ref() is tr,
         ref.__callback__ is loop._transports._remove),
    ]


@pytest.mark.parametrize("where", ["tcp4", "tcp6", "unix"])
def test_accepted_transport_life(compare, where):
    """An accepted connection's transport from start to end, as asyncio
    makes and ends it: its state (_accepted_state), then close(): the
    socket object is closed after connection_lost() unless a makefile()
    still holds it (socket.close()'s _io_refs), the server's wait_closed()
    waits for the connection as asyncio's does on this Python, and the
    loop._transports entry goes with the transport."""
    from netsupport import has_ipv6
    if where == "tcp6" and not has_ipv6():
        pytest.skip("no IPv6 loopback")

    def scenario(loop):
        made = []
        events = []

        async def main(d, clients):
            lsock = _listener(where, d)
            clients += _burst_clients(lsock, where, d, 2)
            server = await _serve(loop, where, lambda: Lost(made, events),
                                  lsock)
            while len(made) < 2:
                await asyncio.sleep(0)
            events.extend(_accepted_state(loop, made[0], lsock, clients[0]))
            raw = [tr.get_extra_info("socket")._sock for tr in made]
            fds = [s.fileno() for s in raw]
            held = raw[1].makefile("rb")  # _io_refs 1: close() waits
            server.close()
            closed = asyncio.ensure_future(server.wait_closed())
            for _ in range(3):
                await asyncio.sleep(0)
            events.append(("server closed", closed.done(),
                           server._waiters is None,
                           getattr(server, "_active_count", None)))
            for tr in made:
                tr.close()
                events.append(("closing", tr.is_closing(),
                               tr.get_extra_info("socket").fileno() != -1))
            for _ in range(3):
                await asyncio.sleep(0)
            events.append(("after lost", [s.fileno() == -1 for s in raw],
                           [s._closed for s in raw], closed.done(),
                           server._waiters is None,
                           getattr(server, "_active_count", None)))
            held.close()
            await wait(closed)
            events.append(("held closed", raw[1].fileno()))
            del made[:], tr
            gc.collect()
            events.append(("entries", [fd in loop._transports.data
                                       for fd in fds]))
            return events

        return _run_with_clients(loop, main)

    trace = compare(scenario)
    assert ("after lost", [True, False], [True, True], True, True,
            0 if sys.version_info < (3, 13) else None) in trace


def test_accepted_transport_dies_while_iterated(compare):
    """A closed accepted transport dropped while loop._transports is
    iterated: up to 3.13 its entry stays until the iteration ends (the
    WeakValueDictionary defers the removal), then goes; from 3.14 the
    dictionary iterates a copy and the entry goes at once."""
    def scenario(loop):
        made = []
        events = []

        async def main(d, clients):
            lsock = _listener("tcp4", d)
            clients += _burst_clients(lsock, "tcp4", d, 2)
            server = await _serve(loop, "tcp4", lambda: Lost(made, events),
                                  lsock)
            while len(made) < 2:
                await asyncio.sleep(0)
            fds = [tr.get_extra_info("socket").fileno() for tr in made]
            for tr in made:
                tr.close()
            for _ in range(3):
                await asyncio.sleep(0)
            seen = []
            victim = [made.pop(0)]
            # keys(): its generator holds no transport while suspended.
            for fd in loop._transports.keys():
                if victim and loop._transports.data[fd]() is victim[0]:
                    del victim[:]
                    gc.collect()
                    seen.append(("dropped", fd == fds[0],
                                 fds[0] in loop._transports.data,
                                 len(getattr(loop._transports,
                                             "_pending_removals", ()))))
            events.append(seen)
            events.append(("after", [fd in loop._transports.data
                                     for fd in fds]))
            await _shut(server, [])
            made.clear()
            return events

        return _run_with_clients(loop, main)

    trace = compare(scenario)
    deferred = hasattr(weakref.WeakValueDictionary(), "_pending_removals")
    assert trace[-2] == [("dropped", True, deferred, int(deferred))]


def _batch(loop, lsock, n):
    """loop._accept_batch() on the listener `lsock`, `n` tries, as
    _loop.py calls it: (peers accepted, exc, tries); the accepted sockets
    are closed."""
    run, exc, tries = loop._accept_batch(
        socket.socket, lsock.family, lsock.type | socket.SOCK_NONBLOCK,
        lsock.proto, lsock.fileno(), n, False)
    for conn in run[::2]:
        conn.close()
    return len(run) // 2, exc, tries


@pytest.mark.parametrize("where", ["tcp4", "tcp6", "unix"])
@pytest.mark.parametrize("proto", [0, socket.IPPROTO_TCP])
def test_batch_stops_at_queue_length(where, proto):
    """A TCP accept batch ends when it has taken what the listener's queue
    held (TCP_INFO), without the accept4() that fails with EAGAIN: for
    that failure the kernel makes and destroys a whole socket.  A Unix
    listener, and an empty queue, still end on the failed try, as
    asyncio's loop does; a batch of fewer tries than connections takes
    that many."""
    import tideloop
    from netsupport import has_ipv6
    if where == "tcp6" and not has_ipv6():
        pytest.skip("no IPv6 loopback")
    if where == "unix" and proto:
        pytest.skip("no protocol number for Unix sockets")
    if not hasattr(tideloop.Loop, "_accept_batch"):
        pytest.skip("no C accept loop in this build")
    loop = tideloop.new_event_loop()
    clients = []
    try:
        with temp_dir() as d:
            lsock = _listener(where, d, proto=proto)
            lsock.setblocking(False)  # as create_server() makes it
            with lsock:
                clients += _burst_clients(lsock, where, d, 5)
                failed = 1 if where == "unix" else 0
                assert _batch(loop, lsock, 3) == (3, None, 3)
                assert _batch(loop, lsock, 100) == (2, None, 2 + failed)
                assert _batch(loop, lsock, 100) == (0, None, 1)
    finally:
        for c in clients:
            c.close()
        loop.close()


@pytest.mark.parametrize("kind_", ["tcp", "udp"])
def test_transport_family_the_socket_holds(compare, kind_):
    """A transport goes by the address family its socket object holds,
    read without a syscall: on an IPv4 socket object that says AF_INET6
    (socket.socket(..., fileno=fd) takes the family it is given) the
    addresses a transport reports are still what asyncio reports, the
    ones the kernel gives."""
    def scenario(loop):
        events = []

        async def tcp():
            lsock = socket.socket()
            lsock.bind((HOST4, 0))
            lsock.listen(1)
            client = socket.create_connection(lsock.getsockname())
            conn, _ = lsock.accept()
            lsock.close()
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, 0,
                                 fileno=conn.detach())
            got = asyncio.Queue()

            class P(asyncio.Protocol):
                def data_received(self, data):
                    got.put_nowait(data)

            tr, _ = await loop.connect_accepted_socket(P, sock)
            events.append(("family", str(sock.family)))
            events.append(("sockname", tr.get_extra_info("sockname") ==
                           client.getpeername()))
            events.append(("peername", tr.get_extra_info("peername") ==
                           client.getsockname()))
            client.sendall(b"ping")
            events.append(("data", await wait(got.get())))
            tr.close()
            client.close()

        async def udp():
            raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            raw.bind((HOST4, 0))
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, 0,
                                 fileno=raw.detach())
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind((HOST4, 0))
            got = asyncio.Queue()

            class P(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    got.put_nowait((data, addr == peer.getsockname()))

            tr, _ = await loop.create_datagram_endpoint(P, sock=sock)
            events.append(("family", str(sock.family)))
            peer.sendto(b"ping", tr.get_extra_info("sockname")[:2])
            events.append(("datagram", await wait(got.get())))
            tr.close()
            peer.close()

        async def main():
            await (tcp() if kind_ == "tcp" else udp())
            await asyncio.sleep(0)
            return events

        return run_until(loop, main(), 20)

    trace = compare(scenario)
    assert trace[-1] in (("data", b"ping"), ("datagram", (b"ping", True)))
