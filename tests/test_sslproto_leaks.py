"""Leak check of TLS connections (tests/isolated/leak_tls.py): 2,000
connect/handshake/exchange/close cycles in a fresh interpreter, on stock
asyncio and on tideloop, must leave RSS, descriptors and gc-tracked
objects where they were after the warm-up (the tolerances and the judge
are test_leaks.py's)."""
import json
import os
import subprocess
import sys

import pytest

from support import KINDS, TESTS_DIR, child_env, import_tideloop
from netsupport import tls_files
from test_leaks import SCALE, judge, show, summary

pytestmark = pytest.mark.leaks


@pytest.mark.watchdog(300)
@pytest.mark.parametrize("kind", KINDS)
def test_no_tls_leak(kind, capsys):
    if kind == "tideloop":
        import_tideloop()
    cert, key = tls_files()
    env = child_env(kind, {"TIDELOOP_TLS_CERTFILE": cert,
                           "TIDELOOP_TLS_KEYFILE": key})
    isolated = os.path.join(TESTS_DIR, "isolated")
    proc = subprocess.run(
        [sys.executable, os.path.join(isolated, "leak_tls.py"), kind,
         "--scale", repr(SCALE)],
        env=env, cwd=isolated, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=240)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines and lines[-1].startswith("{"), (
        "exit status %s\n--- stdout\n%s\n--- stderr\n%s" % (
            proc.returncode, proc.stdout[-3000:], proc.stderr[-8000:]))
    report = json.loads(lines[-1])
    show(capsys, summary(report))
    problems = judge(report)
    assert not problems, "\n".join(problems) + "\n\n" + summary(report)
    phase = report["phases"][0]
    # Closing the two servers released their two listening sockets.
    assert phase["after"]["fds"] == phase["baseline"]["fds"] - 2
