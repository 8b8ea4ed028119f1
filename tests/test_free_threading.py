"""tideloop on a free-threaded interpreter (3.13t, 3.14t).

ext/module.c declares the Py_mod_gil slot as Py_MOD_GIL_USED: tideloop's C
state (ready queue, handles, transports) is protected by the GIL.  On a
free-threaded build, importing tideloop._core therefore turns the GIL back
on (CPython says so with a RuntimeWarning) rather than running without it.

These tests run only on a free-threaded build.  This machine has none
(Debian does not package one), so they were not run here: see
docs/free-threading.md, which claims nothing beyond them.
"""
import subprocess
import sys
import sysconfig

import pytest

from support import child_env, import_tideloop

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

pytestmark = [
    pytest.mark.tideloop_only,
    pytest.mark.skipif(not FREE_THREADED,
                       reason="needs a free-threaded (3.13t+) interpreter"),
]

PROGRAM = '''\
import asyncio, sys, threading, warnings
warnings.simplefilter("always")
print("gil before import", sys._is_gil_enabled())
import tideloop
print("gil after import", sys._is_gil_enabled())

async def main():
    loop = asyncio.get_running_loop()
    got = []
    def post(i):
        for j in range(1000):
            loop.call_soon_threadsafe(got.append, (i, j))
    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    await asyncio.sleep(0)
    while len(got) < 4000:
        await asyncio.sleep(0.001)
    return sorted(got) == sorted((i, j) for i in range(4) for j in range(1000))

print("threads posted", tideloop.run(main()))
'''


def test_import_turns_the_gil_on():
    import_tideloop()
    env = child_env("tideloop")
    env.pop("PYTHON_GIL", None)      # the interpreter's default: GIL off
    proc = subprocess.run([sys.executable, "-c", PROGRAM],
                          env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "gil before import False", "gil after import True",
        "threads posted True"], proc.stdout
    assert "The global interpreter lock (GIL) has been enabled to load " \
           "module 'tideloop._core'" in proc.stderr, proc.stderr
