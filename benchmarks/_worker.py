#!/usr/bin/env python3
"""Run ONE benchmark on ONE event loop in this (fresh) process.

Usage:
    python benchmarks/_worker.py --loop LOOP --bench NAME --n N
    python benchmarks/_worker.py --loop NAME --probe
    python benchmarks/_worker.py --list

LOOP is asyncio, uvloop, rloop, tideloop or tideloop-libuv (tideloop with
TIDELOOP_BACKEND=libuv).  The rows live in _rows_core.py, _rows_net.py,
_rows_http.py and _rows_proc.py.

Prints exactly one JSON line on stdout.  The elapsed wall time ("elapsed")
and process CPU time ("cpu") are measured inside this process around the
benchmark's hot part only (setup that is identical for every loop, e.g.
generating random delays, is outside the timed region), summed over the
row's rounds (each on a new loop; --rounds overrides the row's count).

Every benchmark verifies its own result (counts, ordering, nothing reported
to the loop's exception handler, loop closes cleanly).  On a wrong result the
JSON line has "ok": false and the process exits with status 2, so a broken
loop can never show up as a fast one.  A loop that lacks an API the row
needs (NotImplementedError, or a missing attribute of its loop/transport)
gets "unsupported" and exit status 4: run.py shows n/a with the reason.
Driven by benchmarks/run.py.
"""

import argparse
import asyncio
import faulthandler
import gc
import json
import os
import sys
import traceback

from _common import BENCHES, BenchFailure, Unsupported, check

# Each row module registers its rows in BENCHES on import: the import order
# is the catalog's (and the report's) row order.
import _rows_core  # noqa: E402,I100
import _rows_net  # noqa: E402,I100
import _rows_http  # noqa: E402,I100
import _rows_proc  # noqa: E402,I100

ROW_MODULES = (_rows_core, _rows_net, _rows_http, _rows_proc)

# ---------------------------------------------------------------------------
# Loop construction / probing
# ---------------------------------------------------------------------------

LOOPS = ("asyncio", "uvloop", "rloop", "tideloop", "tideloop-libuv")
BACKEND_ENV = "TIDELOOP_BACKEND"


def prepare_env(name):
    """Set the environment before the loop's package is imported:
    tideloop-libuv is tideloop with TIDELOOP_BACKEND=libuv, and the plain
    tideloop column always measures the default backend."""
    if name == "tideloop-libuv":
        os.environ[BACKEND_ENV] = "libuv"
    elif name == "tideloop":
        os.environ.pop(BACKEND_ENV, None)


def make_loop(name):
    if name == "asyncio":
        # the stock default loop (SelectorEventLoop/epoll on Linux)
        return asyncio.DefaultEventLoopPolicy().new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop
        return rloop.new_event_loop()
    if name in ("tideloop", "tideloop-libuv"):
        import tideloop
        return tideloop.new_event_loop()
    raise SystemExit(f"unknown loop {name!r}")


def loop_backend(loop):
    """tideloop's backend name from loop.stats() (None if it reports none)."""
    stats = getattr(loop, "stats", None)
    if stats is None:
        return None
    try:
        return stats().get("backend")
    except Exception:
        return None


def loop_class(loop):
    t = type(loop)
    return f"{t.__module__}.{t.__qualname__}"


def probe(name):
    info = {"loop": name, "ok": False}
    try:
        loop = make_loop(name)
        try:
            info["loop_class"] = loop_class(loop)
            if name.startswith("tideloop"):
                info["backend"] = loop_backend(loop)
            if name == "tideloop-libuv" and info["backend"] != "libuv":
                raise RuntimeError(
                    f"{BACKEND_ENV}=libuv did not select a libuv backend "
                    f"(loop.stats().get('backend') = {info['backend']!r}): "
                    f"this build has none")
            fut = loop.create_future()
            loop.call_soon(fut.set_result, 42)
            check(loop.run_until_complete(fut) == 42, "trivial future round trip failed")
        finally:
            loop.close()
        if name == "asyncio":
            info["version"] = sys.version.split()[0]
        elif name == "uvloop":
            import uvloop
            info["version"] = getattr(uvloop, "__version__", None)
        elif name == "rloop":
            import rloop
            info["version"] = getattr(rloop, "__version__", None)
        elif name.startswith("tideloop"):
            import tideloop
            info["version"] = getattr(tideloop, "__version__", None)
            info["path"] = os.path.dirname(os.path.abspath(tideloop.__file__))
            try:
                from tideloop import _core
                info["core_mtime"] = os.path.getmtime(_core.__file__)
                fn = getattr(_core, "libuv_version", None)
                if fn is not None:
                    v = fn()
                    if isinstance(v, int):  # UV_VERSION_HEX style
                        v = f"{v >> 16 & 0xff}.{v >> 8 & 0xff}.{v & 0xff}"
                    info["libuv_version"] = str(v)
            except Exception as e:
                info["libuv_version_error"] = repr(e)
        info["ok"] = True
    except BaseException as e:
        info["error"] = f"{type(e).__name__}: {e}"
    return info


def run_one(loop_name, bench_name, n, warmup, rounds=None):
    fn, _, _, meta = BENCHES[bench_name]
    if rounds is None:
        rounds = meta["rounds"]
    reported = []

    def handler(loop, ctx):
        msg = ctx.get("message")
        exc = ctx.get("exception")
        reported.append(f"{msg!r} {exc!r}" if exc is not None else repr(msg))

    backends = []

    def one(n_):
        loop = make_loop(loop_name)
        if loop_name.startswith("tideloop"):
            backends.append(loop_backend(loop))
            if loop_name == "tideloop-libuv" and backends[-1] != "libuv":
                raise Unsupported(f"{BACKEND_ENV}=libuv gave backend {backends[-1]!r}")
        loop.set_exception_handler(handler)
        asyncio.set_event_loop(loop)
        try:
            result = loop.run_until_complete(fn(loop, n_))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        return result, loop_class(loop)

    if warmup and meta["warmup"] is not None:
        # small run on a separate loop: imports, code paths, allocator
        one(meta["warmup"](n))
    reported.clear()
    wall = cpu = 0.0
    for _ in range(rounds):
        # every round checks its own result (check() in the row), on a
        # new loop; the sample is the sum of their timed parts
        gc.collect()
        (sw, info), cls = one(n)
        wall += sw.wall
        cpu += sw.cpu
    check(not reported, f"loop exception handler was called: {reported[:3]}")
    out = {"elapsed": wall, "cpu": cpu, "info": info, "loop_class": cls,
           "rounds": rounds}
    if backends:
        out["backend"] = backends[-1]
    return out


_LOOP_PACKAGES = ("asyncio", "uvloop", "rloop", "tideloop")


def unsupported_reason(exc):
    """If exc says the loop lacks an API the benchmark needs, return a short
    reason naming it (the innermost frame raising NotImplementedError, or
    the missing attribute of a loop/transport/server object); else None.
    Only these count as "cannot run this row": any other error is a FAIL."""
    if isinstance(exc, Unsupported):
        return str(exc)
    if isinstance(exc, NotImplementedError):
        tb = traceback.extract_tb(exc.__traceback__)
        where = ""
        if tb:
            fr = tb[-1]
            mod = os.path.basename(os.path.dirname(fr.filename))
            where = f" in {mod}/{os.path.basename(fr.filename)} {fr.name}()"
        return f"NotImplementedError{where}" + (f": {exc}" if str(exc) else "")
    if isinstance(exc, AttributeError):
        obj = getattr(exc, "obj", None)  # Python 3.10+
        mod = type(obj).__module__.split(".")[0] if obj is not None else ""
        if mod in _LOOP_PACKAGES and mod != "asyncio":
            return f"{type(obj).__name__} has no attribute {getattr(exc, 'name', '?')!r}"
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", choices=LOOPS)
    p.add_argument("--bench", choices=sorted(BENCHES))
    p.add_argument("--n", type=int)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--rounds", type=int,
                   help="runs of the row per sample, their times summed "
                        "(default: the row's own, see --list; callgrind.py "
                        "needs 1: its markers count one timed part)")
    p.add_argument("--timeout", type=float, default=0,
                   help="watchdog: dump tracebacks and exit(1) after this many seconds")
    p.add_argument("--probe", action="store_true")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()

    if a.list:
        print(json.dumps({k: {"default_n": v[1], "desc": v[2], "unit": v[3]["unit"],
                              "group": v[3]["group"], "rounds": v[3]["rounds"]}
                          for k, v in BENCHES.items()}))
        return 0
    if a.loop is None:
        p.error("--loop is required")
    if a.rounds is not None and a.rounds < 1:
        p.error("--rounds must be >= 1")
    prepare_env(a.loop)
    if a.probe:
        info = probe(a.loop)
        print(json.dumps(info))
        return 0 if info["ok"] else 3
    if a.bench is None:
        p.error("--bench is required")
    n = a.n if a.n is not None else BENCHES[a.bench][1]
    if a.timeout > 0:
        # a hung loop (lost callback / wakeup) must not hang the whole run
        faulthandler.dump_traceback_later(a.timeout, exit=True)
    out = {"loop": a.loop, "bench": a.bench, "n": n, "pid": os.getpid()}
    try:
        out.update(run_one(a.loop, a.bench, n, not a.no_warmup, a.rounds))
        out["ok"] = True
    except BenchFailure as e:
        out.update(ok=False, error=f"wrong result: {e}")
    except BaseException as e:
        why = unsupported_reason(e)
        if why is not None:
            out.update(ok=False, unsupported=why, error=f"unsupported: {why}")
        else:
            out.update(ok=False, error=f"{type(e).__name__}: {e}",
                       traceback=traceback.format_exc()[-2000:])
    print(json.dumps(out), flush=True)
    if out.get("unsupported"):
        return 4
    return 0 if out["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
