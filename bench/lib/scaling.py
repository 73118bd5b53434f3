#!/usr/bin/env python3
"""The table and plots of bench/scaling: each metric against container size.

  scaling.py DIR [--before DIR2]

DIR holds one bench/run output per size (DIR/size-<MiB>/runs.jsonl and
timelines/) and DIR/load.txt. Writes DIR/scaling.csv, DIR/scaling.md and
DIR/plots/scaling-*.png (gnuplot, as bench/lib/report.py). With --before,
DIR2 (an earlier bench/scaling run, e.g. of the previous build) is drawn
beside DIR in every plot and the table gives DIR/DIR2 ratios.

Source CPU = bench/run's cpu_src_s: `edgemig migrate` with its waited-for
children (runc and CRIU's dump: the migration's rusage `cpu_s` already
includes `children_cpu_s`) + what bench/run counted on that side;
target CPU = the edgemigd session(s) (wait4 rusage, their children
included). Per round = that divided by the pre-copy rounds + 1 (the final
step reads the memory once more). The floor = the working set: random
pages, which neither compress nor deduplicate, so each crosses at least
once.
"""
import csv
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import gnuplot  # noqa: E402

GIB = 1 << 30
COLS = [
    ("size_mib", "Size MiB"), ("reps", "Runs"), ("rounds", "Rounds"), ("stop", "Stop reason"),
    ("round_s", "s per round"), ("read_gbps", "Round GB/s"),
    ("cpu_src_round_s", "CPU s/round src"), ("cpu_tgt_round_s", "CPU s/round tgt"),
    ("cpu_src_round_s_gib", "…per GiB src"), ("cpu_tgt_round_s_gib", "…per GiB tgt"),
    ("peak_src_mb", "Peak MB src"), ("peak_tgt_mb", "Peak MB tgt"),
    ("hwm_tgt_mb", "edgemigd VmHWM MB tgt"),
    ("wire_x_floor", "Wire / floor"), ("before_handoff_x_floor", "Before handoff / floor"),
    ("handoff_s", "Handoff s"), ("downtime_s", "Downtime s"),
    ("handoff_s_gib", "Handoff s/GiB"), ("downtime_s_gib", "Downtime s/GiB"),
    ("load", "Load (1 min) before/after"),
]


def mean(vals):
    vals = [v for v in vals if v is not None]
    return statistics.mean(vals) if vals else None


def loads(out):
    got = {}
    try:
        for line in open(os.path.join(out, "load.txt")):
            f = line.split()
            got.setdefault(f[0], []).append(f[2])
    except OSError:
        pass
    return got


def run_row(out, r):
    tl = os.path.join(out, "timelines", "memwriter-d%s-%s-%s-%s.json" % (
        ("%g" % r["dirty_mbps"]) if r.get("dirty_mbps") is not None else "", r["method"],
        r["rate_mbit"], r["rep"]))
    t = {}
    for f in [tl] + glob.glob(os.path.join(out, "timelines", "*-%s-%s-%s.json" % (
            r["method"], r["rate_mbit"], r["rep"]))):
        if os.path.exists(f):
            t = json.load(open(f))
            break
    rounds = r.get("rounds") or len(t.get("rounds", [])) or 0
    floor = r["memwriter_mb"] * 1e6
    ms = [x["duration_ms"] for x in t.get("rounds", [])]
    return {
        "rounds": rounds, "stop": r.get("stop_reason") or "",
        "cpu_src": r.get("cpu_src_s") or 0, "cpu_tgt": r.get("cpu_tgt_s"),
        "peak_src_mb": r.get("peak_rss_src_mb"), "peak_tgt_mb": r.get("peak_rss_tgt_mb"),
        "hwm_tgt_mb": r.get("daemon_hwm_tgt_mb"),
        "wire_x_floor": r["wire_bytes"] / floor,
        "before_handoff_x_floor": (r.get("bytes_before_handoff") or 0) / floor,
        "handoff_s": r["handoff_ms"] / 1e3, "downtime_s": r["downtime_ms"] / 1e3,
        "round_s": mean(ms) / 1e3 if ms else None,
        "read_gbps": floor / (mean(ms) / 1e3) / 1e9 if ms and mean(ms) else None,
    }


def failure(d):
    """The first line of bench/run's failures.log in d, shortened."""
    try:
        line = open(os.path.join(d, "failures.log")).readline().strip()
    except OSError:
        return None
    return line if len(line) <= 120 else line[:117] + "..."


def size_rows(out):
    rows = []
    ld = loads(out)
    for d in sorted(glob.glob(os.path.join(out, "size-*")), key=lambda p: int(p.rsplit("-", 1)[1])):
        size = int(d.rsplit("-", 1)[1])
        try:
            runs = [json.loads(x) for x in open(os.path.join(d, "runs.jsonl"))]
        except OSError:
            continue
        runs = [r for r in runs if not r.get("skipped") and r.get("check") == "ok"]
        if not runs:
            why = failure(d)
            if why:
                rows.append({"size_mib": size, "reps": 0, "stop": "failed: " + why,
                             "load": "/".join(ld.get("size-%d" % size, [])[-2:])})
            continue
        per = [run_row(d, r) for r in runs]
        row = {"size_mib": size, "reps": len(per), "stop": "/".join(sorted({p["stop"] for p in per}))}
        for k in per[0]:
            if k != "stop":
                row[k] = mean([p[k] for p in per])
        passes = (row["rounds"] or 0) + 1
        gib = size * (1 << 20) / GIB
        row["cpu_src_round_s"] = row["cpu_src"] / passes
        row["cpu_tgt_round_s"] = row["cpu_tgt"] / passes if row["cpu_tgt"] is not None else None
        row["cpu_src_round_s_gib"] = row["cpu_src_round_s"] / gib
        row["cpu_tgt_round_s_gib"] = row["cpu_tgt_round_s"] / gib if row["cpu_tgt_round_s"] else None
        row["handoff_s_gib"] = row["handoff_s"] / gib
        row["downtime_s_gib"] = row["downtime_s"] / gib
        row["load"] = "/".join(ld.get("size-%d" % size, [])[-2:])  # the last run's before/after
        rows.append(row)
    return rows


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "%.0f" % v
    return str(v)


def table(rows, before):
    lines = ["| " + " | ".join(h for _, h in COLS) + " |", "|" + "---|" * len(COLS)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k)) for k, _ in COLS) + " |")
    if before:
        bs = {b["size_mib"]: b for b in before}
        keys = [k for k, _ in COLS if k not in ("size_mib", "reps", "stop", "load", "rounds")]
        lines += ["", "This run / the --before run (same sizes):", "",
                  "| Size MiB | Rounds (before) | " + " | ".join(h for k, h in COLS if k in keys) + " |",
                  "|" + "---|" * (len(keys) + 2)]
        for r in rows:
            b = bs.get(r["size_mib"])
            if b is None:
                continue
            rat = [("%.2f×" % (r[k] / b[k])) if r.get(k) and b.get(k) else "" for k in keys]
            lines.append("| %d | %s (%s) | %s |" % (r["size_mib"], fmt(r.get("rounds")), fmt(b.get("rounds")),
                                                    " | ".join(rat)))
    return "\n".join(lines) + "\n"


PLOTS = [
    ("cpu", "CPU seconds per round", [("cpu_src_round_s", "source"), ("cpu_tgt_round_s", "target")]),
    ("memory", "peak MB (largest process + edgemigd VmHWM)", [("peak_src_mb", "source"), ("peak_tgt_mb", "target")]),
    ("bytes", "bytes on the wire / floor", [("wire_x_floor", "all"), ("before_handoff_x_floor", "before the handoff")]),
    ("time", "seconds", [("handoff_s", "handoff"), ("downtime_s", "downtime")]),
]


def plots(out, rows, before):
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    sets = [("", rows)] + ([("before: ", before)] if before else [])
    head = ('set terminal pngcairo size 800,520 font ",10" noenhanced\nset grid\nset key top left\n'
            'set logscale x 2\nset xlabel "container memory, MiB"\nset xrange [*:*]\nset offsets graph 0.05, graph 0.05, 0, 0\n')
    for name, ylabel, series in PLOTS:
        data = []
        for tag, rs in sets:
            for k, label in series:
                pts = [(r["size_mib"], r[k]) for r in rs if r.get(k) is not None]
                if pts:
                    data.append(("%s%s" % (tag, label), pts, tag != ""))
        if not data:
            continue
        curves, blocks = [], []
        for i, (label, pts, dashed) in enumerate(data):
            curves.append("'-' using 1:2 with linespoints lw 2 pt %d %s title \"%s\"" % (
                7 if not dashed else 6, "dt 2" if dashed else "", label))
            blocks.append("\n".join("%d %g" % p for p in pts) + "\ne\n")
        gnuplot(out, "scaling-" + name, head + 'set output "scaling-%s.png"\nset ylabel "%s"\nset yrange [0:*]\n'
                % (name, ylabel) + "plot " + ", ".join(curves) + "\n" + "".join(blocks))


def main():
    args = sys.argv[1:]
    before_dir = None
    if "--before" in args:
        i = args.index("--before")
        before_dir = args[i + 1]
        del args[i:i + 2]
    out = args[0]
    rows = size_rows(out)
    before = size_rows(before_dir) if before_dir else None
    with open(os.path.join(out, "scaling.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([k for k, _ in COLS])
        for r in rows:
            w.writerow([fmt(r.get(k)) for k, _ in COLS])
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write(table(rows, before))
    plots(out, rows, before)
    sys.stdout.write(table(rows, before))


if __name__ == "__main__":
    main()
