"""Shared by the leak scripts of tests/isolated/: loop kinds, measurements
and the report.

Every leak script is run as

    python tests/isolated/leak_<name>.py KIND [--scale S]

with KIND ``asyncio`` (stock loops from ``asyncio.new_event_loop()``) or
``tideloop``.  It runs its workload in *phases*; each phase does one warm-up
round (so that first-use caches, interned strings, the allocator's arenas,
libuv's process-global signal pipe and the like exist before anything is
measured), takes a baseline, then runs its rounds and measures after each
one.  The last line of stdout is a JSON report; test_leaks.py judges it (the
tolerances live there, next to their justification), this module only
measures.

The scale (``--scale`` or TIDELOOP_LEAK_SCALE, default 1.0) multiplies the
number of operations, never the number of rounds.
"""
import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time
import warnings

KINDS = ("asyncio", "tideloop")


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--scale", type=float, default=float(
        os.environ.get("TIDELOOP_LEAK_SCALE", "1.0") or "1.0"))
    p.add_argument("--inject-leak", action="store_true",
                   help="self-test of the check: leak objects, memory and "
                   "a descriptor in every round on purpose")
    args = p.parse_args()
    if args.scale <= 0:
        p.error("--scale must be positive")
    return args


def loop_factory(kind):
    if kind == "tideloop":
        import tideloop
        return tideloop.new_event_loop
    return asyncio.new_event_loop


def check_kind(kind, loop):
    """Fail loudly if a loop is not of the requested kind (a policy or an
    import gone wrong would make the check vacuous)."""
    top = type(loop).__module__.split(".")[0]
    want = "tideloop" if kind == "tideloop" else "asyncio"
    if top != want:
        raise SystemExit("expected a %s loop, got %r" % (want, type(loop)))


def run_function(kind):
    """asyncio.run or tideloop.run."""
    if kind == "tideloop":
        import tideloop
        return tideloop.run
    return asyncio.run


def scaled(n, scale, minimum=1):
    return max(minimum, int(round(n * scale)))


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def open_fds():
    """Open descriptors of this process, by number (the descriptor listdir
    itself uses is not counted)."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:
            pass  # the directory descriptor of listdir(), already closed
    return fds


def children():
    """(pid, state, comm) of every process whose parent is this one;
    state 'Z' is a zombie."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # comm may contain spaces and parentheses: split at the last ')'.
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        if len(fields) >= 2 and int(fields[1]) == me:
            found.append((int(name), fields[0], head.partition("(")[2]))
    return found


def threads():
    return len(os.listdir("/proc/self/task"))


def measure():
    # Twice: the first collection may free objects whose finalizers
    # release more (weakref callbacks, __del__ of transports).
    gc.collect()
    gc.collect()
    objs = len(gc.get_objects())
    fds = open_fds()
    kids = children()
    return {
        "rss": rss_bytes(),
        "fds": len(fds),
        "objs": objs,
        "threads": threads(),
        "children": len(kids),
        "zombies": sum(1 for k in kids if k[1] == "Z"),
        "fd_list": {str(k): v for k, v in sorted(fds.items())},
    }


# --------------------------------------------------------------------------
# Phases and the report
# --------------------------------------------------------------------------

_INJECTED = []


def inject_leak(ops):
    """What --inject-leak adds after every round: one gc-tracked object per
    100 operations (at least 10), 2 MiB of memory and one descriptor."""
    _INJECTED.append([[] for _ in range(max(10, ops // 100))])
    _INJECTED.append(bytearray(b"x" * (2 << 20)))
    _INJECTED.append(os.dup(2))


class Report:
    def __init__(self, scenario, kind, scale, inject=False):
        self.inject = inject
        self.data = {"scenario": scenario, "kind": kind, "scale": scale,
                     "python": sys.version.split()[0], "phases": [],
                     "asan": "libasan" in os.environ.get("LD_PRELOAD", ""),
                     "injected": inject}
        self.t0 = time.perf_counter()

    def phase(self, name, *, rounds, ops_per_round, warmup_ops, run_round,
              after=None):
        """Warm up with run_round(warmup_ops), take the baseline, then
        run_round(ops_per_round) `rounds` times, measuring after each.
        run_round may return a dict of counters, kept in the report.
        `after()` (optional) runs after the last measurement, e.g. to close
        a server; a measurement follows it."""
        # Everything this method keeps across rounds exists before the
        # baseline, and measurements are kept as JSON strings (not tracked
        # by the gc): the bookkeeping adds nothing to the object count.
        results = []
        info = {}
        t0 = time.perf_counter()
        run_round(warmup_ops)
        warm = time.perf_counter() - t0
        baseline = measure()
        t1 = time.perf_counter()
        for i in range(rounds):
            r = run_round(ops_per_round)
            if r:
                for k, v in r.items():
                    info[k] = info.get(k, 0) + v
                del r
            if self.inject:
                inject_leak(ops_per_round)
            m = measure()
            results.append(json.dumps(m))
            print("  %s/%s %s: round %d  rss %+.1f MiB  fds %+d  objs %+d  "
                  "children %d" % (
                      self.data["scenario"], name, self.data["kind"], i + 1,
                      (m["rss"] - baseline["rss"]) / 2**20,
                      m["fds"] - baseline["fds"],
                      m["objs"] - baseline["objs"], m["children"]),
                  file=sys.stderr, flush=True)
            del m
        seconds = time.perf_counter() - t1
        entry = {"name": name, "rounds": rounds,
                 "ops": rounds * ops_per_round, "warmup_ops": warmup_ops,
                 "warmup_seconds": round(warm, 3),
                 "seconds": round(seconds, 3), "baseline": baseline,
                 "measures": [json.loads(x) for x in results], "info": info}
        if after is not None:
            after()
            entry["after"] = measure()
        self.data["phases"].append(entry)
        return entry

    def finish(self):
        self.data["seconds"] = round(time.perf_counter() - self.t0, 3)
        print(json.dumps(self.data), flush=True)


def quiet():
    """No ResourceWarning/DeprecationWarning noise from the workloads (the
    unclosed-loop phase drops loops on purpose)."""
    warnings.simplefilter("ignore")


def watchdog(seconds):
    """Last resort against a hang: dump every thread and exit."""
    import faulthandler
    faulthandler.enable()
    faulthandler.dump_traceback_later(seconds, exit=True)


def start_thread(target, *args):
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t
