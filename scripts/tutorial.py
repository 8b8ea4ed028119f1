#!/usr/bin/env python3
"""`make run`: the shared asyncio tutorial on tideloop, said plainly.

    scripts/tutorial.py RUN_ALL PYTHON [run_all.py arguments ...]

Runs RUN_ALL (../shared/tutorial/run_all.py, which is not ours to edit)
with PYTHON and tideloop's policy as its --setup hook, passes its output
through, and frames it with a few lines: what ran, on which loop, compared
with what, and the total time next to the golden stock-asyncio run's.
Exits with run_all.py's status.
"""
import json
import os
import re
import subprocess
import sys

SETUP = "import tideloop; tideloop.install()"

PROBE = r'''
import json, platform
import tideloop
loop = tideloop.new_event_loop()
try:
    backend = loop.stats().get("backend", "epoll")
finally:
    loop.close()
print(json.dumps({"python": platform.python_version(),
                  "tideloop": tideloop.__version__,
                  "libuv": tideloop.libuv_version(),
                  "backend": backend}))
'''

RESULT = re.compile(r"^(ok|FAIL)\s+(\S+)\s+([\d.]+)s \(golden ([\d.]+)s\)")
SUMMARY = re.compile(r"^tutorial: (\d+) passed, (\d+) failed$")


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    run_all, python, extra = argv[0], argv[1], argv[2:]
    tutorial_dir = os.path.dirname(os.path.abspath(run_all))
    info = json.loads(subprocess.run(
        [python, "-c", PROBE], check=True, stdout=subprocess.PIPE,
        text=True).stdout)
    with open(os.path.join(tutorial_dir, "golden", "meta.json")) as f:
        meta = json.load(f)
    golden_python = meta.get("python", "?").split()[0]
    where = "Python %s, %s backend, libuv %s" % (
        info["python"], info["backend"], info["libuv"])
    print("== make run: the shared asyncio tutorial (%s), each file run on "
          "tideloop %s (%s)," % (tutorial_dir, info["tideloop"], where))
    print("== and compared with golden output recorded on stock asyncio "
          "(Python %s): output, exit status and timings." % golden_python)
    print(flush=True)

    proc = subprocess.Popen(
        [python, run_all, "--python", python, "--setup", SETUP,
         "--expect-loop-class", "tideloop", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ours = golden = 0.0
    summary = None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        m = RESULT.match(line)
        if m:
            ours += float(m.group(3))
            golden += float(m.group(4))
        m = SUMMARY.match(line.rstrip("\n"))
        if m:
            summary = (int(m.group(1)), int(m.group(2)))
    rc = proc.wait()

    print()
    if summary is None:
        print("== make run: run_all.py ended without a summary (exit status "
              "%d): see above." % rc)
        return rc or 1
    passed, failed = summary
    print("== %d tutorial files on tideloop (%s), each compared with golden "
          "output from stock asyncio: %d passed, %d failed."
          % (passed + failed, where, passed, failed))
    if golden:
        print("== Wall time %.1f s, %.2fx the golden stock-asyncio run's "
              "(Python %s). The files mostly sleep on purpose: this checks "
              "that timers keep time; `make bench` compares speed."
              % (ours, ours / golden, golden_python))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
