"""Leak check: subprocesses of /bin/true through ONE long-lived loop, at
most CONCURRENCY alive at a time.  Half are plain (``await proc.wait()``),
half have their three standard streams on pipes (``await
proc.communicate(b"...")``), so pipe transports are opened and closed too.
Every child must be reaped: after each round the report counts this
process's children in /proc (zombies included).

    python tests/isolated/leak_subprocess.py asyncio|tideloop [--scale S]

At scale 1: 10,000 subprocesses in 10 rounds.
"""
import asyncio
import subprocess

import _leakcheck as lc

ROUNDS = 10
CONCURRENCY = 50
TRUE = "/bin/true"


async def spawn(i):
    if i % 2:
        proc = await asyncio.create_subprocess_exec(TRUE)
        rc = await proc.wait()
    else:
        proc = await asyncio.create_subprocess_exec(
            TRUE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        out, err = await proc.communicate(b"ignored")
        assert out == err == b"", (out, err)
        rc = proc.returncode
    assert rc == 0, rc


async def run_many(n):
    errors = []
    next_i = iter(range(n))

    async def worker():
        for i in next_i:
            try:
                await spawn(i)
            except (OSError, AssertionError) as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(worker() for _ in range(min(n, CONCURRENCY))))
    for _ in range(3):
        await asyncio.sleep(0)
    if errors:
        raise AssertionError("%d spawn errors, e.g. %s"
                             % (len(errors), errors[:3]))


def main():
    args = lc.parse_args(__doc__)
    lc.quiet()
    lc.watchdog(600)
    report = lc.Report("subprocess", args.kind, args.scale, args.inject_leak)
    loop = lc.loop_factory(args.kind)()
    lc.check_kind(args.kind, loop)
    # Pythons before 3.12 find the child watcher through the policy, which
    # wants the loop to be the current one.
    asyncio.set_event_loop(loop)

    def one_round(n):
        loop.run_until_complete(asyncio.wait_for(run_many(n), 300))
        return {"subprocesses": n}

    try:
        per_round = lc.scaled(1_000, args.scale)
        report.phase("spawn", rounds=ROUNDS, ops_per_round=per_round,
                     warmup_ops=per_round, run_round=one_round)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    report.finish()


if __name__ == "__main__":
    main()
