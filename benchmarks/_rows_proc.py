"""Subprocess rows (group "proc")."""

import asyncio
import os
import random
import subprocess

from _common import KIB, Stopwatch, bench, check


# ---------------------------------------------------------------------------
# Subprocesses (group "proc").  The parent's CPU time leaves out the
# children's, so compare these with --metric wall (the default).
# ---------------------------------------------------------------------------

@bench("spawn_true", 300,
       "n sequential asyncio.create_subprocess_exec('/bin/true') + wait(); "
       "every return code checked", unit="processes", group="proc")
async def b_spawn_true(loop, n):
    sw = Stopwatch().start()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        rc = await p.wait()
        check(rc == 0, f"/bin/true exited {rc}")
    return sw.stop(), {}


@bench("spawn_communicate", 200,
       "n sequential `cat` children with stdin/stdout pipes; communicate() "
       "sends 64 KiB and the echo is compared byte for byte",
       unit="processes", group="proc")
async def b_spawn_communicate(loop, n):
    data = random.Random(7).randbytes(64 * KIB) if hasattr(
        random.Random, "randbytes") else os.urandom(64 * KIB)
    sw = Stopwatch().start()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec(
            "/bin/cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = await p.communicate(data)
        check(out == data and p.returncode == 0,
              f"cat echoed {len(out)} bytes, exit {p.returncode}")
    return sw.stop(), {}


@bench("spawn_concurrent", 400,
       "n `/bin/true` children started 50 at a time (gather of create + "
       "wait); every return code checked", unit="processes", group="proc")
async def b_spawn_concurrent(loop, n):
    async def one():
        p = await asyncio.create_subprocess_exec("/bin/true")
        return await p.wait()

    sw = Stopwatch().start()
    left = n
    while left > 0:
        k = min(50, left)
        rcs = await asyncio.gather(*[one() for _ in range(k)])
        check(rcs == [0] * k, f"return codes {set(rcs)}")
        left -= k
    return sw.stop(), {}
