"""Statistics and the Markdown report of benchmarks/run.py.

Every number in the report is a ratio of medians.  For loops A and REF,
"A/REF" = median(REF) / median(A): above 1.00x means A is faster.  Paired
ranges use only the repetitions where both loops produced a sample, so one
failed sample does not shift the pairing.
"""

import math
import statistics

BASE = "asyncio"
PEERS = ("uvloop", "rloop")
OURS = ("tideloop", "tideloop-libuv")


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def fmt_x(x):
    return "n/a" if x is None else f"{x:.2f}x"


def fmt_load(la):
    return "?" if not la else "/".join(f"{x:.2f}" for x in la)


def _paired(ref, lp):
    """Range of per-repetition speedups of lp over ref (same repetitions)."""
    a = dict(zip(ref["reps"], ref["samples"]))
    b = dict(zip(lp["reps"], lp["samples"]))
    pr = [a[r] / b[r] for r in a if r in b and b[r]]
    if not pr:
        return None
    return {"median": statistics.median(pr), "min": min(pr), "max": max(pr), "n": len(pr)}


PAIRS = (("tideloop", "uvloop"), ("rloop", "uvloop"), ("tideloop", "rloop"),
         ("tideloop-libuv", "uvloop"), ("tideloop-libuv", "rloop"),
         ("tideloop-libuv", "tideloop"))
REFS = (BASE,) + PEERS + ("tideloop",)


def pairs(loops, avail):
    """The head-to-head columns (A, B) whose two loops both ran."""
    have = {lp for lp in loops if avail.get(lp)}
    return [(a, b) for a, b in PAIRS if a in have and b in have]


def analyse(benches, loops, runs, unavail, metrics):
    """runs[(bench, loop)] = {"samples", "reps", "other", "infos",
    "failures", "unsupported"}; unavail = {loop: reason} for the loops that
    did not run at all.  Returns the per-benchmark dict stored in
    latest.json."""
    out = {}
    for b, n in benches:
        res = {}
        for lp in loops:
            r = runs[(b, lp)]
            s = r["samples"]
            if lp in unavail:
                status = "n/a"
            elif r["unsupported"]:
                status = "n/a"
            elif r["failures"]:
                status = "fail"
            elif not s:
                status = "n/a"
            else:
                status = "ok"
            med = statistics.median(s) if s and status == "ok" else None
            res[lp] = {
                "status": status,
                "samples": s,
                "reps": r["reps"],
                "median": med,
                "min": min(s) if s else None,
                "max": max(s) if s else None,
                "spread_pct": (100.0 * (max(s) - min(s)) / med) if med else None,
                "failures": r["failures"],
                "na_reason": unavail.get(lp) or r["unsupported"],
            }
        vs, vs_paired = {}, {}
        for ref in REFS:
            if ref not in res:
                continue
            mref = res[ref]["median"]
            vs[ref], vs_paired[ref] = {}, {}
            for lp in loops:
                m = res[lp]["median"]
                vs[ref][lp] = (mref / m) if mref and m else None
                vs_paired[ref][lp] = _paired(res[ref], res[lp]) if mref and m else None
        out[b] = {
            "n": n, "metric": metrics[b], "results": res, "vs": vs, "vs_paired": vs_paired,
            # the keys of the earlier three-loop format, kept for old readers
            "speedup_vs_asyncio": vs.get(BASE, {}),
            "time_ratio_vs_asyncio": {lp: (1 / x if x else None)
                                      for lp, x in vs.get(BASE, {}).items()},
            "paired_speedup_vs_asyncio": {lp: p for lp, p in vs_paired.get(BASE, {}).items()
                                          if p and lp != BASE},
            "tideloop_vs_uvloop": vs.get("uvloop", {}).get("tideloop"),
            "tideloop_vs_uvloop_paired": vs_paired.get("uvloop", {}).get("tideloop"),
        }
    return out


def ratio(an, lp, ref):
    return an["vs"].get(ref, {}).get(lp)


def rps_notes(analysis, loops):
    """Absolute numbers for the rows whose worker reports req/s (the HTTP
    rows): the table only has ratios, these say what they are made of."""
    out = []
    for b, an in analysis.items():
        parts = []
        for lp in loops:
            r = an["results"][lp]
            infos = [i for i in r.get("infos") or [] if i and "rps" in i]
            if not infos or r["status"] != "ok":
                continue
            med = lambda k: statistics.median(i[k] for i in infos)  # noqa: E731
            parts.append(f"{lp} {med('rps'):,.0f} req/s, {med('cpu_us_per_req'):.2f} µs "
                         f"server CPU/req, server busy {100 * med('server_cpu_util'):.0f}%, "
                         f"p99 {med('lat_p99_ms'):.1f} ms")
        if parts:
            clients = {i.get("client") for lp in loops
                       for i in analysis[b]["results"][lp].get("infos") or [] if i}
            out.append(f"{b} medians: " + "; ".join(parts) +
                       f" (load: {', '.join(sorted(c for c in clients if c))}; wall metric: "
                       f"time = 1/req/s; cpu metric: server CPU per request)")
    return out


def warning_notes(analysis, loops):
    """Warnings a worker attached to its result (info["warning"])."""
    out = []
    for b, an in analysis.items():
        for lp in loops:
            ws = {i["warning"] for i in an["results"][lp].get("infos") or []
                  if i and i.get("warning")}
            for w in sorted(ws):
                out.append(f"{b} / {lp}: {w}")
    return out


class Footnotes:
    """Numbered reasons for n/a cells: the same reason gets one number."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return f"n/a [{self.items.index(text) + 1}]"


def cell(an, lp, notes):
    r = an["results"][lp]
    if r["status"] == "fail":
        return "FAIL"
    if r["status"] == "n/a":
        return notes.ref(f"{lp}: {r['na_reason'] or 'unavailable'}")
    x = ratio(an, lp, BASE)
    return fmt_x(x) if x is not None else "n/a (no baseline)"


def pair_cell(an, lp, ref, notes):
    a, b = an["results"][lp], an["results"][ref]
    if "fail" in (a["status"], b["status"]):
        return "FAIL"
    for who, r in ((lp, a), (ref, b)):
        if r["status"] == "n/a":
            return notes.ref(f"{who}: {r['na_reason'] or 'unavailable'}")
    x = ratio(an, lp, ref)
    if x is None:
        return "n/a"
    # ours behind a peer: bold, so the gaps stand out
    return f"**{fmt_x(x)}**" if lp in OURS and x < 1.0 else fmt_x(x)


def geo_cell(xs, total):
    g = geomean(xs)
    if g is None:
        return "n/a"
    return f"**{fmt_x(g)}**" + ("" if len(xs) == total else f" ({len(xs)} rows)")


def render_md(meta, cfg, probes, analysis, notes, unavail):
    loops = cfg["loops"]
    avail = {lp: lp not in unavail for lp in loops}
    fn = Footnotes()
    for lp, why in unavail.items():
        fn.ref(f"{lp}: {why}")
    L = ["# tideloop benchmarks", ""]
    vers = []
    for lp in loops:
        pr = probes.get(lp) or {}
        vers.append(f"{lp} {pr.get('version') or '?'}" if pr.get("ok") else f"{lp} n/a")
    L.append(f"{meta['date']} · Python {meta['python']} · libuv "
             f"{meta.get('libuv_version') or '?'} ({meta.get('libuv_version_source')}) · "
             + " · ".join(vers) + (f" · git {meta['git']}" if meta.get("git") else ""))
    L.append(f"{meta['machine']} · {meta.get('cpu_model') or '?'} · nproc {meta['nproc']}"
             f" · loadavg {fmt_load(meta.get('loadavg_start'))} → "
             f"{fmt_load(meta.get('loadavg_end'))}")
    L.append(
        f"repeat={cfg['repeat']}"
        + (f" (net rows: {cfg['net_repeat']})"
           if cfg.get("net_repeat") not in (None, cfg["repeat"]) else "")
        + f" scale={cfg['scale']:g} metric={cfg['metric']}"
        f" warmup={'on' if cfg['warmup'] else 'off'}"
        f" · loops interleaved per repetition, rotating start · ratios of medians")
    L.append("")

    # ---- table 1: every loop against asyncio
    L.append("## Speed against stock asyncio")
    L.append("")
    hdr = ["benchmark", "metric"] + [f"{lp}" for lp in loops]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---", "---"] + ["---:"] * len(loops)) + "|")
    gm = {lp: [] for lp in loops}
    for b, an in analysis.items():
        row = [b, an["metric"]]
        for lp in loops:
            row.append(cell(an, lp, fn))
            x = ratio(an, lp, BASE)
            if x and an["results"][lp]["status"] == "ok":
                gm[lp].append(x)
        L.append("| " + " | ".join(row) + " |")
    if len(analysis) > 1:
        L.append("| " + " | ".join(["**geometric mean**", ""] +
                                   [geo_cell(gm[lp], len(analysis)) for lp in loops]) + " |")
    L.append("")
    L.append("`2.00x` = twice as fast as asyncio (median(asyncio) / median(loop)); "
             "higher is better. FAIL = a sample gave a wrong result, crashed or timed out. "
             "A geometric mean over fewer rows than the table says how many.")
    L.append("")

    # ---- table 2: head to head
    prs = pairs(loops, avail)
    if prs:
        L.append("## Head to head")
        L.append("")
        L.append("| " + " | ".join(["benchmark"] + [f"{a}/{b}" for a, b in prs]) + " |")
        L.append("|" + "|".join(["---"] + ["---:"] * len(prs)) + "|")
        gmp = {p: [] for p in prs}
        for b, an in analysis.items():
            row = [b]
            for a_, r_ in prs:
                row.append(pair_cell(an, a_, r_, fn))
                x = ratio(an, a_, r_)
                if x and "fail" not in (an["results"][a_]["status"],
                                        an["results"][r_]["status"]):
                    gmp[(a_, r_)].append(x)
            L.append("| " + " | ".join(row) + " |")
        if len(analysis) > 1:
            L.append("| " + " | ".join(["**geometric mean**"] +
                                       [geo_cell(gmp[p], len(analysis)) for p in prs]) + " |")
        L.append("")
        L.append("A/B = median(B) / median(A): above 1.00x, A is faster than B. "
                 "Bold: tideloop behind a peer. Geometric means of a pair use only the rows "
                 "both loops ran.")
        L.append("")

    # ---- noise
    L.append("## Noise")
    L.append("")
    L.append("spread = (max − min) / median of one loop's samples; paired = range of the "
             "per-repetition ratios A/B (same repetition, so the same machine drift). "
             "A paired range that crosses 1.00x is not a significant difference. "
             "n ×k: each sample ran the row k times (each on a new loop) and "
             "sums their times.")
    L.append("")
    noise_pairs = [(lp, BASE) for lp in loops if lp != BASE and avail.get(lp)] + prs
    hdr = ["benchmark", "n"] + [f"{lp} spread" for lp in loops if avail.get(lp)] + \
          [f"{a}/{b} paired" for a, b in noise_pairs]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    for b, an in analysis.items():
        r = an["results"]
        rounds = an.get("rounds", 1)
        row = [b, f"{an['n']:,}" + (f" ×{rounds}" if rounds > 1 else "")]
        for lp in loops:
            if avail.get(lp):
                sp = r[lp]["spread_pct"]
                row.append("n/a" if sp is None else f"{sp:.0f}%")
        for a_, r_ in noise_pairs:
            p = an["vs_paired"].get(r_, {}).get(a_)
            row.append(f"{p['min']:.2f}–{p['max']:.2f}x" if p else "n/a")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if fn.items:
        L.append("n/a reasons:")
        L.append("")
        for i, t in enumerate(fn.items, 1):
            L.append(f"- [{i}] {t}")
        L.append("")
    if notes:
        L.append("Notes:")
        L.append("")
        for nt in notes:
            L.append(f"- {nt}")
        L.append("")
    return "\n".join(L)
