"""The loop skips its non-blocking poll when nothing could be ready (no fd
watched, no DNS lookup in flight, no signal handler): what becomes ready
must still run in the iteration where asyncio runs it."""
import asyncio
import os
import signal
import socket
import threading

import pytest

from support import run_forever_guarded, run_scenario, run_until


def _chain(loop, trace, steps, at, action):
    """A chain of call_soon callbacks, one per iteration; `action` runs
    at step `at`."""
    def step(i):
        trace.append(("step", i))
        if i == at:
            action()
        if i < steps:
            loop.call_soon(step, i + 1)
        else:
            loop.stop()

    loop.call_soon(step, 0)


def test_reader_ready_mid_chain_runs_next_iteration(compare):
    def scenario(loop):
        trace = []
        a, b = socket.socketpair()
        try:
            def on_readable():
                trace.append(("readable", a.recv(10)))
                loop.remove_reader(a)

            loop.add_reader(a, on_readable)
            _chain(loop, trace, 6, 2, lambda: b.send(b"x"))
            run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace

    trace = compare(scenario)
    assert trace.index(("readable", b"x")) == trace.index(("step", 3)) + 1


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers need the main thread")
def test_signal_handler_mid_chain_runs_next_iteration(kind):
    def scenario(loop):
        trace = []
        loop.add_signal_handler(signal.SIGUSR1, trace.append, "signal")
        try:
            _chain(loop, trace, 6, 2,
                   lambda: os.kill(os.getpid(), signal.SIGUSR1))
            run_forever_guarded(loop)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        return trace

    # Not compare(): asyncio runs the handler one iteration later than
    # tideloop does (its self-pipe reader is a handle of its own).  What
    # counts here is that the skipped poll does not delay it further.
    trace = run_scenario(kind, scenario)
    assert trace.index(("step", 2)) < trace.index("signal") < \
        trace.index(("step", 5))


def test_threadsafe_mid_chain_runs_in_order(compare):
    def scenario(loop):
        trace = []

        def from_thread():
            th = threading.Thread(
                target=loop.call_soon_threadsafe,
                args=(trace.append, "threadsafe"))
            th.start()
            th.join()

        _chain(loop, trace, 6, 2, from_thread)
        run_forever_guarded(loop)
        return trace

    trace = compare(scenario)
    assert trace.index("threadsafe") == trace.index(("step", 3)) - 1


# A blocking poll first tries without releasing the GIL (loop.c,
# TL_POLL_TRY_SKIP): what it finds must be what the sleeping poll would
# have reported, and an expiry of the loop's own timer or a signal that
# it sees must not leave the loop asleep.

def test_ping_pong_found_without_sleeping(compare):
    """A ping-pong over a socketpair: each reply is ready by the time the
    loop would sleep (the try finds it), interleaved with call_soon and
    timer callbacks; the order is asyncio's."""
    def scenario(loop):
        trace = []
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        rounds = 40

        def on_a():
            data = a.recv(100)
            trace.append(("a", data))
            n = int(data)
            if n >= rounds:
                loop.remove_reader(a)
                loop.remove_reader(b)
                loop.call_later(0.001, loop.stop)
                return
            loop.call_soon(trace.append, ("soon", n))
            if n % 10 == 0:
                loop.call_later(0, trace.append, ("timer", n))
            a.send(b"%d" % (n + 1))

        def on_b():
            data = b.recv(100)
            trace.append(("b", data))
            b.send(b"%d" % (int(data) + 1))

        loop.add_reader(a, on_a)
        loop.add_reader(b, on_b)
        try:
            b.send(b"0")
            run_forever_guarded(loop)
        finally:
            a.close()
            b.close()
        return trace

    trace = compare(scenario)
    assert trace[-1] == ("a", b"40")


def test_short_timers_fire_with_fds_watched(compare):
    """Back-to-back short timers while an fd is watched (so every sleep
    goes through the backend): an expiry that the try sees is handled,
    not slept through."""
    def scenario(loop):
        a, b = socket.socketpair()
        fired = []

        async def main():
            for i in range(300):
                await asyncio.sleep(0.0002)
                fired.append(i)
            return len(fired)

        loop.add_reader(a, lambda: None)
        try:
            return [run_until(loop, main(), 30)]
        finally:
            loop.remove_reader(a)
            a.close()
            b.close()

    assert compare(scenario, min_events=1) == [300]


def test_reader_added_again_and_on_a_high_fd_runs_next_iteration(compare):
    """The loop counts its fd watchers (loop_may_have_io): a reader added,
    removed and another added, then one on an fd above the first table
    sizes, each sees data sent mid-chain in the next iteration."""
    def scenario(loop):
        trace = []
        a, b = socket.socketpair()
        high = os.dup2(a.fileno(), 700)    # above 256 and 512 fds
        try:
            loop.add_reader(a, trace.append, "never")
            loop.remove_reader(a)
            loop.add_reader(b, trace.append, "never either")
            loop.remove_reader(b)

            def on_readable(fd, label):
                trace.append((label, os.read(fd, 10)))
                loop.remove_reader(fd)

            def send_and_watch_high():
                loop.add_reader(high, on_readable, high, "high")
                b.send(b"y")

            loop.add_reader(a.fileno(), on_readable, a.fileno(), "low")
            _chain(loop, trace, 10, 2, lambda: b.send(b"x"))
            run_forever_guarded(loop)
            _chain(loop, trace, 10, 2, send_and_watch_high)
            run_forever_guarded(loop)
        finally:
            os.close(high)
            a.close()
            b.close()
        return trace

    trace = compare(scenario)
    step3 = [i for i, e in enumerate(trace) if e == ("step", 3)]
    assert trace.index(("low", b"x")) == step3[0] + 1
    assert trace.index(("high", b"y")) == step3[1] + 1
