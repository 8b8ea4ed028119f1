#!/usr/bin/env python3
"""Instructions per operation of one benchmark row, per loop, under
`valgrind --tool=callgrind`: a repeatable measure where timing is noisy.

    python benchmarks/callgrind.py                          # the default rows
    python benchmarks/callgrind.py --bench call_soon_chain --loops tideloop,rloop
    python benchmarks/callgrind.py --bench udp_1k --n 4000 --top 20
    python benchmarks/callgrind.py --list

Method.  Each (row, loop) runs benchmarks/_worker.py (the same workload and
self-checks as run.py, without the warm-up run) twice under callgrind, with
n/2 and n operations.  Only the timed part is counted: the worker's
Stopwatch calls os.sched_get_priority_max() as it starts and
os.sched_get_priority_min() as it stops, and callgrind zeroes its counters
at the first (--zero-before) and dumps them at the second (--dump-before).
Instructions per operation = (Ir(n) - Ir(n/2)) / (n - n/2), so first-use
costs inside the timed part (a thread pool starting, a cache filling)
cancel out too.  The same difference, taken per function (self cost, i.e.
instructions executed in the function's own code), gives the top functions
per operation: a hint where the time goes.
callgrind sees user-space instructions only; --syscalls adds the system
calls per operation (strace -f -c over the same two runs), where kernel
time hides.

Only the worker process is counted: children (the `cat` of
spawn_communicate) are not traced, and a forked child's instructions before
exec() go to its own file, which is ignored.  Threads are all counted
(executor, resolver and producer threads included).  valgrind runs one
thread at a time, so rows that depend on thread interleaving (threadsafe,
run_in_executor, getaddrinfo) can batch wake-ups differently than natively;
repeat those if a difference is small.  Functions without symbols (rloop's
stripped Rust library) are summed per library as "[no symbols] LIB".

Writes benchmarks/results/callgrind/latest.md and latest.json.
"""

import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import _cmd, list_benches, split_csv, worker_env  # noqa: E402

WORKER = os.path.join(HERE, "_worker.py")
MARK_START, MARK_STOP = "sched_get_priority_max", "sched_get_priority_min"  # _common.py
LOOPS = ("asyncio", "uvloop", "rloop", "tideloop", "tideloop-libuv")

# The rows where rloop led tideloop (issue 14), and the request-counting
# twins of the HTTP rows where uvloop led, with the n of the larger
# callgrind run (the smaller one does n/2).  About 0.02-0.2 s of native work:
# valgrind runs it 30-100x slower.
DEFAULT_ROWS = {
    "call_soon_chain": 20_000,
    "timers_churn": 10_000,
    "timers_fire": 10_000,
    "future_roundtrip": 20_000,
    "sleep0": 20_000,
    "threadsafe": 20_000,
    "run_in_executor": 2_000,
    "getaddrinfo": 1_000,
    "spawn_communicate": 20,
    "tcp_sock_1k": 2_000,
    "tcp_sock_10k": 1_000,
    "tcp_sock_100k": 400,
    "tcp_streams_1k": 2_000,
    "tcp_streams_100k": 400,
    "udp_1k": 3_000,
    "keepalive_reqs": 4_000,
    "tls_keepalive_reqs": 2_000,
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# callgrind output: self cost per function
# ---------------------------------------------------------------------------

def _name(table, rest):
    """'(id) name' defines id, '(id)' refers to it (name compression)."""
    rest = rest.strip()
    if rest.startswith("("):
        end = rest.index(")")
        key = rest[1:end]
        name = rest[end + 1:].strip()
        if name:
            table[key] = name
        return table.get(key, "?")
    return rest


def parse_callgrind(path):
    """(total Ir, {function: self Ir}, {event: total}) of one callgrind.out
    file (the events are Ir, plus the cache events with --cache-sim)."""
    obs, fns = {}, {}
    ob = fn = "?"
    selfcost = {}
    total = None
    events, totals = ["Ir"], {}
    after_calls = False
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if after_calls:      # inclusive cost of a call: not self
                    after_calls = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    selfcost[(fn, ob)] = selfcost.get((fn, ob), 0) + int(parts[1])
                continue
            if line.startswith("fn="):
                fn = _name(fns, line[3:])
            elif line.startswith("ob="):
                ob = _name(obs, line[3:])
            elif line.startswith(("cfn=", "cfi=", "cfl=")):
                if line.startswith("cfn="):
                    _name(fns, line[4:])
            elif line.startswith("cob="):
                _name(obs, line[4:])
            elif line.startswith("calls="):
                after_calls = True
            elif line.startswith("events:"):
                events = line.split(":", 1)[1].split()
            elif line.startswith(("summary:", "totals:")):
                vals = [int(v) for v in line.split(":", 1)[1].split()]
                totals = dict(zip(events, vals))
                total = totals.get("Ir", vals[0] if vals else 0)
    out = {}
    for (name, obj), ir in selfcost.items():
        lib = os.path.basename(obj)
        name = name.split("'", 1)[0]   # f'2: recursion level 2 of f
        key = f"[no symbols] {lib}" if name.startswith("0x") else f"{name} ({lib})"
        out[key] = out.get(key, 0) + ir
    if total is None:
        total = sum(out.values())
    return total, out, totals


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def run_one(loop, bench, n, timeout, cache_sim=False):
    """Run the worker under callgrind; returns {"ok", "total", "fns", ...}."""
    d = tempfile.mkdtemp(prefix="tideloop-cg-")
    try:
        # the worker calls these two (through the os module) at the start and
        # the end of its timed part (_common.Stopwatch): zero the counters at
        # the first, dump them at the second
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.%p.out",
               "--trace-children=no", f"--zero-before={MARK_START}",
               f"--dump-before={MARK_STOP}"] + (["--cache-sim=yes"] if cache_sim else []) + [
               sys.executable, WORKER, "--loop", loop,
               "--bench", bench, "--n", str(n), "--no-warmup", "--rounds", "1", "--timeout", str(timeout)]
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60,
                                env=dict(worker_env(), TIDELOOP_BENCH_CALLGRIND_MARKERS="1"))
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout + 60:g}s"}
        data = None
        for line in reversed(cp.stdout.strip().splitlines()):
            try:
                data = json.loads(line)
                break
            except ValueError:
                continue
        if data is None:
            return {"ok": False, "error": f"worker exit {cp.returncode}: {cp.stderr[-400:]}"}
        if not data.get("ok"):
            return {"ok": False, "unsupported": data.get("unsupported"),
                    "error": data.get("error")}
        path = os.path.join(d, f"cg.{data['pid']}.out")
        region = "timed part"
        if os.path.exists(path + ".1"):
            path += ".1"         # the first dump: the timed part only
        else:
            region = "whole process"   # a row that does not use Stopwatch.start()
        if not os.path.exists(path):
            return {"ok": False, "error": f"no callgrind output for pid {data['pid']} "
                                          f"({glob.glob(d + '/*')})"}
        total, fns, events = parse_callgrind(path)
        return {"ok": True, "total": total, "fns": fns, "events": events, "region": region,
                "loop_class": data.get("loop_class"), "backend": data.get("backend")}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def parse_strace(path):
    """{syscall: calls} from `strace -c` output."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) in (5, 6) and parts[0][0].isdigit() and parts[-1] != "total":
                try:
                    out[parts[-1]] = out.get(parts[-1], 0) + int(parts[3])
                except ValueError:
                    continue
    return out


def strace_one(loop, bench, n, timeout):
    """Syscall counts of the worker (all threads; -f also follows children,
    e.g. a forked child up to its exec)."""
    d = tempfile.mkdtemp(prefix="tideloop-st-")
    try:
        out = os.path.join(d, "strace.txt")
        cmd = ["strace", "-f", "-c", "-o", out, sys.executable, WORKER, "--loop", loop,
               "--bench", bench, "--n", str(n), "--no-warmup", "--rounds", "1", "--timeout", str(timeout)]
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60,
                                env=worker_env())
        except subprocess.TimeoutExpired:
            return None
        if cp.returncode != 0 or not os.path.exists(out):
            return None
        return parse_strace(out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def measure_syscalls(loop, bench, n, timeout):
    """Differential syscalls per operation between n/2 and n ops, or None."""
    n1 = max(1, n // 2)
    s1 = strace_one(loop, bench, n1, timeout)
    s2 = strace_one(loop, bench, n, timeout) if s1 is not None else None
    if s2 is None:
        return None
    dn = n - n1
    per = {k: (s2.get(k, 0) - s1.get(k, 0)) / dn for k in set(s1) | set(s2)}
    return {k: v for k, v in per.items() if abs(v) >= 0.01}


def measure(loop, bench, n, timeout, syscalls=False, cache_sim=False):
    """Differential instructions per operation between n/2 and n ops."""
    n1 = max(1, n // 2)
    r1 = run_one(loop, bench, n1, timeout, cache_sim)
    if not r1["ok"]:
        return r1
    r2 = run_one(loop, bench, n, timeout, cache_sim)
    if not r2["ok"]:
        return r2
    dn = n - n1
    per_fn = {}
    for k in set(r1["fns"]) | set(r2["fns"]):
        v = (r2["fns"].get(k, 0) - r1["fns"].get(k, 0)) / dn
        if v:
            per_fn[k] = v
    out = {"ok": True, "n": [n1, n], "ir": [r1["total"], r2["total"]], "region": r2["region"],
           "ir_per_op": (r2["total"] - r1["total"]) / dn, "fns_per_op": per_fn,
           "loop_class": r2.get("loop_class")}
    if cache_sim:
        e1, e2 = r1["events"], r2["events"]
        out["cache_per_op"] = {
            "D1 misses": ((e2.get("D1mr", 0) + e2.get("D1mw", 0))
                          - (e1.get("D1mr", 0) + e1.get("D1mw", 0))) / dn,
            "LL misses": ((e2.get("DLmr", 0) + e2.get("DLmw", 0))
                          - (e1.get("DLmr", 0) + e1.get("DLmw", 0))) / dn,
        }
    if syscalls:
        out["syscalls_per_op"] = measure_syscalls(loop, bench, n, timeout)
    return out


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def fmt_ir(x):
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}"


def render(meta, rows, loops, results, top, top_loops):
    L = ["# callgrind: instructions per operation", ""]
    L.append(f"{meta['date']} · Python {meta['python']} · valgrind {meta.get('valgrind')} · "
             f"git {meta.get('git')}")
    L.append("")
    L.append("Ir/op = (Ir(n) − Ir(n/2)) / (n − n/2) of the worker's timed part (all its "
             "threads, between the Stopwatch markers) under `valgrind --tool=callgrind`; "
             "lower is better. A/B = Ir/op(B) / Ir/op(A): above 1.00x, A executes fewer "
             "instructions per operation.")
    L.append("")
    have = [lp for lp in loops]
    prs = [(a, b) for a, b in (("tideloop", "uvloop"), ("rloop", "uvloop"),
                               ("tideloop", "rloop"), ("tideloop-libuv", "tideloop"))
           if a in have and b in have]
    hdr = ["row", "n"] + [f"{lp} Ir/op" for lp in have] + [f"{a}/{b}" for a, b in prs]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---", "---:"] + ["---:"] * (len(hdr) - 2)) + "|")
    notes = []
    for b in rows:
        row = [b, f"{rows[b] // 2:,}→{rows[b]:,}"]
        for lp in have:
            r = results[b][lp]
            if r["ok"]:
                row.append(fmt_ir(r["ir_per_op"]))
                if r.get("region") != "timed part":
                    notes.append(f"{b} / {lp}: counted the {r.get('region')}")
            else:
                row.append("n/a" if r.get("unsupported") else "FAIL")
                notes.append(f"{b} / {lp}: {r.get('error')}")
        for a_, b_ in prs:
            ra, rb = results[b][a_], results[b][b_]
            if ra["ok"] and rb["ok"] and ra["ir_per_op"] > 0:
                row.append(f"{rb['ir_per_op'] / ra['ir_per_op']:.2f}x")
            else:
                row.append("n/a")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if any(results[b][lp].get("cache_per_op") for b in rows for lp in have):
        L.append("Data-cache misses per operation (`--cache-sim=yes`, valgrind's model of "
                 "this machine's caches; D1 = first level, LL = last level):")
        L.append("")
        L.append("| row | " + " | ".join(f"{lp} D1 / LL" for lp in have) + " |")
        L.append("|---|" + "|".join("---:" for _ in have) + "|")
        for b in rows:
            row = [b]
            for lp in have:
                c = results[b][lp].get("cache_per_op")
                row.append(f"{c['D1 misses']:,.1f} / {c['LL misses']:,.2f}" if c else "n/a")
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    if any(results[b][lp].get("syscalls_per_op") is not None
           for b in rows for lp in have):
        L.append("System calls per operation (`strace -f -c`, the same n/2 → n difference "
                 "of the whole process; kernel time is invisible to callgrind), total and the "
                 "most frequent:")
        L.append("")
        L.append("| row | " + " | ".join(have) + " |")
        L.append("|---|" + "|".join("---" for _ in have) + "|")
        for b in rows:
            row = [b]
            for lp in have:
                sc = results[b][lp].get("syscalls_per_op")
                if sc is None:
                    row.append("n/a")
                    continue
                top5 = sorted(sc.items(), key=lambda kv: -kv[1])[:5]
                row.append(f"**{sum(sc.values()):.1f}**: " +
                           ", ".join(f"{k} {v:.2f}" for k, v in top5))
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    for b in rows:
        cols = [lp for lp in top_loops if lp in have and results[b][lp]["ok"]]
        if not cols:
            continue
        L.append(f"### {b}: top {top} functions by self instructions per operation")
        L.append("")
        L.append("| # | " + " | ".join(f"{lp} function | Ir/op" for lp in cols) + " |")
        L.append("|---:|" + "|".join("---|---:" for _ in cols) + "|")
        tops = {lp: sorted(results[b][lp]["fns_per_op"].items(), key=lambda kv: -kv[1])[:top]
                for lp in cols}
        for i in range(top):
            row = [str(i + 1)]
            for lp in cols:
                if i < len(tops[lp]):
                    k, v = tops[lp][i]
                    row += [f"`{k}`", fmt_ir(v)]
                else:
                    row += ["", ""]
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    if notes:
        L.append("Notes:")
        L.append("")
        L += [f"- {nt}" for nt in notes]
        L.append("")
    return "\n".join(L)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--bench", action="append", metavar="ROW[,ROW]",
                   help="rows to measure (default: the rows where rloop led, see --list)")
    p.add_argument("--loops", default="uvloop,rloop,tideloop",
                   help=f"comma-separated subset of {','.join(LOOPS)} (default "
                        f"uvloop,rloop,tideloop)")
    p.add_argument("--n", type=int, help="operations of the larger run (the smaller: n/2); "
                                         "default: per row, see --list")
    p.add_argument("--top", type=int, default=10, help="functions listed per loop (10)")
    p.add_argument("--top-loops", default="tideloop,rloop",
                   help="loops whose top functions are listed (default tideloop,rloop)")
    p.add_argument("-j", "--jobs", type=int, default=2,
                   help="valgrind runs in parallel (instruction counts do not depend on it)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per valgrind run")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results", "callgrind"))
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--syscalls", action="store_true",
                   help="also count system calls per operation (strace -f -c, the same "
                        "n/2 and n runs): callgrind counts user-space instructions only")
    p.add_argument("--cache-sim", action="store_true",
                   help="also simulate the caches (valgrind --cache-sim=yes) and report "
                        "data-cache misses per operation (D1 = first level, LL = last level)")
    p.add_argument("--list", action="store_true", help="list the default rows and sizes")
    a = p.parse_args()

    if a.list:
        for b, n in DEFAULT_ROWS.items():
            print(f"{b:20} n={n // 2:,}→{n:,}")
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("callgrind: valgrind not found (apt-get install -y valgrind)")
    if a.syscalls and shutil.which("strace") is None:
        sys.exit("callgrind: --syscalls needs strace (apt-get install -y strace)")
    catalog = list_benches()
    names = split_csv(a.bench) or list(DEFAULT_ROWS)
    unknown = [b for b in names if b not in catalog]
    if unknown:
        p.error(f"unknown row(s) {unknown}")
    rows = {b: a.n or DEFAULT_ROWS.get(b) or max(20, catalog[b]["default_n"] // 20)
            for b in names}
    loops = split_csv([a.loops])
    bad = [lp for lp in loops if lp not in LOOPS]
    if bad:
        p.error(f"unknown loop(s) {bad}")
    top_loops = split_csv([a.top_loops])

    jobs = [(b, lp) for b in rows for lp in loops]
    results = {b: {} for b in rows}
    with concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as ex:
        futs = {ex.submit(measure, lp, b, rows[b], a.timeout, a.syscalls, a.cache_sim): (b, lp)
                for b, lp in jobs}
        for fut in concurrent.futures.as_completed(futs):
            b, lp = futs[fut]
            r = fut.result()
            results[b][lp] = r
            log(f"{b:18} {lp:14} " + (f"{r['ir_per_op']:12,.0f} Ir/op" if r["ok"]
                                       else f"n/a: {r.get('error')}"))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "valgrind": (_cmd(["valgrind", "--version"]) or "?").replace("valgrind-", ""),
        "git": _cmd(["git", "-C", os.path.dirname(HERE), "rev-parse", "--short", "HEAD"]),
        "method": "(Ir(n) - Ir(n/2)) / (n - n/2) of the timed part (Stopwatch markers), "
                  "--no-warmup",
    }
    md = render(meta, rows, loops, results, a.top, top_loops)
    print(md)
    if not a.no_save:
        os.makedirs(a.out_dir, exist_ok=True)
        with open(os.path.join(a.out_dir, "latest.md"), "w") as f:
            f.write(md)
        doc = {"metadata": meta, "rows": rows, "loops": loops, "results": {
            b: {lp: dict(r, fns_per_op=dict(sorted(r.get("fns_per_op", {}).items(),
                                                   key=lambda kv: -kv[1])[:50]))
                for lp, r in rs.items()} for b, rs in results.items()}}
        with open(os.path.join(a.out_dir, "latest.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        log(f"wrote {a.out_dir}/latest.md and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
