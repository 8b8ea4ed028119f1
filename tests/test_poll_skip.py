"""The loop skips its non-blocking poll when nothing could be ready (no fd
watched, no DNS lookup in flight, no signal handler): what becomes ready
must still run in the iteration where asyncio runs it."""
import os
import signal
import socket
import threading

import pytest

from support import run_forever_guarded, run_scenario


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
