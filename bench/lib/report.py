#!/usr/bin/env python3
"""Tables, CSV, JSON and gnuplot PNGs from bench/run's runs.jsonl.

  report.py OUTDIR QUICK(0|1)
  report.py --regen OUTDIR           again from a committed run, keeping the
                                     date, machine and build lines of its
                                     report.md (bench/readme-results)
  report.py --readme OUTDIR README   README's results block shows OUTDIR

Writes OUTDIR/runs.csv, summary.csv, summary.json, report.md, headline.md and
the PNGs.
"""
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import issue17

METHODS = ["edgemig", "prepared", "hybrid", "postcopy", "pullpostcopy", "prephybrid", "preppostcopy", "wholefs",
           "paper", "podman"]
MNAME = {"edgemig": "edgemig pre-copy", "prepared": "edgemig prepare + pre-copy", "wholefs": "whole-rootfs stop-and-copy",
         "paper": "paper's method (xdelta3 + gzip -6)", "podman": "podman checkpoint --export / restore --import",
         "hybrid": "edgemig hybrid", "postcopy": "edgemig post-copy",
         "pullpostcopy": "edgemig post-copy, CRIU's pull (--lazy-pull)",
         "prephybrid": "edgemig prepare + hybrid", "preppostcopy": "edgemig prepare + post-copy"}
TABLE3 = ("busybox", "redis", "facedetect", "mariadb")  # the workloads of the per-bandwidth tables
# Table 3 of Ma et al. (handoff s, downtime s, final-transfer MB); OpenFace ~ facedetect.
PAPER = {
    "busybox": {5: (3.2, 2.8, 0.03), 20: (3.2, 2.8, 0.03), 500: (3.2, 2.8, 0.03)},
    "facedetect": {5: (48.9, 48.1, 22.6), 10: (28.5, 27.9, 22.2), 15: (21.5, 20.9, 22.1),
                   20: (17.8, 17.3, 21.2), 25: (17.4, 16.8, 23.7), 50: (13.4, 12.8, 23.2),
                   100: (10.7, 10.1, 21.6), 500: (10.9, 10.3, 23.0)},
}
UNSHAPED_X = 1000  # where "unshaped" sits on the log-scale bandwidth axis


def rate_name(r):
    return "unshaped" if r == 0 else str(r)


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    m = statistics.mean(vals)
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": m, "median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "rsd_pct": (100.0 * sd / m) if m else 0.0, "n": len(vals)}


def load(out):
    runs, skipped = [], []
    with open(os.path.join(out, "runs.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            (skipped if r.get("skipped") else runs).append(r)
    return runs, skipped


def summarize(runs, skipped):
    cells = {}
    for r in runs:
        cells.setdefault((r["workload"], r["method"], r["rate_mbit"], r.get("latency_ms", 0),
                          r.get("dirty_mbps")), []).append(r)
    floors = {}
    for r in runs:
        if r.get("floor_bytes"):
            floors.setdefault((r["workload"], r["rate_mbit"]), []).append(r["floor_bytes"])
    summary = []
    for (w, m, rate, lat, dirty), rs in sorted(cells.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2] or 1e9, kv[0][3], kv[0][4] or 0)):
        fl = floors.get((w, rate)) or [f for (fw, _), v in floors.items() if fw == w for f in v]
        summary.append({
            "workload": w, "method": m, "rate_mbit": rate, "reps": len(rs),
            "latency_ms": lat, "dirty_mbps": dirty,
            "dirty_measured_mbps": stats([r.get("dirty_measured_mbps") for r in rs]),
            "cpu_src_s": stats([r.get("cpu_src_s") for r in rs]),
            "cpu_tgt_s": stats([r.get("cpu_tgt_s") for r in rs]),
            "peak_rss_src_mb": stats([r.get("peak_rss_src_mb") for r in rs]),
            "peak_rss_tgt_mb": stats([r.get("peak_rss_tgt_mb") for r in rs]),
            "degraded_s": stats([r["degraded_ms"] / 1000 for r in rs if r.get("degraded_ms") is not None]),
            "lazy_mb": stats([r["lazy_bytes"] / 1e6 for r in rs if r.get("lazy_bytes") is not None]),
            "stop_reasons": sorted({r["stop_reason"] for r in rs if r.get("stop_reason")}),
            "before_handoff_mb": stats([r["bytes_before_handoff"] / 1e6 for r in rs
                                        if r.get("bytes_before_handoff") is not None]),
            "memory_mb": rs[0].get("memwriter_mb"),
            "pattern": rs[0].get("memwriter_pattern"),
            "handoff_s": stats([r["handoff_ms"] / 1000 for r in rs]),
            "downtime_s": stats([r["downtime_ms"] / 1000 for r in rs]),
            "final_mb": stats([r["wire_bytes"] / 1e6 for r in rs]),
            "pre_mb": stats([r.get("pre_bytes", 0) / 1e6 for r in rs]),
            "tool_mb": stats([r["tool_bytes_wire"] / 1e6 for r in rs if "tool_bytes_wire" in r]),
            "rounds": stats([r["rounds"] for r in rs if r.get("rounds") is not None]),
            "client_gap_s": stats([r["client_gap_ms"] / 1000 for r in rs
                                   if r.get("client_gap_ms") is not None]),
            "failed_attempts": sum(r.get("failed_attempts", 0) for r in rs),
            "client_gap_open": any(r.get("client_gap_open") for r in rs),
            "floor_mb": statistics.median(fl) / 1e6 if fl else None,
            "checks": sorted({r["check"] for r in rs}),
        })
    # Skipped (quick mode) whole-rootfs cells: estimate from bytes at another
    # rate, or (none ran) from half the image's unpacked layer size.
    for s in skipped:
        w, m, rate = s["workload"], s["method"], s["rate_mbit"]
        b = [r["wire_bytes"] for r in runs if r["workload"] == w and r["method"] == m]
        if not b and s.get("estimate_bytes"):  # no rate ran: from the image's layer size
            b = [s["estimate_bytes"]]
        if b and rate:
            summary.append({"workload": w, "method": m, "rate_mbit": rate, "reps": 0,
                            "latency_ms": s.get("latency_ms", 0), "dirty_mbps": None,
                            "estimate_handoff_s": max(b) * 8 / (rate * 1e6),
                            "estimate_mb": max(b) / 1e6})
    return summary


def find(summary, w, m, rate, lat=0, dirty=None):
    for s in summary:
        if (s["workload"] == w and s["method"] == m and s["rate_mbit"] == rate
                and s.get("latency_ms", 0) == lat and s.get("dirty_mbps") == dirty):
            return s
    return None


def pair(s, a, b, digits=2):
    """"A / B" of two stats of a summary cell (CPU s, peak MB per side)."""
    if not s or not s.get(a) or not s.get(b):
        return "—"
    return "%s / %s" % (fmt(s[a], digits=digits, rsd=False), fmt(s[b], digits=digits, rsd=False))


def fmt(st, key="mean", digits=2, rsd=True):
    if not st:
        return "—"
    v = ("%%.%df" % digits) % st[key]
    if rsd and st["n"] > 1:
        v += " ±%.0f%%" % st["rsd_pct"]
    return v


def cell_text(s, what):
    if s is None:
        return "—"
    if s["reps"] == 0:
        if what == "handoff_s":
            return "≥ %.0f (est.)" % s["estimate_handoff_s"]
        if what == "final_mb":
            return "%.1f (est.)" % s["estimate_mb"]
        return "—"
    return fmt(s[what], digits=2 if what != "final_mb" else 3)


def ratio(a, b, key="handoff_s"):
    """b / a for two summary cells (how many times a is faster than b)."""
    if not a or not b or a["reps"] == 0:
        return "—"
    bv = b[key]["mean"] if b["reps"] else (b.get("estimate_handoff_s") if key == "handoff_s" else None)
    if bv is None or not a[key] or a[key]["mean"] <= 0:
        return "—"
    return ("%.1f×" % (bv / a[key]["mean"])) + (" (est.)" if not b["reps"] else "")


def workload_table(summary, w, rates, lat=0):
    p = PAPER.get(w, {})
    lines = ["| App | Mbit/s | Method | Handoff s | Downtime s | Final transfer MB | Pre-transfer MB "
             "| Rounds | Client gap s | CPU s src / tgt | Peak MB src / tgt "
             "| Paper handoff s | Paper downtime s | Paper final MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rate in rates:
        pr = p.get(rate)
        for m in METHODS:
            s = find(summary, w, m, rate, lat)
            if s is None:
                continue
            paper = ("%.1f | %.1f | %.2f" % pr) if (pr and m == "edgemig") else " | | "
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, rate_name(rate), MNAME[m], cell_text(s, "handoff_s"), cell_text(s, "downtime_s"),
                cell_text(s, "final_mb"), fmt(s.get("pre_mb"), digits=2, rsd=False),
                fmt(s.get("rounds"), digits=1, rsd=False),
                ("≥ " if s.get("client_gap_open") else "") + fmt(s.get("client_gap_s")),
                pair(s, "cpu_src_s", "cpu_tgt_s"), pair(s, "peak_rss_src_mb", "peak_rss_tgt_mb", 0), paper))
    lines.append("")
    lines.append("| App | Mbit/s | handoff: whole-rootfs / edgemig | handoff: paper-method / edgemig "
                 "| handoff: paper-method / edgemig+prepare | downtime: whole-rootfs / edgemig "
                 "| downtime: paper-method / edgemig+prepare | handoff: paper's Table 3 / edgemig "
                 "| handoff: podman / edgemig | downtime: podman / edgemig |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for rate in rates:
        e = find(summary, w, "edgemig", rate, lat)
        ep = find(summary, w, "prepared", rate, lat)
        if not e and not ep:
            continue
        pr = p.get(rate)
        pt = ("%.1f×" % (pr[0] / e["handoff_s"]["mean"])) if pr and e and e["handoff_s"]["mean"] > 0 else "—"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            w, rate_name(rate), ratio(e, find(summary, w, "wholefs", rate, lat)),
            ratio(e, find(summary, w, "paper", rate, lat)), ratio(ep, find(summary, w, "paper", rate, lat)),
            ratio(e, find(summary, w, "wholefs", rate, lat), "downtime_s"),
            ratio(ep, find(summary, w, "paper", rate, lat), "downtime_s"), pt,
            ratio(e, find(summary, w, "podman", rate, lat)),
            ratio(e, find(summary, w, "podman", rate, lat), "downtime_s")))
    return lines


def memwriter_table(summary):
    """Per link rate and dirty rate: where pre-copy stops converging, what hybrid/post-copy do."""
    cells = sorted((s for s in summary if s["workload"] == "memwriter" and s["reps"]),
                   key=lambda s: (s["latency_ms"], s["rate_mbit"] or 1e9, s["dirty_mbps"] or 0,
                                  METHODS.index(s["method"]) if s["method"] in METHODS else 99))
    if not cells:
        return []
    lines = ["| Mbit/s | +RTT ms | Dirty MB/s (measured) | Method | Rounds | Stop reason | Handoff s | Downtime s "
             "| Degraded s | MB on the wire (lazy part) | MB before the handoff (x memory) | Client gap s "
             "| CPU s src / tgt | Peak MB src / tgt |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in cells:
        bh = s.get("before_handoff_mb")
        ratio = (" (%.2fx)" % (bh["mean"] / s["memory_mb"])) if bh and s.get("memory_mb") else ""
        lines.append("| %s | %s | %g%s (%s) | %s | %s | %s | %s | %s | %s | %s%s | %s | %s | %s | %s |" % (
            rate_name(s["rate_mbit"]), s["latency_ms"], s["dirty_mbps"],
            " random" if s.get("pattern") == "random" else "",
            fmt(s.get("dirty_measured_mbps"), digits=1, rsd=False), MNAME.get(s["method"], s["method"]),
            fmt(s.get("rounds"), digits=1, rsd=False), ", ".join(s.get("stop_reasons") or []) or "—",
            fmt(s["handoff_s"]), fmt(s["downtime_s"]), fmt(s.get("degraded_s")), fmt(s["final_mb"], rsd=False),
            (" (%s)" % fmt(s["lazy_mb"], rsd=False)) if s.get("lazy_mb") and s["lazy_mb"]["mean"] else "",
            (fmt(bh, rsd=False) + ratio) if bh else "—",
            ("≥ " if s.get("client_gap_open") else "") + fmt(s.get("client_gap_s")),
            pair(s, "cpu_src_s", "cpu_tgt_s"), pair(s, "peak_rss_src_mb", "peak_rss_tgt_mb", 0)))
    return lines


def target(desc, value, ok):
    return "| %s | %s | %s |" % (desc, value, "—" if ok is None else ("**PASS**" if ok else "**FAIL**"))


def targets(summary, rates):
    out = ["| Target (issue) | Measured | Result |", "|---|---|---|"]
    b5 = find(summary, "busybox", "edgemig", 5)
    if b5:
        h, d = b5["handoff_s"]["mean"], b5["downtime_s"]["mean"]
        out.append(target("busybox @ 5 Mbit/s: handoff ≤ 1.5 s (#5)", "%.2f s" % h, h <= 1.5))
        out.append(target("busybox @ 5 Mbit/s: downtime ≤ 1.0 s (#5)", "%.2f s" % d, d <= 1.0))
    bb = [find(summary, "busybox", "edgemig", r) for r in rates]
    bb = [s for s in bb if s]
    if bb:
        worst = max(s["handoff_s"]["max"] for s in bb)
        out.append(target("busybox: handoff ≤ 1 s at every bandwidth (#8; worst single run)",
                          "%.2f s" % worst, worst <= 1.0))
    for rate in rates:
        f = find(summary, "facedetect", "edgemig", rate)
        pr = PAPER["facedetect"].get(rate)
        if not f or not pr:
            continue
        h, d = f["handoff_s"]["mean"], f["downtime_s"]["mean"]
        out.append(target("facedetect @ %d Mbit/s: handoff ≤ ½ paper's OpenFace %.1f s = %.2f s (#5)"
                          % (rate, pr[0], pr[0] / 2), "%.2f s" % h, h <= pr[0] / 2))
        out.append(target("facedetect @ %d Mbit/s: downtime ≤ ¼ handoff = %.2f s (#5)" % (rate, h / 4),
                          "%.2f s" % d, d <= h / 4))
    for em, m, k in (("edgemig", "wholefs", 5.0), ("edgemig", "paper", 2.0), ("prepared", "paper", 2.0)):
        f5, o = find(summary, "facedetect", em, 5), find(summary, "facedetect", m, 5)
        if not f5 or not o or not f5["reps"]:
            continue
        ov = o["handoff_s"]["mean"] if o["reps"] else o["estimate_handoff_s"]
        r = ov / f5["handoff_s"]["mean"]
        if em == "edgemig" and m == "paper":
            # Not like for like: the paper's method pre-transfers a base dump
            # before the request; edgemig's counterpart is the prepared row.
            out.append(target("facedetect @ 5 Mbit/s: %s (no pre-transfer) handoff vs %s "
                              "(base dump pre-transferred); context for the next row" % (MNAME[em], MNAME[m]),
                              "%.1f×" % r, None))
            continue
        out.append(target("facedetect @ 5 Mbit/s: %s handoff ≥ %.0f× faster than %s (#8)" % (MNAME[em], k, MNAME[m]),
                          "%.1f×%s" % (r, "" if o["reps"] else " (vs estimate)"), r >= k))
    for s in summary:
        if s["method"] in ("edgemig", "prepared") and s["reps"] and s.get("floor_mb"):
            got = s["final_mb"]["mean"]
            out.append(target("%s @ %s Mbit/s, %s: bytes on the wire after the request ≤ 1.1 × floor %.2f MB (#5)"
                              % (s["workload"], rate_name(s["rate_mbit"]), MNAME[s["method"]], s["floor_mb"]),
                              "%.3f MB on the link (%.2f× floor); edgemig's own count %s MB"
                              % (got, got / s["floor_mb"], fmt(s.get("tool_mb"), digits=3, rsd=False)),
                              got <= 1.1 * s["floor_mb"]))
    return out


def write_csv(out, runs, summary):
    keys = sorted({k for r in runs for k in r})
    with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(runs)
    cols = ["handoff_s", "downtime_s", "final_mb", "pre_mb", "tool_mb", "rounds", "client_gap_s"]
    with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "method", "rate_mbit", "reps"] +
                    [c + s for c in cols for s in ("_mean", "_rsd_pct")] + ["floor_mb", "estimate_handoff_s"])
        for s in summary:
            row = [s["workload"], s["method"], s["rate_mbit"], s["reps"]]
            for c in cols:
                st = s.get(c)
                row += [("%.4f" % st["mean"]) if st else "", ("%.1f" % st["rsd_pct"]) if st else ""]
            row += [("%.4f" % s["floor_mb"]) if s.get("floor_mb") else "",
                    ("%.1f" % s["estimate_handoff_s"]) if "estimate_handoff_s" in s else ""]
            wr.writerow(row)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


def q(s):
    """A gnuplot double-quoted string."""
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def gnuplot(out, name, script):
    with open(os.path.join(out, "plots", name + ".gp"), "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", os.path.join("plots", name + ".gp")], check=True, cwd=out)


def plots(out, summary, runs, workloads):
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    pngs = []
    head = 'set terminal pngcairo size 900,600 font ",10" noenhanced\nset grid\nset key below\n'
    styles = {"edgemig": 'lc rgb "#1a7f37"', "prepared": 'lc rgb "#8250df"', "wholefs": 'lc rgb "#cf222e"', "paper": 'lc rgb "#0969da"', "podman": 'lc rgb "#bc4c00"'}
    styles.update(STYLES_EXTRA)
    for w in workloads:
        plot = []
        # The lowest added latency measured (0 unless a run only had others).
        lats = [s.get("latency_ms") or 0 for s in summary if s["workload"] == w and s["reps"]]
        lat = min(lats) if lats else 0
        for m in METHODS:
            pts = sorted(((s["rate_mbit"] or UNSHAPED_X, s) for s in summary
                          if s["workload"] == w and s["method"] == m and s["reps"]
                          and (s.get("latency_ms") or 0) == lat),
                         key=lambda p: p[0])
            if not pts:
                continue
            fn = "plots/%s-%s.dat" % (w, m)
            with open(os.path.join(out, fn), "w") as f:
                for x, s in pts:
                    f.write("%g %.4f %.4f %.4f %.4f\n" % (x, s["handoff_s"]["mean"], s["downtime_s"]["mean"],
                                                          s["final_mb"]["mean"], s.get("floor_mb") or 0))
            plot.append("'%s' u 1:2 w lp pt 7 lw 2 %s t %s" % (fn, styles[m], q(MNAME[m] + " handoff")))
            plot.append("'%s' u 1:3 w lp pt 6 lw 2 dt 2 %s t %s" % (fn, styles[m], q(MNAME[m] + " downtime")))
        if w in PAPER:
            fn = "plots/%s-paper-table3.dat" % w
            with open(os.path.join(out, fn), "w") as f:
                for r, v in sorted(PAPER[w].items()):
                    f.write("%g %g %g %g\n" % (r, v[0], v[1], v[2]))
            plot.append("'%s' u 1:2 w lp pt 4 lc rgb 'gray40' t \"paper's Table 3 handoff\"" % fn)
        if not plot:
            continue
        rtt = " (+%d ms RTT)" % lat if lat else ""
        gnuplot(out, "%s-time" % w, head + (
            'set output "%s-time.png"\nset title "%s: handoff and downtime vs bandwidth%s"\n'
            'set logscale xy\nset xlabel "link Mbit/s (1000 = unshaped)"\nset ylabel "seconds"\n'
            'plot %s\n') % (w, w, rtt, ", ".join(plot)))
        pngs.append("%s-time.png" % w)
        bplot = []
        for m in METHODS:
            fn = "plots/%s-%s.dat" % (w, m)
            if os.path.exists(os.path.join(out, fn)):
                bplot.append("'%s' u 1:4 w lp pt 7 lw 2 %s t %s" % (fn, styles[m], q(MNAME[m])))
        fn = "plots/%s-edgemig.dat" % w
        if os.path.exists(os.path.join(out, fn)):
            bplot.append("'%s' u 1:($5 > 0 ? $5 : 1/0) w lp pt 2 lc rgb 'black' dt 3 "
                         "t 'floor: zstd(final CRIU images + upper, + volume)'" % fn)
        if not bplot:
            continue
        gnuplot(out, "%s-bytes" % w, head + (
            'set output "%s-bytes.png"\nset title "%s: bytes on the wire after the request vs the floor%s"\n'
            'set logscale xy\nset xlabel "link Mbit/s (1000 = unshaped)"\nset ylabel "MB (host link tx counters)"\n'
            'plot %s\n') % (w, w, rtt, ", ".join(bplot)))
        pngs.append("%s-bytes.png" % w)
    pngs += phase_plot(out, head)
    pngs += rounds_plots(out, summary, head)
    return pngs


STYLES_EXTRA = {"hybrid": 'lc rgb "#bf8700"', "postcopy": 'lc rgb "#57606a"',
                "prephybrid": 'lc rgb "#953800"', "preppostcopy": 'lc rgb "#6e7781"'}


def rounds_plots(out, summary, head):
    """memwriter over its dirty-rate sweep, one PNG per link rate: handoff/downtime
    against the dirty rate (left) and handoff against the pre-copy rounds (right)."""
    styles = {"edgemig": 'lc rgb "#1a7f37"', "prepared": 'lc rgb "#8250df"'}
    styles.update(STYLES_EXTRA)
    mw = [s for s in summary if s["workload"] == "memwriter" and s["reps"] and not s.get("latency_ms")]
    pngs = []
    for rate in sorted({s["rate_mbit"] for s in mw}, key=lambda r: r or 1e9):
        left, right = [], []
        for m in METHODS:
            pts = sorted((s for s in mw if s["rate_mbit"] == rate and s["method"] == m),
                         key=lambda s: s["dirty_mbps"])
            if not pts:
                continue
            fn = "plots/memwriter-%s-%s.dat" % (rate, m)
            with open(os.path.join(out, fn), "w") as f:
                for s in pts:
                    f.write("%g %.4f %.4f %.2f %.4f\n" % (s["dirty_mbps"], s["handoff_s"]["mean"],
                                                        s["downtime_s"]["mean"],
                                                        s["rounds"]["mean"] if s.get("rounds") else 0,
                                                        s["degraded_s"]["mean"] if s.get("degraded_s") else 0))
            st = styles.get(m, "")
            name = q(MNAME.get(m, m))
            left.append("'%s' u 1:2 w lp pt 7 lw 2 %s t %s" % (fn, st, q(MNAME.get(m, m) + " handoff")))
            left.append("'%s' u 1:3 w lp pt 6 lw 2 dt 2 %s t %s" % (fn, st, q(MNAME.get(m, m) + " downtime")))
            right.append("'%s' u 4:2 w lp pt 7 lw 2 %s t %s" % (fn, st, name))
            right.append("'%s' u 4:2:(sprintf(' %%g MB/s', $1)) w labels left offset 0.5,0 font ',8' notitle" % fn)
        if not left:
            continue
        link = (" (link %.1f MB/s)" % (rate / 8)) if rate else ""
        arrow = ('set arrow from %g, graph 0 to %g, graph 1 nohead dt 3 lc rgb "gray30"\n'
                 'set label "link rate" at %g, graph 0.95 right offset -0.5,0 font ",8"\n' % ((rate / 8,) * 3)
                 if rate else "")
        name = "memwriter-rounds-%s" % rate_name(rate)
        gnuplot(out, name, head.replace("900,600", "1200,560") + (
            'set output "%s.png"\nset multiplot layout 1,2 title "memwriter at %s Mbit/s%s: where pre-copy '
            'stops converging"\n'
            'set logscale xy\nset xlabel "dirty rate MB/s"\nset ylabel "seconds"\n'
            'set title "handoff and downtime vs dirty rate"\n%splot %s\n'
            'unset arrow\nunset label\nunset logscale x\nset xlabel "pre-copy rounds (mean)"\n'
            'set offsets 0.5, 1.2, 0, 0\nset title "handoff time vs rounds (labels: dirty rate)"\nplot %s\n'
            'unset multiplot\n') % (name, rate_name(rate), link, arrow, ", ".join(left), ", ".join(right)))
        pngs.append(name + ".png")
    return pngs


def phase_plot(out, head):
    """Per-phase timeline of one edgemig migration (the slowest workload at the lowest rate)."""
    tl = os.path.join(out, "timelines")
    files = sorted(os.listdir(tl)) if os.path.isdir(tl) else []
    pick = None
    for w in ("facedetect", "redis", "busybox"):
        cands = [f for f in files if f.startswith(w + "-edgemig-") and f.endswith("-1.json")]
        cands.sort(key=lambda f: int(f.split("-")[2]) or UNSHAPED_X)
        if cands:
            pick = cands[0]
            break
    if not pick:
        return []
    r = json.load(open(os.path.join(tl, pick)))
    with open(os.path.join(out, "plots", "phases.dat"), "w") as f:
        for i, p in enumerate(r["phases"]):
            f.write("%d %s %.3f %.3f %.2f\n" % (i, p["name"], p["start_ms"] / 1000, p["end_ms"] / 1000,
                                              p.get("bytes_wire", 0) / 1e6))
    marks = r.get("marks", {})
    arrows = "".join('set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc rgb "gray30"\n'
                     'set label "%s" at %.3f, graph 0.97 rotate by 90 right font ",8"\n'
                     % (v / 1000, v / 1000, k, v / 1000 + 0.01) for k, v in marks.items() if k != "request")
    gnuplot(out, "phases", head + (
        'set output "phases.png"\nset title "edgemig phases: %s (%s)"\nunset key\n'
        'set xlabel "seconds since the request"\nset ytics ("" 0)\nset yrange [-1:%d]\nset xrange [0:%.3f]\n%s'
        'plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", '
        '"plots/phases.dat" u 4:1:(sprintf(" %%.2f MB", $5)) w labels left font ",8"\n')
        % (pick[:-5], "handoff %.2f s, downtime %.2f s" % (r["handoff_ms"] / 1000, r["downtime_ms"] / 1000),
           len(r["phases"]), max(list(marks.values()) + [r["handoff_ms"]]) / 1000 * 1.08, arrows))
    return ["phases.png"]


def env_lines(quick):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    return ["- Date: %s; mode: %s" % (time.strftime("%Y-%m-%d %H:%M"), "quick" if quick else "full"),
            "- Machine: %s, kernel %s, %s CPUs, %s" % (platform.node(), platform.release(), os.cpu_count(),
                                                       sh("free -g | awk '/Mem:/ {print $2 \" GiB RAM\"}'")),
            "- edgemig: built from %s%s; CRIU: %s" % (
                sh("git -C %s rev-parse --short HEAD" % os.path.dirname(__file__)),
                " + uncommitted changes in src/" if sh("git -C %s status --porcelain -- ../../src"
                                                        % os.path.dirname(__file__)) else "",
                                         sh("${EDGEMIG_CRIU:-/opt/edgemig/criu/bin/criu} --version | head -1"))]


ISSUE17_INTRO = [
    "Each figure side by side in this one run (bench/lib/issue17.py). Handoff = request -> target "
    "running, downtime = source stopped -> target running; bytes after the request = the source's "
    "link counter; the client's longest interruption = its longest wait for an answer on one TCP "
    "connection; back to full performance = from the request until 10 consecutive requests, started "
    "after the handoff, have a p99 latency within 10 % of its level before the migration "
    "(bench/lib/recovery.py). \"not run\": this run did not measure the cell (quick mode runs no "
    "lazy-page mode for redis or facedetect, no openface unless asked)."]


def load_lines(runs):
    """The machine's load (1-minute average at the end of each cell) during the run."""
    v = [r["load1"] for r in runs if r.get("load1") is not None]
    if not v:
        return []
    return ["- Load average (1 min, at the end of each cell): %.2f–%.2f, median %.2f"
            % (min(v), max(v), statistics.median(v))]


NOTES = """## Reading the results

- Our re-implementation of the paper's method is far faster than the paper's own
  Table 3 (e.g. facedetect 2 s vs OpenFace 48.9 s at 5 Mbit/s): its base dump is only
  2 s old at the request and facedetect/redis dirty little memory in 2 s, so the
  xdelta3 deltas are a few hundred KB, whereas OpenFace dirtied ~25 MB per round
  and the paper's numbers include 50 ms latency and ssh. The comparison with the
  paper's method therefore hinges on the dirty set between pre-transfer and request.
- Without `prepare`, edgemig sends the container's whole memory (compressed) after
  the request, while the service runs, so its handoff is about bytes / link rate;
  its downtime holds only the last round's pages, the dump and the restore.
- Source and target share this VM's CPUs, and the dump and the restore, which
  dominate every downtime here, are CPU-bound: read each downtime with the load
  average at the top of this report, and compare methods within one run.

## How it was measured

- **Test bed**: `scripts/testbed` (router + 2 edge hosts + client, network namespaces on
  this one VM). Bandwidth: `tbf` on both host links (`testbed shape I RATE`), the
  client's link unshaped. No added latency (this kernel has no netem; the paper used
  50 ms and found latency to matter little). Source and target share the VM's CPUs.
- **Same run, same links, same workloads**: for every workload and rate, the three
  methods run back to back; each repetition moves the container to the other host.
- **edgemig pre-copy**: `edgemig migrate NAME --to B --mode precopy --json` (mutual TLS,
  adaptive rounds, zstd auto). Handoff is from the command's start, as for the
  baselines (whose handoff includes their tools' start-up), to the tool's
  `marks.target_running`; downtime is the tool's own (`marks.source_stopped` on), the
  paper's definition. The tool's own handoff (from its request stamp, after its
  start-up: `launch_ms` later) is `tool_handoff_ms` in runs.jsonl.
  No `edgemig prepare` beforehand: everything edgemig sends is counted after the request.
- **edgemig prepare + pre-copy**: the same, after `edgemig prepare NAME --to B` (image
  layers + a live snapshot of the memory pages into B's page cache, no freeze) run
  like the paper method's base dump: with the link unshaped, 2 s before the request,
  its bytes counted as pre-transfer. This is the like-for-like comparison with the
  paper's method, which also pre-transfers a base dump.
- **whole-rootfs stop-and-copy** (the P.Haul-era way): at the request, `edgemig checkpoint`
  (stops the container), then one stream `tar (all image layer dirs + upper + CRIU
  images) | gzip -1` over plain TCP (python3 socket, host A netns -> host B netns, i.e.
  through the shaped path) and unpacked to disk on B, then `edgemig restore` on B (from
  B's seeded layer store, as the brief allows) and the service IP's route moved.
  Handoff = request -> restore returned and route moved; downtime = the same (the
  checkpoint at the request stops the service).
- **paper's method** (Ma et al. re-implemented): 2 fixed iterations. 2 s before the
  request, a base dump (`edgemig checkpoint --leave-running`) is sent (tar | gzip -6);
  this pre-transfer is outside handoff/downtime by the paper's definitions, so it
  crosses the same path with the link unshaped (its bytes are counted, as
  "pre-transfer"). At the request: final dump (stops the container), `xdelta3 -e -s
  base final` per CRIU image file (source window = the base file), the upper layer as
  tar + gzip -6, sent, patched (`xdelta3 -d`) on B, `edgemig restore`, route moved.
  Layers are pre-seeded on B (the paper pre-pulls them from the registry, S1).
- **Bytes on the wire** ("Final transfer MB"): the source host's `eth0` tx byte counter
  (`/proc/net/dev` read inside the host netns, the counters `ip -s link` shows; L2 frames,
  so TCP/IP/TLS overhead included) from the request to the end, minus the pre-transfer.
  edgemig's own `bytes_wire` (payload after compression) is in `runs.csv` as
  `tool_bytes_wire`. Reverse-direction bytes are `wire_bytes_back`.
- **Floor**: zstd -3 of the final CRIU images + upper dir, taken from the checkpoint of
  the baseline runs of the same workload and rate (the target holds none of the
  container's memory beforehand, so every resident page is "dirty" for it).
- **Client gap**: `edgemig-probe` from the client namespace over ONE TCP connection
  (redis: SET+GET of 256-byte values every 10 ms; facedetect: the 68 KB face photo
  every 250 ms with the face count verified); the longest gap between two successful
  replies (`max_gap_ms`); "≥" marks a client still waiting 5 s after the handoff (its
  TCP retransmissions had backed off during a long outage; it was stopped there and the
  open gap counted). Afterwards: redis `redis-verify` of every acknowledged write
  and all 400,000 loaded keys present; facedetect answers 1 face; busybox counter
  advances.
- **Workloads**: busybox = the counter image; redis 7 with 400,000 keys of 128-byte
  values (~50 MB, the content `DEBUG POPULATE 400000 key 128` would create: redis 7
  refuses DEBUG by default, so they are loaded with `redis-cli --pipe`); facedetect =
  python3 + OpenCV Haar cascade service (867 MB image layer), the stand-in for OpenFace;
  mariadb = Debian's MariaDB 10.11 (`images/mariadb`) with its data directory on named
  volume mdbdata, a client committing a row every 10 ms over one connection
  (`scripts/mariadb-client.py`; checked: the same connection, every acknowledged commit
  there); its floor includes the volume, which whole-rootfs and the paper's method
  carry in their tars; podman is not run on it (no volume in `bench/lib/podman.sh`).
- **podman** (bookworm's podman 4.3.1 + conmon 2.1.6, runtime runc 1.1.5, CRIU 4.2.1
  from /opt; `bench/lib/podman.sh`): before its first cell the workload is restarted
  under podman on the host it is on (`podman run --network ns:...` into a per-container
  netns wired like edgemig's: service IP /32 on eth0, default via 169.254.1.1), the
  image pulled into both hosts' podman storage beforehand from the cached OCI layout
  (off the shaped path, like the other baselines' layers). At the request: a fresh
  netns with the service IP on B, `podman container checkpoint --export=FILE --compress
  zstd --tcp-established` on A (stops the container), FILE over plain TCP through the
  shaped path (the same python3 sender as whole-rootfs), `podman container restore
  --import=FILE --tcp-established` on B, route moved; handoff = downtime = request ->
  restore returned and route moved; `tool_bytes_wire` = the archive's size. Each host
  has its own podman storage, seen at the same path inside its own mount namespace,
  because an exported checkpoint carries the source's graphroot/runroot paths (e.g.
  ConmonPidFile) into the restored container's config. Configuration:
  `containers.conf` with `default_ulimits` nofile 20000 (podman's default exceeds this
  VM's cap: `rlimit type 7: operation not permitted`), cgroupfs, file events, and the
  CRIU 4.2 directory first in `PATH` and in `conmon_env_vars` (restore runs CRIU via
  conmon -> runc; bookworm's criu 3.17 fails on this kernel's vDSO). Its pre-copy
  variant (`checkpoint --pre-checkpoint` / `--with-previous`) cannot run here: runc
  refuses the pre-dump with `CRIU is missing features` because this kernel is built
  without CONFIG_MEM_SOFT_DIRTY (`criu check --feature mem_dirty_track`: "Dirty
  tracking is OFF"), so podman is measured as stop-and-copy only.
"""


def hl(s):
    """"handoff / downtime" seconds of a summary cell for the headline table."""
    if s is None:
        return "—"
    if not s["reps"]:
        return "≥ %.0f (est.)" % s["estimate_handoff_s"] if s.get("estimate_handoff_s") else "—"
    h, d = s["handoff_s"]["mean"], s["downtime_s"]["mean"]
    return "%.2f / %.2f" % (h, d) if h < 10 else "%.1f / %.1f" % (h, d)


def headline(summary, workloads, rates, mw_mb=None):
    """The compact tables README.md shows (latency 0 where measured): handoff / downtime per method."""
    workloads = [w for w in workloads if w != "memwriter"]
    ms = [m for m in METHODS if any(s["method"] == m and s["workload"] in workloads for s in summary)]
    out = [] if not ms else ["| App | Mbit/s | " + " | ".join(MNAME[m] for m in ms) + " | paper's Table 3 "
           "| edgemig pre-copy CPU s src / tgt | peak MB src / tgt |",
           "|---|---|" + "---|" * len(ms) + "---|---|---|"]
    for w in workloads:
        # Latency 0, or the lowest measured when a run had only others.
        lats = [s.get("latency_ms") or 0 for s in summary if s["workload"] == w and s["reps"]]
        lat = min(lats) if lats else 0
        for rate in rates:
            cells = [find(summary, w, m, rate, lat) for m in ms]
            if not any(cells):
                continue
            pr = PAPER.get(w, {}).get(rate)
            e = find(summary, w, "edgemig", rate, lat)
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                w + (" (+%d ms RTT)" % lat if lat else ""), rate_name(rate),
                " | ".join(hl(c) for c in cells), ("%.1f / %.1f" % pr[:2]) if pr else "—",
                pair(e, "cpu_src_s", "cpu_tgt_s"), pair(e, "peak_rss_src_mb", "peak_rss_tgt_mb", 0)))
    mw = [s for s in summary if s["workload"] == "memwriter" and s["reps"] and not s.get("latency_ms")]
    if mw:
        mms = [m for m in METHODS if any(s["method"] == m for s in mw)]
        out += ["", "| memwriter | Mbit/s | dirty MB/s | " +
                " | ".join("%s: rounds, handoff / downtime s" % MNAME[m] for m in mms) + " |",
                "|---|---|---|" + "---|" * len(mms)]
        for rate in sorted({s["rate_mbit"] for s in mw}, key=lambda r: r or 1e9):
            for d in sorted({s["dirty_mbps"] for s in mw if s["rate_mbit"] == rate}):
                cells = [find(summary, "memwriter", m, rate, 0, d) for m in mms]
                out.append("| %s | %s | %g | %s |" % (
                    "%s MB" % mw_mb if mw_mb else "", rate_name(rate), d,
                    " | ".join("%s, %s" % (fmt(c.get("rounds"), digits=0, rsd=False), hl(c)) if c else "—"
                               for c in cells)))
    return out


README_BEGIN, README_END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"


def update_readme(out, readme):
    """Replaces README's block between the markers with DIR's headline.md and plots."""
    rel = os.path.relpath(out, os.path.dirname(os.path.abspath(readme)))
    head = open(os.path.join(out, "headline.md")).read().rstrip("\n")
    pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    block = [README_BEGIN, "",
             "Latest run: [`%s/report.md`](%s/report.md) (every cell, the targets, how it was measured). "
             "Handoff / downtime in seconds (paper's definitions), mean of the repetitions; "
             "CPU = user + system seconds of everything edgemig ran on that side; peak = edgemigd's "
             "VmHWM + the largest migration process." % (rel, rel), "", head, ""]
    block += ["![%s](%s/%s)" % (p[:-4], rel, p) for p in pngs]
    block += ["", README_END]
    text = open(readme).read()
    if README_BEGIN in text and README_END in text:
        a, rest = text.split(README_BEGIN, 1)
        text = a + "\n".join(block) + rest.split(README_END, 1)[1]
    else:
        raise SystemExit("%s has no %s ... %s block" % (readme, README_BEGIN, README_END))
    open(readme, "w").write(text)


def old_env(out):
    """The environment lines of OUTDIR's report.md (the run's date, machine, build)."""
    try:
        lines = open(os.path.join(out, "report.md")).read().splitlines()
    except OSError:
        raise SystemExit("%s has no report.md to take the run's date and build from" % out)
    env = []
    for line in lines[2:]:
        if not line.startswith("- "):
            break
        if not line.startswith("- Load average"):
            env.append(line)
    if not env:
        raise SystemExit("%s/report.md does not start with the run's environment lines" % out)
    return env


def main():
    if sys.argv[1] == "--readme":
        update_readme(sys.argv[2], sys.argv[3])
        return
    if sys.argv[1] == "--regen":
        out = sys.argv[2]
        env = old_env(out)
    else:
        out, quick = sys.argv[1], sys.argv[2] == "1"
        env = env_lines(quick)
    runs, skipped = load(out)
    summary = summarize(runs, skipped)
    write_csv(out, runs, summary)
    workloads = [w for w in TABLE3 if any(r["workload"] == w for r in runs)]
    rates = sorted({s["rate_mbit"] for s in summary}, key=lambda r: r or 1e9)
    lats = sorted({s.get("latency_ms", 0) for s in summary})
    pngs = plots(out, summary, runs, workloads)
    md = ["# edgemig benchmark: live migration vs the baselines", ""] + env + load_lines(runs) + [""]
    md += ["## Headline targets", ""] + targets(summary, rates) + [""]
    t17 = ISSUE17_INTRO + [""] + issue17.table(out, runs, rates)
    md += ["## Issue 17 targets", ""] + t17 + [""]
    mw_mb = "/".join(sorted({"%g" % r["memwriter_mb"] for r in runs if r.get("memwriter_mb")}))
    hd = headline(summary, workloads, rates, mw_mb)
    with open(os.path.join(out, "headline.md"), "w") as f:
        f.write("\n".join(hd + ["", "Issue 17's targets in this run:", ""] + t17) + "\n")
    md += ["## Headline table", "", "Handoff / downtime in seconds, no added latency.", ""] + hd + [""]
    md += ["## Results (mirrors the paper's Table 3)", "",
           "Mean of the repetitions (± relative standard deviation when > 1 run). "
           "Paper columns: Ma et al. Table 3 (50 ms latency; OpenFace for facedetect; none for redis). "
           "Ratios > 1× mean edgemig is faster. CPU s = user + system seconds on the source / target "
           "(everything the method ran there, pre-transfer included); peak MB = the largest process "
           "of the migration on that side, plus edgemigd's VmHWM for the edgemig methods.", ""]
    for lat in lats:
        for w in workloads:
            if any(s["workload"] == w and s.get("latency_ms", 0) == lat for s in summary):
                md += ["### %s%s" % (w, " (+%d ms RTT)" % lat if lat else ""), ""]
                md += workload_table(summary, w, rates, lat) + [""]
    mwt = memwriter_table(summary)
    if mwt:
        md += ["## memwriter: dirty rate vs pre-copy, hybrid and post-copy", "",
               "A working set of %s MB rewritten at the dirty rate (whole 4 KiB pages of fresh random "
               "content: incompressible, nothing to deduplicate). Pre-copy converges while the dirty rate "
               "is below the link rate; above it every round resends the working set, the rounds stop "
               "(stop reason) and the final transfer, inside the downtime, is the whole set. Hybrid "
               "then restores at once and pulls the remaining pages lazily (degraded = restore -> last "
               "page). MB on the wire = the source's link counter, lazy pages included; client gap = "
               "longest gap between two status replies on one TCP connection (every 100 ms)."
               % (mw_mb or "the"), ""] + mwt + [""]
    if skipped:
        md += ["Cells marked *(est.)* were not run (quick mode or --cell-max-s: whole-rootfs would take "
               "longer than the per-cell budget); the estimate is the bytes that method sent "
               "at another rate (or, where it ran at no rate, half the image's unpacked layer "
               "size: what gzip -1 leaves of them) divided by this link rate, a lower bound on "
               "its handoff.", ""]
    fl = os.path.join(out, "failures.log")
    if os.path.exists(fl):
        lines = open(fl).read().splitlines()
        md += ["## Failed attempts", "",
               "%d edgemig migration or prepare attempt(s) failed, rolled back to the source (service kept running "
               "there) and were retried; the tables hold the successful attempts only:" % len(lines), ""]
        md += ["- `%s`" % l for l in lines] + [""]
    md += ["## Plots", ""] + ["![%s](%s)" % (p[:-4], p) for p in pngs] + [""]
    md += [NOTES, "Raw data: `runs.jsonl` / `runs.csv` (one line per migration), `summary.csv`, "
           "`summary.json`, `timelines/` (edgemig's JSON timelines)."]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
