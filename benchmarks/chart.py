#!/usr/bin/env python3
"""Bar chart (PNG) of the latest benchmark runs: speedup over stock asyncio
of uvloop, rloop, tideloop and (when it ran) tideloop's libuv backend, per
benchmark, with the run's date, machine and metric under the title.

    python benchmarks/chart.py                       # the default results
    python benchmarks/chart.py RESULTS.json ... -o out.png

Reads the latest.json files that benchmarks/run.py writes (several runs
given on the command line are drawn as groups, one after the other; a row
already drawn from an earlier file is skipped) and writes
benchmarks/results/chart.png, in stacked panels of at most 19 rows.
A loop without a number for a row (n/a, FAIL) gets no bar there.  Needs matplotlib
(benchmarks/requirements.txt; `make bench` installs it).
"""
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
DEFAULT_INPUTS = [os.path.join(RESULTS, "latest.json")]
PANEL_ROWS = 19  # rows per panel
LOOPS = ("uvloop", "rloop", "tideloop", "tideloop-libuv")
COLORS = {"uvloop": "#9a9a9a", "rloop": "#e08a2c", "tideloop": "#1f6fb4",
          "tideloop-libuv": "#7fb3df"}


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = []
    for name, b in data["benchmarks"].items():
        speed = (b.get("vs") or {}).get("asyncio") or b.get("speedup_vs_asyncio") or {}
        res = b.get("results") or {}
        # only samples that all passed count (a FAIL cell has no bar)
        rows.append((name, {lp: speed.get(lp) if (res.get(lp) or {}).get("status") == "ok"
                            else None for lp in LOOPS}))
    return data, rows


def describe(data):
    m = data["metadata"]
    cfg = data["config"]
    return "%s %s, %s x%s, Python %s, %s reps, %s" % (
        m.get("date", "?")[:10], m.get("cpu_model", "?"),
        m.get("machine", "?"), m.get("nproc", "?"), m.get("python", "?"),
        cfg.get("repeat", "?"), metric_text(cfg.get("metric", "wall")))


def metric_text(metric):
    if metric == "auto":
        return "CPU time (wall for the subprocess rows)"
    return metric + " time"


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def draw(inputs, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, seen = [], set()
    for path in inputs:
        if os.path.exists(path):
            data, rows = load(path)
            rows = [r for r in rows if r[0] not in seen]
            seen.update(r[0] for r in rows)
            if rows:
                groups.append((os.path.relpath(path, HERE), data, rows))
    if not groups:
        raise SystemExit("chart: no results found (%s)" % ", ".join(inputs))
    loops = [lp for lp in LOOPS
             if any(speed[lp] for _, _, rows in groups for _, speed in rows)]

    labels, values, seps, notes = [], {lp: [] for lp in loops}, [], []
    for path, data, rows in groups:
        if labels:
            seps.append(len(labels) - 0.5)
        for name, speed in rows:
            labels.append(name)
            for lp in loops:
                values[lp].append(speed[lp] or 0.0)
        notes.append("%s: %s" % (path, describe(data)))
    # geometric means over different row sets would not compare: the
    # geomean bars use only the rows every drawn loop has a number for
    common = [k for k in range(len(labels)) if all(values[lp][k] for lp in loops)]
    labels.append("geomean (%d rows\nall loops ran)" % len(common))
    for lp in loops:
        values[lp].append(geomean([values[lp][k] for k in common]) or 0.0)

    # several panels, stacked, so the picture stays readable with many rows
    n = len(labels)
    panels = max(1, math.ceil(n / PANEL_ROWS))
    per = math.ceil(n / panels)
    width = 0.84 / len(loops)
    positive = [v for lp in loops for v in values[lp] if v > 0]
    ylim = (min(positive + [1.0]) / 1.5, max(positive + [1.0]) * 2.5)
    fig, axes = plt.subplots(panels, 1, squeeze=False,
                             figsize=(max(8, 0.28 * len(loops) * per + 2), 4.6 * panels + 0.6))
    from matplotlib.ticker import FuncFormatter
    for p_, ax in enumerate(axes[:, 0]):
        ks = list(range(p_ * per, min(n, (p_ + 1) * per)))
        for i, lp in enumerate(loops):
            xs = [j + (i - (len(loops) - 1) / 2) * width for j in range(len(ks))]
            vs = [values[lp][k] for k in ks]
            ax.bar(xs, vs, width, label=lp, color=COLORS[lp])
            for x, v in zip(xs, vs):
                if v:
                    ax.text(x, v, "%.2f" % v, ha="center", va="bottom",
                            fontsize=6, rotation=90)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.text(len(ks) - 0.5, 1.0, " asyncio = 1", va="bottom", ha="right", fontsize=7)
        for s_ in seps + [n - 1.5]:
            if ks[0] <= s_ <= ks[-1]:
                ax.axvline(s_ - ks[0], color="#cccccc", linewidth=0.8)
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels([labels[k] for k in ks], rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.6, per - 0.4)
        # Log scale: 0.5x and 2x are the same distance from asyncio's 1x, and
        # one 12x row does not flatten the others.
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%gx" % v))
        ax.set_ylabel("speedup over asyncio (log)")
        ax.set_ylim(*ylim)
        if p_ == 0:
            ax.set_title("%s vs stock asyncio\n(ratios of medians of interleaved "
                         "repetitions; no bar = n/a or FAIL)" % ", ".join(loops),
                         fontsize=10)
            ax.legend(loc="upper right", ncol=len(loops), fontsize=8)
    fig.text(0.01, 0.005, "\n".join(notes), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.025 * len(notes) / panels + 0.01, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="*", default=DEFAULT_INPUTS)
    p.add_argument("-o", "--out", default=os.path.join(RESULTS, "chart.png"))
    args = p.parse_args(argv)
    print("chart: wrote", draw(args.inputs, args.out))


if __name__ == "__main__":
    sys.exit(main())
