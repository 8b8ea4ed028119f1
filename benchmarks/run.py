#!/usr/bin/env python3
"""Compare tideloop, stock asyncio and uvloop side by side in one run.

Every (repetition, benchmark, loop) sample runs in a fresh subprocess
(benchmarks/_worker.py) that times the hot part itself and verifies its
result.  Loops are interleaved inside each repetition (asyncio, uvloop,
tideloop, asyncio, ...) so machine drift hits all of them alike.  Reported
numbers are ratios of medians: speedup = median(asyncio) / median(loop).

    python benchmarks/run.py                 # all benchmarks, all loops, 5 reps
    python benchmarks/run.py --quick         # smoke test: repeat=3, scale=0.2
    python benchmarks/run.py --only call_soon,gather --repeat 9
    python benchmarks/run.py --loops asyncio,tideloop --require tideloop
    python benchmarks/run.py --only net --metric cpu     # the networking rows

--only takes benchmark names and the group names "core" (loop internals)
and "net" (loopback TCP/Unix/UDP echo and the wrk-driven HTTP server).

Writes benchmarks/results/latest.md and benchmarks/results/latest.json.
Exit status: 0 ok; 1 some sample failed (wrong result / crash / timeout);
2 a --require'd loop is unavailable.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_worker.py")
LOOPS = ("asyncio", "uvloop", "tideloop")
BASE = "asyncio"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def worker_env():
    env = dict(os.environ)
    # debug modes change the loops' behaviour and cost; keep them off
    for k in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC"):
        env.pop(k, None)
    env["PYTHONHASHSEED"] = "0"
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
    meta["tideloop_version"] = tl.get("version") if tl.get("ok") else None
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
# statistics / formatting
# ---------------------------------------------------------------------------

def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def fmt_x(x):
    return "n/a" if x is None else f"{x:.2f}x"


def analyse(benches, loops, samples, failures, avail):
    """Build the per-benchmark result dict stored in latest.json."""
    out = {}
    for b, n in benches:
        res = {}
        for lp in loops:
            s = samples[(b, lp)]
            f = failures[(b, lp)]
            if not avail[lp]:
                status = "n/a"
            elif f:
                status = "fail"
            elif not s:
                status = "n/a"
            else:
                status = "ok"
            med = statistics.median(s) if s and status == "ok" else None
            res[lp] = {
                "status": status,
                "samples": s,
                "median": med,
                "min": min(s) if s else None,
                "max": max(s) if s else None,
                "spread_pct": (100.0 * (max(s) - min(s)) / med) if med else None,
                "failures": f,
            }
        base = res.get(BASE, {}).get("median")
        speed, ratio, paired = {}, {}, {}
        for lp in loops:
            m = res[lp]["median"]
            speed[lp] = (base / m) if base and m else None
            ratio[lp] = (m / base) if base and m else None
            # per-repetition paired speedups (same repetition = same drift)
            if base and m:
                pr = [a / x for a, x in zip(res[BASE]["samples"], res[lp]["samples"])]
                paired[lp] = {"median": statistics.median(pr), "min": min(pr), "max": max(pr)}
        tv = tvp = None
        if "tideloop" in res and "uvloop" in res:
            mt, mu = res["tideloop"]["median"], res["uvloop"]["median"]
            tv = (mu / mt) if mt and mu else None
            if tv:
                pr = [u / t for u, t in zip(res["uvloop"]["samples"], res["tideloop"]["samples"])]
                tvp = {"median": statistics.median(pr), "min": min(pr), "max": max(pr)}
        out[b] = {"n": n, "results": res, "speedup_vs_asyncio": speed,
                  "time_ratio_vs_asyncio": ratio, "paired_speedup_vs_asyncio": paired,
                  "tideloop_vs_uvloop": tv, "tideloop_vs_uvloop_paired": tvp}
    return out


def rps_notes(analysis, loops):
    """Absolute numbers for benchmarks whose worker reports req/s (http_wrk):
    the table only has ratios, these say what the ratios are made of."""
    out = []
    for b, an in analysis.items():
        parts = []
        for lp in loops:
            infos = [i for i in an["results"][lp].get("infos") or [] if i and "rps" in i]
            if not infos or an["results"][lp]["status"] != "ok":
                continue
            med = lambda k: statistics.median(i[k] for i in infos)  # noqa: E731
            parts.append(f"{lp} {med('rps'):,.0f} req/s, {med('cpu_us_per_req'):.2f} µs "
                         f"server CPU/req, server busy {100 * med('server_cpu_util'):.0f}%, "
                         f"p99 {med('lat_p99_ms'):.1f} ms")
        if parts:
            out.append(f"{b} medians: " + "; ".join(parts) +
                       " (wall metric: time = 1/req/s; cpu metric: server CPU per request)")
    return out


def cell_speed(r, lp, speed):
    st = r[lp]["status"]
    if st == "fail":
        return "FAIL"
    if st == "n/a":
        return "n/a"
    return fmt_x(speed.get(lp)) if speed.get(lp) is not None else "n/a (no baseline)"


def render_md(meta, cfg, probes, analysis, notes):
    loops = cfg["loops"]
    L = []
    L.append("# tideloop benchmarks")
    L.append("")
    up = meta.get("tideloop_version")
    L.append(
        f"{meta['date']} · Python {meta['python']} · libuv {meta.get('libuv_version') or '?'}"
        f" ({meta.get('libuv_version_source')}) · uvloop {meta.get('uvloop_version') or 'n/a'}"
        f" · tideloop {up or ('n/a' if not (probes.get('tideloop') or {}).get('ok') else '?')}"
        + (f" · git {meta['git']}" if meta.get("git") else ""))
    L.append(
        f"{meta['machine']} · {meta.get('cpu_model') or '?'} · nproc {meta['nproc']}"
        f" · loadavg {fmt_load(meta.get('loadavg_start'))} → {fmt_load(meta.get('loadavg_end'))}")
    L.append(
        f"repeat={cfg['repeat']}"
        + (f" (net rows: {cfg['net_repeat']})" if cfg.get("net_repeat") not in (None, cfg["repeat"]) else "")
        + f" scale={cfg['scale']:g} metric={cfg['metric']}"
        f" warmup={'on' if cfg['warmup'] else 'off'}"
        f" · loops interleaved per repetition · speedup = median(asyncio) / median(loop)")
    L.append("")
    hdr = ["benchmark"]
    for lp in loops:
        hdr.append("asyncio (baseline)" if lp == BASE else f"{lp} (vs asyncio)")
    both = "tideloop" in loops and "uvloop" in loops
    if both:
        hdr.append("tideloop vs uvloop")
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    gm = {lp: [] for lp in loops}
    gm_tv = []
    for b, a in analysis.items():
        r, speed = a["results"], a["speedup_vs_asyncio"]
        row = [b]
        for lp in loops:
            row.append(cell_speed(r, lp, speed))
            if speed.get(lp):
                gm[lp].append(speed[lp])
        if both:
            tv = a["tideloop_vs_uvloop"]
            if r["tideloop"]["status"] == "fail" or r["uvloop"]["status"] == "fail":
                row.append("FAIL")
            else:
                row.append(fmt_x(tv))
            if tv:
                gm_tv.append(tv)
        L.append("| " + " | ".join(row) + " |")
    if len(analysis) > 1:
        row = ["**geometric mean**"]
        for lp in loops:
            g = geomean(gm[lp]) if len(gm[lp]) == len(analysis) else None
            row.append(f"**{fmt_x(g)}**" if g else "n/a")
        if both:
            g = geomean(gm_tv) if len(gm_tv) == len(analysis) else None
            row.append(f"**{fmt_x(g)}**" if g else "n/a")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Higher is better everywhere: `2.00x` = twice as fast as asyncio; "
             "\"tideloop vs uvloop\" > 1 means tideloop is faster than uvloop. "
             "FAIL = a sample produced a wrong result, crashed or timed out.")
    L.append("")
    # noise table
    L.append("Noise: spread = (max - min) / median of the samples; paired = range of "
             "per-repetition speedups vs asyncio"
             + ("; tideloop/uvloop paired = range of per-repetition uvloop time / "
                "tideloop time" if both else "") + ".")
    L.append("")
    hdr = ["benchmark", "n"] + [f"{lp} spread" for lp in loops] + \
          [f"{lp} paired" for lp in loops if lp != BASE] + \
          (["tideloop/uvloop paired"] if both else [])
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    for b, a in analysis.items():
        r = a["results"]
        row = [b, f"{a['n']:,}"]
        for lp in loops:
            sp = r[lp]["spread_pct"]
            row.append("n/a" if sp is None else f"{sp:.0f}%")
        for lp in loops:
            if lp == BASE:
                continue
            p = a["paired_speedup_vs_asyncio"].get(lp)
            row.append(f"{p['min']:.2f}–{p['max']:.2f}x" if p else "n/a")
        if both:
            p = a.get("tideloop_vs_uvloop_paired")
            row.append(f"{p['min']:.2f}–{p['max']:.2f}x" if p else "n/a")
        L.append("| " + " | ".join(row) + " |")
    if notes:
        L.append("")
        L.append("Notes:")
        for nt in notes:
            L.append(f"- {nt}")
    L.append("")
    return "\n".join(L)


def fmt_load(la):
    return "?" if not la else "/".join(f"{x:.2f}" for x in la)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def split_csv(values):
    out = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def main():
    p = argparse.ArgumentParser(
        description="Compare asyncio / uvloop / tideloop (ratios of medians).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--repeat", type=int, help="repetitions per (benchmark, loop); default 5")
    p.add_argument("--net-repeat", type=int,
                   help="repetitions for the network rows (group 'net'); default: "
                        "same as --repeat")
    p.add_argument("--scale", type=float, help="multiply every benchmark size; default 1.0")
    p.add_argument("--quick", action="store_true", help="smoke test: repeat=3, scale=0.2")
    p.add_argument("--only", action="append", metavar="NAME[,NAME]",
                   help="run only these benchmarks (repeatable / comma-separated); "
                        "the group names 'core' and 'net' select whole groups")
    p.add_argument("--loops", default=",".join(LOOPS),
                   help="comma-separated subset of asyncio,uvloop,tideloop (this order is "
                        "also the run order within a repetition)")
    p.add_argument("--require", action="append", metavar="LOOP",
                   help="fail (exit 2) instead of showing n/a if LOOP is unavailable")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds before a single worker is stopped and counted as FAIL; "
                        "after a timeout that (benchmark, loop) is not retried")
    p.add_argument("--metric", choices=("wall", "cpu"), default="wall",
                   help="what the ratios are computed from: wall time (default) or the "
                        "worker's process CPU time (less sensitive to other tenants "
                        "preempting us; both are always stored in latest.json)")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the small warm-up run inside each worker")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"),
                   help="where latest.md / latest.json go (default benchmarks/results)")
    p.add_argument("--no-save", action="store_true", help="only print, write no files")
    p.add_argument("--list", action="store_true", help="list benchmarks and exit")
    a = p.parse_args()

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

    # ---- probe loops
    notes = []
    probes, avail = {}, {}
    for lp in loops:
        data, rc, err = run_worker(["--probe", "--loop", lp], 60)
        if data is None:
            data = {"loop": lp, "ok": False, "error": f"probe crashed rc={rc}: {err.strip()[-300:]}"}
        probes[lp] = data
        avail[lp] = bool(data.get("ok"))
        if not avail[lp]:
            if lp in required:
                log(f"error: --require {lp}: {lp} unavailable: {data.get('error')}")
                return 2
            msg = f"{lp} unavailable ({data.get('error')}) → shown as n/a"
            notes.append(msg)
            log(f"note: {msg}")
        else:
            cls = data.get("loop_class", "")
            log(f"{lp}: ok, version {data.get('version')}, loop class {cls}")
            if lp != "asyncio" and cls.startswith("asyncio."):
                notes.append(f"WARNING: {lp}.new_event_loop() returned {cls} — that is "
                             f"asyncio's own loop, not {lp}'s")
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
           "metric": a.metric,
           "benchmarks": dict(benches), "warmup": not a.no_warmup,
           "timeout": a.timeout, "order": "for rep: for benchmark: for loop"}

    # ---- run: repetition outermost, loops interleaved innermost
    samples = {(b, lp): [] for b, _ in benches for lp in loops}
    other = {(b, lp): [] for b, _ in benches for lp in loops}  # the other metric
    infos = {(b, lp): [] for b, _ in benches for lp in loops}  # worker "info" dicts
    key, okey = ("elapsed", "cpu") if a.metric == "wall" else ("cpu", "elapsed")
    failures = {(b, lp): [] for b, _ in benches for lp in loops}
    classes = {}
    hung = set()
    t_start = time.monotonic()
    max_rep = max(reps_of.values()) if reps_of else repeat
    for rep in range(1, max_rep + 1):
        for b, n in benches:
            if rep > reps_of[b]:
                continue
            line = []
            for lp in loops:
                if not avail[lp]:
                    continue
                if (b, lp) in hung:
                    line.append(f"{lp} skipped")
                    continue
                args = ["--loop", lp, "--bench", b, "--n", str(n),
                        "--timeout", str(a.timeout)]
                if a.no_warmup:
                    args.append("--no-warmup")
                t0 = time.monotonic()
                data, rc, err = run_worker(args, a.timeout + 15)
                timed_out = data is None and time.monotonic() - t0 >= a.timeout
                if timed_out:
                    hung.add((b, lp))
                if data is not None and data.get("ok") and rc == 0:
                    samples[(b, lp)].append(data[key])
                    other[(b, lp)].append(data.get(okey))
                    infos[(b, lp)].append(data.get("info"))
                    classes.setdefault(lp, data.get("loop_class"))
                    line.append(f"{lp} ok")
                else:
                    if timed_out:
                        why = f"timed out after {a.timeout:g}s (hung?); not retried this run"
                    else:
                        why = (data or {}).get("error") or f"worker exit {rc}: {err.strip()[-300:]}"
                    failures[(b, lp)].append({"rep": rep, "rc": rc, "error": why,
                                              "stderr": err[-800:] if err else ""})
                    line.append(f"{lp} FAIL")
                    log(f"  FAIL {b} / {lp} (rep {rep}): {why}")
            log(f"[rep {rep}/{reps_of[b]}] {b:22} " + ", ".join(line))
    meta["loadavg_end"] = loadavg()
    meta["wall_seconds"] = round(time.monotonic() - t_start, 1)

    analysis = analyse(benches, loops, samples, failures, avail)
    for (b, lp), xs in other.items():
        r = analysis[b]["results"][lp]
        r["metric"] = a.metric
        r["samples_" + ("cpu" if a.metric == "wall" else "wall")] = xs
        r["infos"] = infos[(b, lp)]
    notes += rps_notes(analysis, loops)
    nfail = 0
    for b, an in analysis.items():
        for lp, r in an["results"].items():
            if r["failures"]:
                nfail += len(r["failures"])
                notes.append(f"{b} / {lp}: {len(r['failures'])}/{reps_of[b]} samples FAILED — "
                             f"first: {r['failures'][0]['error'][:300]}")
    md = render_md(meta, cfg, probes, analysis, notes)
    print(md)
    if not a.no_save:
        os.makedirs(a.out_dir, exist_ok=True)
        doc = {"metadata": meta, "config": cfg, "loops": probes,
               "loop_classes": classes, "benchmarks": analysis, "notes": notes,
               "descriptions": {b: catalog[b]["desc"] for b in bench_names}}
        with open(os.path.join(a.out_dir, "latest.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        with open(os.path.join(a.out_dir, "latest.md"), "w") as f:
            f.write(md)
        log(f"wrote {os.path.join(a.out_dir, 'latest.md')} and latest.json")
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
