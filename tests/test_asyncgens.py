"""Async generators: hooks while the loop runs, shutdown_asyncgens()."""
import asyncio
import gc
import sys
import warnings

from support import capture_asyncio_log, record_event, run_until


def make_agen(trace, name, fail_in_finally=False):
    async def agen():
        try:
            for i in range(10):
                trace.append((name, "yield", i))
                yield i
        finally:
            trace.append((name, "finally"))
            if fail_in_finally:
                raise ValueError("finally failed")
    return agen()


async def anext_(agen):
    # agen.__anext__() must be called while the loop runs: the firstiter
    # hook is called when the first __anext__() object is created.
    return await agen.__anext__()


def finally_events_sorted(trace, start):
    """The order in which shutdown_asyncgens() closes generators is that of
    a WeakSet: sort the ("x", "finally") events that follow index start."""
    tail = trace[start:]
    fins = sorted(e for e in tail if isinstance(e, tuple) and
                  e[1:] == ("finally",))
    it = iter(fins)
    return trace[:start] + [next(it) if isinstance(e, tuple) and
                            e[1:] == ("finally",) else e for e in tail]


def test_shutdown_asyncgens_finalizes_unfinished_generators(compare):
    def scenario(loop):
        trace = []
        gens = [make_agen(trace, "a"), make_agen(trace, "b")]

        async def main():
            for g in gens:
                trace.append(("got", await g.__anext__()))
            trace.append(("got", await gens[0].__anext__()))

        run_until(loop, main())
        trace.append("shutdown_asyncgens")
        start = len(trace)
        run_until(loop, loop.shutdown_asyncgens())
        trace[:] = finally_events_sorted(trace, start)
        trace.append("done")
        trace.append(("closed", [g.ag_frame is None for g in gens]))
        # A generator first iterated after shutdown_asyncgens() gets a
        # ResourceWarning in asyncio.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            late = make_agen(trace, "late")
            run_until(loop, anext_(late))
            run_until(loop, late.aclose())
        trace.extend(sorted((w.category.__name__,
                             str(w.message).split(" was ")[-1])
                            for w in caught))
        return trace

    trace = compare(scenario)
    assert trace.index(("a", "finally")) > trace.index("shutdown_asyncgens")
    assert ("b", "finally") in trace


def test_shutdown_asyncgens_reports_errors(compare):
    def scenario(loop):
        trace = []
        g = make_agen(trace, "bad", fail_in_finally=True)
        loop.set_exception_handler(lambda lp, ctx: trace.append((
            "handler", sorted(ctx), ctx["message"].split(" <")[0],
            (type(ctx["exception"]).__name__, str(ctx["exception"])),
            ctx.get("asyncgen") is g)))
        run_until(loop, anext_(g))
        run_until(loop, loop.shutdown_asyncgens())
        return trace

    trace = compare(scenario)
    assert trace[-1][0] == "handler"


def test_dropped_generator_is_finalized_by_the_loop(compare):
    def scenario(loop):
        trace = []

        async def main():
            g = make_agen(trace, "dropped")
            await g.__anext__()
            del g
            gc.collect()
            trace.append("dropped")
            # The finalizer hook schedules aclose() as a task.
            for _ in range(5):
                await asyncio.sleep(0)
            trace.append("after sleeps")

        run_until(loop, main())
        return trace

    assert compare(scenario) == [("dropped", "yield", 0), "dropped",
                                 ("dropped", "finally"), "after sleeps"]


def test_asyncgen_hooks_installed_during_run_and_restored(compare):
    def scenario(loop):
        trace = []

        def firstiter(agen):
            trace.append("outer firstiter")

        def finalizer(agen):
            trace.append("outer finalizer")

        old = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
        try:
            def during():
                hooks = sys.get_asyncgen_hooks()
                trace.append(("during: replaced",
                              hooks.firstiter is not firstiter,
                              hooks.finalizer is not finalizer,
                              hooks.firstiter is not None,
                              hooks.finalizer is not None))
                loop.stop()

            loop.call_soon(during)
            loop.run_forever()
            hooks = sys.get_asyncgen_hooks()
            trace.append(("after: restored", hooks.firstiter is firstiter,
                          hooks.finalizer is finalizer))

            # Also restored when run_forever ends with an exception.
            def interrupt():
                raise KeyboardInterrupt

            loop.call_soon(interrupt)
            try:
                loop.run_forever()
            except KeyboardInterrupt:
                trace.append("interrupted")
            hooks = sys.get_asyncgen_hooks()
            trace.append(("after interrupt: restored",
                          hooks.firstiter is firstiter,
                          hooks.finalizer is finalizer))
        finally:
            sys.set_asyncgen_hooks(*old)
        return trace

    assert compare(scenario) == [
        ("during: replaced", True, True, True, True),
        ("after: restored", True, True), "interrupted",
        ("after interrupt: restored", True, True)]


def test_unhandled_error_in_asyncgen_aclose_is_logged(compare):
    def scenario(loop):
        trace = []

        async def main():
            g = make_agen(trace, "raising", fail_in_finally=True)
            await g.__anext__()
            del g
            gc.collect()
            for _ in range(5):
                await asyncio.sleep(0)

        with capture_asyncio_log() as records:
            run_until(loop, main())
        trace.extend(record_event(r)[:2] + (
            r.getMessage().split("\n")[0].split(" coro=")[0],)
            for r in records)
        return trace

    compare(scenario)


def test_unfinished_asyncgens_at_exit_in_debug_mode(compare_child):
    # Debug mode must never crash (uvloop #611, #715, #730): async
    # generators left unfinished when the loop is closed without
    # shutdown_asyncgens() and the interpreter exits.
    compare_child('''
import gc
loop = new_loop()
loop.set_debug(True)
keep = []
async def agen(i):
    try:
        while True:
            yield i
    finally:
        pass
async def main():
    for i in range(50):
        g = agen(i)
        await g.__anext__()
        if i % 2:
            keep.append(g)
    gc.collect()
    await asyncio.sleep(0.01)
    out("iterated", len(keep))
loop.run_until_complete(asyncio.wait_for(main(), 5))
loop.close()
out("closed")
del loop
gc.collect()
out("exiting")
''')
