#!/usr/bin/env python3
"""Compare stock asyncio, uvloop, rloop and tideloop (plus tideloop on its
libuv backend, TIDELOOP_BACKEND=libuv) side by side in one run.

Every (repetition, benchmark, loop) sample runs in a fresh subprocess
(benchmarks/_worker.py) that times the hot part itself and verifies its
result.  Loops are interleaved inside each repetition (asyncio, uvloop,
rloop, tideloop, ..., the starting loop rotating from one repetition to the
next) so machine drift hits all of them alike.  Reported numbers are ratios
of medians: speedup = median(asyncio) / median(loop), and the same against
uvloop and rloop.  A loop that is not installed, or cannot run a row (it
raises NotImplementedError or lacks the API), shows n/a with the reason.

    python benchmarks/run.py                 # all benchmarks, all loops, 5 reps
    python benchmarks/run.py --quick         # smoke test: repeat=3, scale=0.2
    python benchmarks/run.py --only call_soon,gather --repeat 9
    python benchmarks/run.py --loops asyncio,tideloop --require tideloop
    python benchmarks/run.py --only net --metric cpu     # the networking rows

--only takes benchmark names and the group names "core" (loop internals),
"net" (loopback TCP/Unix/UDP/TLS echo, pipes, the HTTP server) and "proc"
(subprocesses).

Writes benchmarks/results/latest.md and benchmarks/results/latest.json.
Exit status: 0 ok; 1 a sample of asyncio or tideloop failed (wrong result /
crash / timeout; a failing uvloop or rloop sample is reported, not fatal,
unless --strict); 2 a --require'd loop is unavailable.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from _report import BASE, OURS, analyse, render_md, rps_notes, warning_notes

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_worker.py")
LOOPS = ("asyncio", "uvloop", "rloop", "tideloop", "tideloop-libuv")
# a FAIL of these loops makes the exit status 1 (peers' only with --strict)
FATAL = (BASE,) + OURS
HTTP_CLIENT_ENV = "TIDELOOP_BENCH_HTTP_CLIENT"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def worker_env():
    env = dict(os.environ)
    # debug modes change the loops' behaviour and cost; keep them off
    for k in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC"):
        env.pop(k, None)
    env["PYTHONHASHSEED"] = "0"
    # glibc's malloc serves blocks above a threshold with mmap() and raises
    # the threshold when such a block is freed, so its choice depends on
    # the heap's history: rloop's per-read buffers came from mmap/mremap/
    # munmap (3 system calls per read, tcp_proto_1k 3x slower) or from the
    # heap, depending on unrelated allocations before the timed part.
    # Fixed thresholds, the same for every loop, remove that lottery.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(4 << 20))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(8 << 20))
    return env


def run_worker(args, timeout):
    """Run _worker.py with args; return (parsed_json_or_None, rc, stderr_tail)."""
    cmd = [sys.executable, WORKER] + args
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=timeout, env=worker_env())
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, None, f"timed out after {timeout:g}s " + err[-500:]
    data = None
    for line in reversed(cp.stdout.strip().splitlines()):
        try:
            data = json.loads(line)
            break
        except ValueError:
            continue
    return data, cp.returncode, cp.stderr[-1500:]


def list_benches():
    data, rc, err = run_worker(["--list"], 60)
    if data is None:
        sys.exit(f"cannot list benchmarks from {WORKER}: rc={rc} {err}")
    return data


# ---------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------

def _cmd(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip() or None
    except Exception:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("model name", "hardware", "cpu model", "processor") and ":" in line:
                    val = line.split(":", 1)[1].strip()
                    if key != "processor" or not val.isdigit():
                        return val
    except OSError:
        pass
    return platform.processor() or None


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


def stale_sources(repo, built):
    """Source files under ext/ and python/tideloop/ modified after the
    measured tideloop's _core module was built (i.e. `make install` is due,
    or a different build is being measured); [] if none, None if unknown."""
    if not built:
        return None
    newer = []
    for sub, exts in (("ext", (".c", ".h")), (os.path.join("python", "tideloop"), (".py",))):
        d = os.path.join(repo, sub)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for nm in names:
            if nm.endswith(exts) and os.path.getmtime(os.path.join(d, nm)) > built + 1:
                newer.append(os.path.join(sub, nm))
    return sorted(newer)


def metadata(probes):
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "python_executable": sys.executable,
        "machine": platform.machine() or _cmd(["uname", "-m"]),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "loadavg_start": loadavg(),
    }
    try:
        meta["nproc_usable"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    tl = probes.get("tideloop") or {}
    if tl.get("libuv_version"):
        meta["libuv_version"] = tl["libuv_version"]
        meta["libuv_version_source"] = "tideloop._core.libuv_version()"
    else:
        meta["libuv_version"] = _cmd(["pkg-config", "--modversion", "libuv"])
        meta["libuv_version_source"] = "pkg-config --modversion libuv (system libuv)"
    uv = probes.get("uvloop") or {}
    meta["uvloop_version"] = uv.get("version") if uv.get("ok") else None
    rl = probes.get("rloop") or {}
    meta["rloop_version"] = rl.get("version") if rl.get("ok") else None
    meta["tideloop_version"] = tl.get("version") if tl.get("ok") else None
    meta["tideloop_backend"] = tl.get("backend")
    wrk = shutil.which("wrk")
    meta["wrk"] = (_cmd([wrk, "--version"]) or wrk).splitlines()[0] if wrk else None
    repo = os.path.dirname(HERE)
    meta["tideloop_path"] = tl.get("path")
    meta["tideloop_built"] = tl.get("core_mtime")
    meta["tideloop_stale"] = stale_sources(repo, tl.get("core_mtime"))
    head = _cmd(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    if head:
        dirty = _cmd(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
        meta["git"] = head + ("-dirty" if dirty else "")
    return meta


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def split_csv(values):
    out = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def row_metric(metric, group):
    """auto: CPU time of the worker process (steadier on a shared box), except
    for the subprocess rows, whose work is mostly in the children: wall."""
    if metric != "auto":
        return metric
    return "wall" if group == "proc" else "cpu"


def parse_args():
    p = argparse.ArgumentParser(
        description="Compare asyncio / uvloop / rloop / tideloop (ratios of medians).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--repeat", type=int, help="repetitions per (benchmark, loop); default 5")
    p.add_argument("--net-repeat", type=int,
                   help="repetitions for the network rows (group 'net'); default: "
                        "same as --repeat")
    p.add_argument("--scale", type=float, help="multiply every benchmark size; default 1.0")
    p.add_argument("--quick", action="store_true", help="smoke test: repeat=3, scale=0.2")
    p.add_argument("--only", action="append", metavar="NAME[,NAME]",
                   help="run only these benchmarks (repeatable / comma-separated); "
                        "the group names 'core', 'net' and 'proc' select whole groups")
    p.add_argument("--loops", default=",".join(LOOPS),
                   help=f"comma-separated subset of {','.join(LOOPS)} (default: all; "
                        f"a loop that is not installed shows n/a)")
    p.add_argument("--require", action="append", metavar="LOOP",
                   help="fail (exit 2) instead of showing n/a if LOOP is unavailable")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds before a single worker is stopped and counted as FAIL; "
                        "after a timeout that (benchmark, loop) is not retried")
    p.add_argument("--metric", choices=("auto", "wall", "cpu"), default="auto",
                   help="what the ratios are computed from: the worker's process CPU time "
                        "(cpu), wall time (wall), or auto (default): cpu, but wall for the "
                        "subprocess rows; both are always stored in latest.json")
    p.add_argument("--http-client", choices=("auto", "wrk", "python"), default="auto",
                   help="load client of the HTTP rows: wrk, the pure-Python "
                        "benchmarks/_httpclient.py, or auto (wrk if installed)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 on a failed uvloop/rloop sample too")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the small warm-up run inside each worker")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"),
                   help="where latest.md / latest.json go (default benchmarks/results)")
    p.add_argument("--no-save", action="store_true", help="only print, write no files")
    p.add_argument("--list", action="store_true", help="list benchmarks and exit")
    return p, p.parse_args()


def probe_loops(loops, required, notes):
    """Run each loop's probe; returns (probes, unavailable {loop: reason})
    or None when a --require'd loop is missing."""
    probes, unavail = {}, {}
    for lp in loops:
        data, rc, err = run_worker(["--probe", "--loop", lp], 60)
        if data is None:
            data = {"loop": lp, "ok": False,
                    "error": f"probe crashed rc={rc}: {err.strip()[-300:]}"}
        probes[lp] = data
        if not data.get("ok"):
            if lp in required:
                log(f"error: --require {lp}: {lp} unavailable: {data.get('error')}")
                return None
            unavail[lp] = f"unavailable: {data.get('error')}"
            log(f"note: {lp} unavailable ({data.get('error')}) → shown as n/a")
        else:
            cls = data.get("loop_class", "")
            log(f"{lp}: ok, version {data.get('version')}, loop class {cls}"
                + (f", backend {data.get('backend')}" if "backend" in data else ""))
            if lp != BASE and cls.startswith("asyncio."):
                notes.append(f"WARNING: {lp}.new_event_loop() returned {cls} — that is "
                             f"asyncio's own loop, not {lp}'s")
    return probes, unavail


def run_all(a, benches, reps_of, loops, avail, metrics):
    """Repetition outermost, then benchmark, then the loops (interleaved,
    the starting loop rotating per repetition)."""
    runs = {(b, lp): {"samples": [], "reps": [], "other": [], "infos": [], "failures": [],
                      "unsupported": None}
            for b, _ in benches for lp in loops}
    hung = set()
    active = [lp for lp in loops if avail[lp]]
    max_rep = max(reps_of.values()) if reps_of else 0
    for rep in range(1, max_rep + 1):
        k = (rep - 1) % len(active) if active else 0
        order = active[k:] + active[:k]
        for b, n in benches:
            if rep > reps_of[b]:
                continue
            key, okey = ("elapsed", "cpu") if metrics[b] == "wall" else ("cpu", "elapsed")
            line = []
            for lp in order:
                r = runs[(b, lp)]
                if r["unsupported"]:
                    continue
                if (b, lp) in hung:
                    line.append(f"{lp} skipped")
                    continue
                args = ["--loop", lp, "--bench", b, "--n", str(n), "--timeout", str(a.timeout)]
                if a.no_warmup:
                    args.append("--no-warmup")
                t0 = time.monotonic()
                data, rc, err = run_worker(args, a.timeout + 15)
                timed_out = data is None and time.monotonic() - t0 >= a.timeout
                if timed_out:
                    hung.add((b, lp))
                if data is not None and data.get("ok") and rc == 0:
                    r["samples"].append(data[key])
                    r["reps"].append(rep)
                    r["other"].append(data.get(okey))
                    r["infos"].append(data.get("info"))
                    line.append(f"{lp} ok")
                elif data is not None and data.get("unsupported"):
                    # deterministic: the loop lacks the API, no need to retry
                    r["unsupported"] = data["unsupported"]
                    line.append(f"{lp} n/a")
                    log(f"  n/a {b} / {lp}: {data['unsupported']}")
                else:
                    if timed_out:
                        why = f"timed out after {a.timeout:g}s (hung?); not retried this run"
                    else:
                        why = (data or {}).get("error") or \
                            f"worker exit {rc}: {err.strip()[-300:]}"
                    r["failures"].append({"rep": rep, "rc": rc, "error": why,
                                          "stderr": err[-800:] if err else ""})
                    line.append(f"{lp} FAIL")
                    log(f"  FAIL {b} / {lp} (rep {rep}): {why}")
            log(f"[rep {rep}/{reps_of[b]}] {b:22} " + ", ".join(line))
    return runs


def main():
    p, a = parse_args()
    catalog = list_benches()
    if a.list:
        for name, d in catalog.items():
            print(f"{name:20} {d.get('group', 'core'):4}  n={d['default_n']:>7,} "
                  f"{d.get('unit', ''):12} {d['desc']}")
        return 0

    repeat = a.repeat if a.repeat is not None else (3 if a.quick else 5)
    scale = a.scale if a.scale is not None else (0.2 if a.quick else 1.0)
    if repeat < 1 or scale <= 0:
        p.error("--repeat must be >= 1 and --scale > 0")
    loops = split_csv([a.loops])
    bad = [lp for lp in loops if lp not in LOOPS]
    if bad or not loops:
        p.error(f"unknown loop(s) {bad}; choose from {', '.join(LOOPS)}")
    loops = list(dict.fromkeys(loops))
    required = split_csv(a.require)
    bad = [lp for lp in required if lp not in LOOPS]
    if bad:
        p.error(f"unknown loop(s) in --require: {bad}")
    for lp in required:
        if lp not in loops:
            loops.append(lp)
    groups = {}
    for b, d in catalog.items():
        groups.setdefault(d.get("group", "core"), []).append(b)
    only = []
    for x in split_csv(a.only):
        only += groups.get(x, [x])
    unknown = [b for b in only if b not in catalog]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; known: {', '.join(catalog)} "
                f"(groups: {', '.join(groups)})")
    bench_names = [b for b in catalog if not only or b in only]
    benches = [(b, max(10, int(round(catalog[b]["default_n"] * scale)))) for b in bench_names]
    net_repeat = a.net_repeat if a.net_repeat is not None else repeat
    if net_repeat < 1:
        p.error("--net-repeat must be >= 1")
    reps_of = {b: (net_repeat if catalog[b].get("group") == "net" else repeat)
               for b in bench_names}
    metrics = {b: row_metric(a.metric, catalog[b].get("group", "core")) for b in bench_names}
    os.environ[HTTP_CLIENT_ENV] = a.http_client

    notes = []
    got = probe_loops(loops, required, notes)
    if got is None:
        return 2
    probes, unavail = got
    avail = {lp: lp not in unavail for lp in loops}
    if BASE not in loops or not avail.get(BASE):
        notes.append("asyncio baseline not run → speedups vs asyncio are n/a")

    meta = metadata(probes)
    if meta.get("tideloop_stale"):
        msg = (f"WARNING: the measured tideloop ({meta.get('tideloop_path')}) was built "
               f"before the last change to {', '.join(meta['tideloop_stale'][:4])} — "
               f"run `make install` first, or note which build this is; the git rev "
               f"above is the repo's, not necessarily the build's")
        notes.append(msg)
        log(f"note: {msg}")
    cfg = {"repeat": repeat, "net_repeat": net_repeat, "scale": scale, "loops": loops,
           "metric": a.metric, "metrics": metrics, "http_client": a.http_client,
           "benchmarks": dict(benches), "warmup": not a.no_warmup,
           "timeout": a.timeout,
           "order": "for rep: for benchmark: for loop (start rotates by repetition)"}

    t_start = time.monotonic()
    runs = run_all(a, benches, reps_of, loops, avail, metrics)
    meta["loadavg_end"] = loadavg()
    meta["wall_seconds"] = round(time.monotonic() - t_start, 1)

    analysis = analyse(benches, loops, runs, unavail, metrics)
    for b in analysis:
        analysis[b]["rounds"] = catalog[b].get("rounds", 1)
    for (b, lp), r in runs.items():
        res = analysis[b]["results"][lp]
        res["metric"] = metrics[b]
        res["samples_" + ("cpu" if metrics[b] == "wall" else "wall")] = r["other"]
        res["infos"] = r["infos"]
    notes += rps_notes(analysis, loops)
    notes += warning_notes(analysis, loops)
    nfail = nfatal = 0
    for b, an in analysis.items():
        for lp, r in an["results"].items():
            if r["failures"]:
                nfail += len(r["failures"])
                if lp in FATAL or a.strict:
                    nfatal += len(r["failures"])
                notes.append(f"{b} / {lp}: {len(r['failures'])}/{reps_of[b]} samples FAILED — "
                             f"first: {r['failures'][0]['error'][:300]}")
    md = render_md(meta, cfg, probes, analysis, notes, unavail)
    print(md)
    if not a.no_save:
        os.makedirs(a.out_dir, exist_ok=True)
        doc = {"metadata": meta, "config": cfg, "loops": probes,
               "unavailable": unavail, "benchmarks": analysis, "notes": notes,
               "descriptions": {b: catalog[b]["desc"] for b in bench_names}}
        with open(os.path.join(a.out_dir, "latest.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        with open(os.path.join(a.out_dir, "latest.md"), "w") as f:
            f.write(md)
        log(f"wrote {os.path.join(a.out_dir, 'latest.md')} and latest.json")
    if nfail and not nfatal:
        log(f"note: {nfail} failed samples, all of peer loops (exit 0; --strict makes it 1)")
    return 1 if nfatal else 0


if __name__ == "__main__":
    sys.exit(main())
