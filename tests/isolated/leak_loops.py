"""Leak check: creating and closing event loops.

    python tests/isolated/leak_loops.py asyncio|tideloop [--scale S]

Phases (at scale 1):
  closed   10,000 loops: new_event_loop(), run a trivial coroutine (one
           sleep(0), one timer, one executor-free await), close().
  pending   2,000 loops closed with work still pending: a far call_later,
           a call_soon that never ran, an add_reader and add_writer on a
           socketpair (closed after the loop), a cancelled timer.
  dropped   1,000 loops never closed, only dropped (the ResourceWarning is
           silenced): the deallocator / __del__ must free everything.
  run       2,000 tideloop.run() (stock: asyncio.run()) of a trivial
           coroutine.
"""
import asyncio
import gc
import socket

import _leakcheck as lc

ROUNDS = 10


async def trivial():
    await asyncio.sleep(0)
    await asyncio.sleep(1e-6)
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, 42)
    return await fut


def noop():
    pass


def main():
    args = lc.parse_args(__doc__)
    lc.quiet()
    lc.watchdog(600)
    report = lc.Report("loops", args.kind, args.scale, args.inject_leak)
    new_loop = lc.loop_factory(args.kind)
    run = lc.run_function(args.kind)
    lc.check_kind(args.kind, new_loop())   # dropped: gc'ed at once

    def closed(n):
        for _ in range(n):
            loop = new_loop()
            assert loop.run_until_complete(trivial()) == 42
            loop.close()

    def pending(n):
        for _ in range(n):
            loop = new_loop()
            a, b = socket.socketpair()
            try:
                loop.call_later(3600, noop)
                loop.call_later(3600, noop).cancel()
                loop.call_soon(noop)
                loop.add_reader(a, noop)
                loop.add_writer(b, noop)
                loop.run_until_complete(trivial())
                loop.call_soon(noop)
            finally:
                loop.close()
                a.close()
                b.close()

    def dropped(n):
        for _ in range(n):
            loop = new_loop()
            loop.run_until_complete(trivial())
            loop.call_later(3600, noop)
            del loop
            gc.collect(0)

    def run_phase(n):
        for _ in range(n):
            assert run(trivial()) == 42

    for name, fn, ops in (("closed", closed, 10_000),
                          ("pending", pending, 2_000),
                          ("dropped", dropped, 1_000),
                          ("run", run_phase, 2_000)):
        per_round = lc.scaled(ops // ROUNDS, args.scale)
        report.phase(name, rounds=ROUNDS, ops_per_round=per_round,
                     warmup_ops=per_round, run_round=fn)
    report.finish()


if __name__ == "__main__":
    main()
