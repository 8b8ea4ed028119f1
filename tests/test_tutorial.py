"""The shared event-loop tutorial, run on tideloop and diffed against the
golden output recorded on stock asyncio (../shared/tutorial/run_all.py).

Takes ~40 s; deselect with ``-m "not tutorial"``.
"""
import os
import re
import subprocess
import sys

import pytest

from support import REPO_DIR, import_tideloop

TUTORIAL_DIR = os.path.normpath(os.path.join(REPO_DIR, "..", "shared",
                                             "tutorial"))
RUN_ALL = os.path.join(TUTORIAL_DIR, "run_all.py")
SETUP = ("import tideloop; "
         "asyncio.set_event_loop_policy(tideloop.EventLoopPolicy())")
# run_all.py's own rule for what is a tutorial file.
NOT_TUTORIAL = {"normalize.py", "run_all.py"}
EXPECTED_FILES = 23


def tutorial_files():
    return sorted(n for n in os.listdir(TUTORIAL_DIR)
                  if n.endswith(".py") and n not in NOT_TUTORIAL
                  and not n.startswith("."))


@pytest.mark.tutorial
@pytest.mark.watchdog(600)
def test_tutorial_passes_on_tideloop():
    if not os.path.isfile(RUN_ALL):
        pytest.skip("!!! TUTORIAL NOT RUN: %s is missing (the shared/ folder "
                    "is expected beside the repository) !!!" % RUN_ALL)
    import_tideloop()
    files = tutorial_files()
    assert len(files) == EXPECTED_FILES, files
    proc = subprocess.run(
        [sys.executable, RUN_ALL, "--python", sys.executable,
         "--setup", SETUP, "--expect-loop-class", "tideloop"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=500)
    lines = proc.stdout.rstrip().splitlines()
    assert lines, "run_all.py printed nothing (exit %s)" % proc.returncode
    m = re.fullmatch(r"tutorial: (\d+) passed, (\d+) failed", lines[-1])
    assert m, "unexpected last line %r:\n%s" % (lines[-1], proc.stdout)
    passed, failed = int(m.group(1)), int(m.group(2))
    assert (passed, failed) == (len(files), 0), proc.stdout
    assert proc.returncode == 0, proc.stdout
