"""Closing a socket while a sock_* operation waits on it (issue 15.3a).

The kernel drops a closed fd from the poll set without an event: stock
asyncio's sock_recv(), sock_sendall(), sock_accept() & co. then wait
forever.  tideloop fails the pending operation with OSError(EBADF) and
removes its fd watch (README, known differences).

Each operation is made to block for certain (no data, a full peer buffer, a
full listen backlog), then its socket is closed in one of four ways:
``close()``, ``detach()`` (the fd stays open, owned elsewhere), ``detach()``
and ``os.close()``, or ``os.close()`` behind the socket's back.

On stock asyncio the test only shows that the operation is still pending
after a while (a bounded wait that a slow machine cannot make fail); on
tideloop it waits for the exception, with no timeout.
"""
import asyncio
import errno
import os
import socket
import sys
import tempfile

import pytest

from support import PY, run_until
from netsupport import HOST4, NET_MARKS, nb_socketpair
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS

CLOSE_MODES = ("close", "detach", "detach+os.close", "os.close")
# How long stock asyncio is watched to still be pending.  Only a bound for
# the stock side: it cannot make the test fail on a slow machine.
STOCK_WATCH = 0.2


def fill_send_buffer(sock):
    """Write to the non-blocking `sock` until its buffers are full."""
    chunk = b"x" * 65536
    while True:
        try:
            sock.send(chunk)
        except BlockingIOError:
            return


def full_backlog_listener():
    """A TCP listener whose accept queue is full: a further connect() gets
    no answer (Linux drops the SYN), so it stays in progress."""
    listener = socket.socket()
    listener.bind((HOST4, 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    return listener, filler


def unix_dgram_pair(tmp):
    """A bound AF_UNIX datagram receiver and a sender whose datagrams to
    it fill its queue."""
    path = os.path.join(tmp, "rx")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    tx.setblocking(False)
    rx.setblocking(False)
    return rx, tx, path


# op name -> setup(loop, tmp) returning (socket to close, awaitable
# factory, other objects to close at the end).
def setup_recv(loop, tmp):
    a, b = nb_socketpair()
    return a, lambda: loop.sock_recv(a, 100), [b]


def setup_recv_into(loop, tmp):
    a, b = nb_socketpair()
    buf = bytearray(100)
    return a, lambda: loop.sock_recv_into(a, buf), [b]


def setup_recvfrom(loop, tmp):
    rx, tx, _ = unix_dgram_pair(tmp)
    return rx, lambda: loop.sock_recvfrom(rx, 100), [tx]


def setup_recvfrom_into(loop, tmp):
    rx, tx, _ = unix_dgram_pair(tmp)
    buf = bytearray(100)
    return rx, lambda: loop.sock_recvfrom_into(rx, buf), [tx]


def setup_sendall(loop, tmp):
    a, b = nb_socketpair()
    fill_send_buffer(a)
    return a, lambda: loop.sock_sendall(a, b"y" * 65536), [b]


def setup_sendto(loop, tmp):
    rx, tx, path = unix_dgram_pair(tmp)
    # Connected, the sender is writable only when the receiver's queue
    # has room (not so for an unconnected one, which asyncio would spin on).
    tx.connect(path)
    while True:
        try:
            tx.sendto(b"z" * 100, path)
        except BlockingIOError:
            break
    return tx, lambda: loop.sock_sendto(tx, b"z" * 100, path), [rx]


def setup_connect(loop, tmp):
    if not sys.platform.startswith("linux"):
        pytest.skip("a connect() that stays in progress needs Linux's "
                    "handling of a full listen backlog")
    listener, filler = full_backlog_listener()
    sock = socket.socket()
    sock.setblocking(False)
    addr = listener.getsockname()
    return sock, lambda: loop.sock_connect(sock, addr), [listener, filler]


def setup_accept(loop, tmp):
    listener = socket.socket()
    listener.bind((HOST4, 0))
    listener.listen()
    listener.setblocking(False)
    return listener, lambda: loop.sock_accept(listener), []


OPS = {
    "sock_recv": (setup_recv, (3, 0)),
    "sock_recv_into": (setup_recv_into, (3, 0)),
    "sock_recvfrom": (setup_recvfrom, (3, 11)),
    "sock_recvfrom_into": (setup_recvfrom_into, (3, 11)),
    "sock_sendall": (setup_sendall, (3, 0)),
    "sock_sendto": (setup_sendto, (3, 11)),
    "sock_connect": (setup_connect, (3, 0)),
    "sock_accept": (setup_accept, (3, 0)),
}


def close_socket(sock, mode):
    """Close `sock` the `mode` way; returns an fd still to close, or None."""
    if mode == "close":
        sock.close()
        return None
    if mode == "detach":
        return sock.detach()
    if mode == "detach+os.close":
        os.close(sock.detach())
        return None
    assert mode == "os.close"
    os.close(sock.fileno())
    return None


def watched_fds(loop):
    return {fd for fd, reader, writer in loop._watchers()}


async def run_case(loop, kind, op, mode, tmp):
    setup, _ = OPS[op]
    sock, start, others = setup(loop, tmp)
    fd = sock.fileno()
    leftover = None
    try:
        task = loop.create_task(start())
        # The operation tried its syscall, found it would block and now
        # waits on the fd.
        await asyncio.sleep(0)
        assert not task.done()
        if kind == "tideloop":
            assert loop._fd_events(fd)
        leftover = close_socket(sock, mode)
        if kind == "asyncio":
            # Stock asyncio: still pending.  Cancel it so the test ends.
            done, _ = await asyncio.wait({task}, timeout=STOCK_WATCH)
            assert not done, task
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return
        with pytest.raises(OSError) as info:
            await task
        assert info.value.errno == errno.EBADF
        assert f"{op}()" in str(info.value)
        # The fd watch is gone (for "detach" the fd is still open).
        assert fd not in watched_fds(loop)
    finally:
        if mode == "os.close":
            sock.detach()
        elif mode != "detach":
            sock.close()
        if leftover is not None:
            os.close(leftover)
        for other in others:
            other.close()


@pytest.mark.parametrize("mode", CLOSE_MODES)
@pytest.mark.parametrize("op", sorted(OPS))
def test_close_while_pending(new_loop, kind, op, mode):
    if PY < OPS[op][1]:
        pytest.skip(f"{op}() is new in Python "
                    f"{'.'.join(map(str, OPS[op][1]))}")
    loop = new_loop()
    with tempfile.TemporaryDirectory() as tmp:
        loop.run_until_complete(run_case(loop, kind, op, mode, tmp))


def test_fd_reused_after_failure(new_loop, kind):
    """After a failed operation the fd number is free to reuse: a new
    socket that gets it is watched normally."""
    if kind == "asyncio":
        pytest.skip("stock asyncio never fails the pending operation")
    loop = new_loop()

    async def main():
        a, b = nb_socketpair()
        fd = a.fileno()
        task = loop.create_task(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        assert loop._fd_events(fd)
        a.close()
        b.close()
        with pytest.raises(OSError):
            await task
        c, d = nb_socketpair()
        try:
            assert fd in (c.fileno(), d.fileno())
            reader = c if c.fileno() == fd else d
            writer = d if reader is c else c
            task = loop.create_task(loop.sock_recv(reader, 10))
            await asyncio.sleep(0)
            writer.send(b"hello")
            assert await task == b"hello"
        finally:
            c.close()
            d.close()

    loop.run_until_complete(main())


def test_other_operation_unaffected(new_loop, kind):
    """Closing one socket fails only the operation pending on it."""
    loop = new_loop()

    async def main():
        a, b = nb_socketpair()
        c, d = nb_socketpair()
        try:
            t1 = loop.create_task(loop.sock_recv(a, 10))
            t2 = loop.create_task(loop.sock_recv(c, 10))
            await asyncio.sleep(0)
            a.close()
            if kind == "tideloop":
                with pytest.raises(OSError):
                    await t1
            else:
                t1.cancel()
            assert not t2.done()
            d.send(b"data")
            assert await t2 == b"data"
        finally:
            for s in (a, b, c, d):
                s.close()

    loop.run_until_complete(main())


@pytest.mark.parametrize("dup", [False, True])
def test_fd_reused_while_pending(new_loop, kind, dup):
    """The socket of a pending sock_recv() is closed (its file maybe kept
    open by a dup) and a new socket gets the number and waits on it.  The
    registration names the old file: stock asyncio's new wait never sees
    its data (unless the old file, kept by a dup, is readable: then its
    events wake the new socket's callback again and again).  tideloop
    registers the fd again for the new socket, whose wait gets its data
    (and never the old file's events), and fails the old operation."""
    if kind == "asyncio":
        pytest.skip("stock asyncio never registers the new socket's file")
    loop = new_loop()

    async def main():
        a, b = nb_socketpair()
        fd = a.fileno()
        keep = a.dup() if dup else None
        old = loop.create_task(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        a.close()
        c, d = nb_socketpair()
        try:
            assert c.fileno() == fd
            new = loop.create_task(loop.sock_recv(c, 10))
            await asyncio.sleep(0)
            if keep is not None:
                b.send(b"old file")
                for _ in range(3):
                    await asyncio.sleep(0)
            assert not new.done()
            d.send(b"hello")
            assert await new == b"hello"
            with pytest.raises(OSError) as info:
                await old
            assert info.value.errno == errno.EBADF
            if keep is not None:
                assert keep.recv(100) == b"old file"
        finally:
            for s in (b, c, d, keep):
                if s is not None:
                    s.close()

    run_until(loop, main(), 10)
