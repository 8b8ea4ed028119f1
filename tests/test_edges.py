"""Rough edges from issue 15: what a loop costs in file descriptors (DNS
resources are created at the first lookup), and the edge cases of sockets
closed under the loop.  Each runs on stock asyncio and on tideloop."""
import asyncio
import os
import socket
import sys

import pytest

from support import describe_child, exc_event, run_child, run_until

# --------------------------------------------------------------------------
# File descriptors: a loop holds few; DNS's libuv loop only once used
# --------------------------------------------------------------------------

# lookup(loop, port): the loop's getaddrinfo() equals socket's.
LOOKUP = '''
import socket, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork + threads
def lookup(loop, port):
    got = loop.run_until_complete(asyncio.wait_for(loop.getaddrinfo(
        "localhost", port, type=socket.SOCK_STREAM), 10))
    return got == socket.getaddrinfo("localhost", port,
                                     type=socket.SOCK_STREAM)
'''

FD_CODE = LOOKUP + '''
def nfds():
    return len(os.listdir("/proc/self/fd"))
base = nfds()
loop = new_loop()
held = nfds() - base
out("held", held)
out("kind", kind_ok(loop))
out("lookup", lookup(loop, 80))
out("lookup again", lookup(loop, 81))
used = nfds() - base
out("grew", used - held)
loop.close()
out("closed loop", nfds() - base < used)
try:
    loop.run_until_complete(loop.getaddrinfo("localhost", 80))
except RuntimeError as exc:
    out("lookup on closed loop", exc)
second = new_loop()
out("new loop after close", lookup(second, 82))
second.close()
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="counts /proc/self/fd")
def test_loop_fds_and_lazy_dns(kind):
    """A fresh loop holds at most 5 fds (stock: 3, an epoll fd and the
    self-pipe; tideloop: epoll, timerfd, eventfd and the signal socket
    pair); DNS's libuv loop comes at the first lookup, works then, again,
    and on a new loop after close(), which gives the fds back.

    The libuv backend waits in that libuv loop, so it is made with the
    loop: 10 fds (the signal and wake-up socket pairs; libuv's epoll fd,
    its loop's signal pipe and its pool's eventfd; libuv's process-wide
    signal pipe, made with the first loop), and lookups add none: DNS
    uses the same libuv loop."""
    proc = run_child(kind, FD_CODE)
    assert proc.returncode == 0, describe_child(proc)
    lines = proc.stdout.splitlines()
    held = int(lines[0].split()[1])
    libuv = (kind == "tideloop" and
             os.environ.get("TIDELOOP_BACKEND") == "libuv")
    assert 1 <= held <= (10 if libuv else 5), describe_child(proc)
    if libuv:
        assert lines[4] == "grew 0", describe_child(proc)
    assert lines[1:4] + lines[5:] == [
        "kind True", "lookup True", "lookup again True", "closed loop True",
        "lookup on closed loop Event loop is closed",
        "new loop after close True"], describe_child(proc)


def test_dns_after_a_watched_fd_was_closed(kind, new_loop):
    """An fd closed while add_reader() watches it leaves a stale watcher;
    DNS's libuv loop, created later, may get that fd number.  Removing the
    stale watcher must not unwatch the libuv loop: lookups go on."""
    loop = new_loop()
    r, w = socket.socketpair()
    with w:
        fd = r.fileno()
        loop.add_reader(fd, lambda: None)
        r.close()

        async def lookup(port):
            got = await loop.getaddrinfo("localhost", port,
                                         type=socket.SOCK_STREAM)
            return got == socket.getaddrinfo("localhost", port,
                                             type=socket.SOCK_STREAM)

        assert run_until(loop, lookup(80), 10)
        loop.remove_reader(fd)
        assert run_until(loop, lookup(81), 10)


DNS_FORK_CODE = LOOKUP + '''
used = new_loop()          # resolved before the fork
out("parent before", lookup(used, 80))
unused = new_loop()        # never resolved before the fork
pid = os.fork()
if pid == 0:
    code = 1
    try:
        # The inherited loops are left alone (stock asyncio shares their
        # epoll sets with the parent); a new loop resolves in the child.
        child = new_loop()
        code = 0 if lookup(child, 81) and lookup(child, 82) else 3
        child.close()
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
out("child exit", os.waitstatus_to_exitcode(status))
out("parent after, used loop", lookup(used, 83))
out("parent after, unused loop", lookup(unused, 84))
used.close()
unused.close()
'''


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork")
def test_dns_after_fork(compare_child):
    proc = compare_child(DNS_FORK_CODE, timeout=60)
    assert proc.stdout.splitlines() == [
        "parent before True", "child exit 0",
        "parent after, used loop True", "parent after, unused loop True"]


@pytest.mark.tideloop_only
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork")
def test_dns_in_inherited_loop_after_fork():
    """tideloop re-creates its kernel objects in a fork child, the DNS libuv
    loop too (stock asyncio's inherited loop shares its epoll set and its
    executor's threads are gone): a loop that resolved before the fork, and
    one that did not, resolve in the child."""
    proc = run_child("tideloop", LOOKUP + '''
used = new_loop()
lookup(used, 80)
unused = new_loop()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        code = 0 if (lookup(used, 81) and lookup(unused, 82)
                     and lookup(used, 83)) else 3
        used.close()
        unused.close()
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
out("child exit", os.waitstatus_to_exitcode(status))
out("parent", lookup(used, 84), lookup(unused, 85))
''', timeout=60)
    assert proc.returncode == 0, describe_child(proc)
    assert proc.stdout.splitlines() == ["child exit 0", "parent True True"], \
        describe_child(proc)


# --------------------------------------------------------------------------
# A datagram endpoint on a socketpair(AF_UNIX, SOCK_DGRAM)
# --------------------------------------------------------------------------

class _Dgram(asyncio.DatagramProtocol):
    def __init__(self, loop, name, trace):
        self.name, self.trace = name, trace
        self.got = []
        self.lost = loop.create_future()

    def datagram_received(self, data, addr):
        self.got.append((data, addr))

    def error_received(self, exc):
        self.trace.append((self.name, "error_received", exc_event(exc)))

    def connection_lost(self, exc):
        self.trace.append((self.name, "lost",
                           exc if exc is None else exc_event(exc)))
        self.lost.set_result(None)


async def _until(loop, cond):
    """Run the loop until cond() holds (bounded by the scenario's guard)."""
    while not cond():
        await asyncio.sleep(0)


@pytest.mark.parametrize("first", ["a", "b"])
def test_socketpair_dgram_endpoint_exchange_and_close(compare, first):
    """Issue 15.3: endpoints on both ends of an unnamed AF_UNIX datagram
    pair exchange datagrams (through the sockets: the transports have no
    peer address, so their sendto() is a fatal TypeError, on both loops),
    then close in either order.  The exception handler sees exactly what
    stock asyncio's sees."""
    def scenario(loop):
        trace = []
        loop.set_exception_handler(lambda l, ctx: trace.append(
            ("handler", ctx["message"], exc_event(ctx.get("exception")))))

        async def main():
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            ta, pa = await loop.create_datagram_endpoint(
                lambda: _Dgram(loop, "a", trace), sock=a)
            tb, pb = await loop.create_datagram_endpoint(
                lambda: _Dgram(loop, "b", trace), sock=b)
            trace.append(("peername", ta.get_extra_info("peername")))
            for i in range(20):
                a.send(b"a%d" % i)
                b.send(b"b%d" % i)
                await _until(loop, lambda: len(pa.got) > i
                             and len(pb.got) > i)
            trace.append(("got", pa.got, pb.got))
            one, other = (ta, tb) if first == "a" else (tb, ta)
            one.close()
            await (pa.lost if first == "a" else pb.lost)
            for _ in range(5):
                await asyncio.sleep(0)
            other.sendto(b"after close")
            await pa.lost
            await pb.lost
            for _ in range(5):
                await asyncio.sleep(0)
            trace.append(("closed", a.fileno(), b.fileno()))

        run_until(loop, main())
        return trace

    trace = compare(scenario)
    assert ("handler", "Fatal write error on datagram transport",
            ("TypeError", "a bytes-like object is required, not "
             "'NoneType'")) in trace
    assert trace[-1] == ("closed", -1, -1)
