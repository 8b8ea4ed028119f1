"""python -m tideloop script.py [args] -- run a script on tideloop.

Installs tideloop's event loop policy, then runs the script as __main__,
exactly as `python script.py [args]` would, so asyncio.run(),
asyncio.new_event_loop() and get_event_loop() all give tideloop loops.
`python -m tideloop -m module [args]` runs a module the same way.
"""

import os
import runpy
import sys

USAGE = "usage: python -m tideloop script.py [args ...]\n" \
        "       python -m tideloop -m module [args ...]\n"


def main() -> int:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 0 if argv else 2

    import tideloop
    tideloop.install()

    if argv[0] == "-m":
        if len(argv) < 2:
            sys.stderr.write(USAGE)
            return 2
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0

    path = argv[0]
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
