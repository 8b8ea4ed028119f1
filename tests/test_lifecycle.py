"""Loop lifecycle: close() with pending work, unclosed loops, pending tasks
at close, signal handlers removed by close()."""
import asyncio
import gc
import warnings

from support import capture_asyncio_log, record_event, run_until


def test_close_discards_pending_callbacks_and_timers(compare):
    def scenario(loop, new_loop):
        trace = []
        h = loop.call_soon(trace.append, "never")
        t = loop.call_later(0.001, trace.append, "never either")
        loop.close()
        trace.append(("handles cancelled", h.cancelled(), t.cancelled()))
        # A fresh loop is unaffected.
        other = new_loop()
        trace.append(run_until(other, asyncio.sleep(0.002, "other ok")))
        return trace

    assert compare(scenario)[-1] == "other ok"


def test_unclosed_loop_resource_warning(compare):
    def scenario(loop):
        trace = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lost = type(loop)()
            lost.call_soon(print)
            del lost
            gc.collect()
            closed = type(loop)()
            closed.close()
            del closed
            gc.collect()
        trace.extend((w.category.__name__, str(w.message)) for w in caught
                     if issubclass(w.category, ResourceWarning))
        trace.append("end")
        return trace

    trace = compare(scenario)
    assert trace[0][0] == "ResourceWarning"
    assert trace[0][1].startswith("unclosed event loop <LOOP running=False")


def test_pending_task_destroyed_is_logged(compare):
    def scenario(loop):
        trace = []

        async def forever():
            await asyncio.sleep(30)

        with capture_asyncio_log() as records:
            task = loop.create_task(forever())
            run_until(loop, asyncio.sleep(0.001))
            trace.append(("pending", not task.done()))
            loop.close()
            del task
            gc.collect()
        for r in records:
            trace.append(record_event(r)[:2]
                         + (r.getMessage().split("\n")[0],))
        return trace

    assert compare(scenario)[1][2] == "Task was destroyed but it is pending!"


def test_close_removes_signal_handlers(compare_child):
    compare_child('''
import signal
loop = new_loop()
loop.add_signal_handler(signal.SIGUSR1, print)
loop.add_signal_handler(signal.SIGINT, print)
out("installed", signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None))
loop.close()
out("SIGUSR1 default", signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)
out("SIGINT default", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
out("wakeup fd reset", signal.set_wakeup_fd(-1))
# A second loop can take signals over again.
loop2 = new_loop()
got = []
loop2.add_signal_handler(signal.SIGUSR1, lambda: (got.append(1), loop2.stop()))
loop2.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
loop2.call_later(5, loop2.stop)
loop2.run_forever()
out("second loop got the signal", got)
loop2.close()
''')


def test_subclass_with_its_own_init_arguments_and_attributes(compare):
    # LoopBase's tp_new goes through object.__new__ (ext/loop.c: the
    # instance attributes' inline values on 3.11): a subclass's own
    # constructor arguments and its instance attributes work as on
    # asyncio's loops.
    def scenario(loop):
        class Sub(type(loop)):
            def __init__(self, tag, *, extra=None):
                super().__init__()
                self.tag = (tag, extra)

        sub = Sub("t", extra=1)
        try:
            sub.more = 2
            d = vars(sub)
            trace = [sub.tag, d["tag"], d["more"], "call_soon" in d]
            del sub.more
            trace.append(hasattr(sub, "more"))
            sub.call_soon = lambda *a, **k: "patched"
            trace.append(sub.call_soon(print))
            del sub.call_soon
            trace.append(run_until(sub, asyncio.sleep(0, "ran")))
        finally:
            sub.close()
        return trace

    assert compare(scenario) == [("t", 1), ("t", 1), 2, False, False,
                                 "patched", "ran"]
