#!/usr/bin/env python3
"""CPU seconds and peak memory of one bench/run cell, per side.

  rusage.py SIDE_SPEC SIDE_SPEC   (source first, then target)

Each SIDE_SPEC is a JSON object:
  {"time_file": F,   /usr/bin/time -f '%U %S %M' lines of the side's commands
   "log": L, "offset": N,  edgemigd's log and its size before the cell: the
                     "session N finished|failed ... rusage={...}" lines after
                     it (waits up to "wait_s" for every "session from" to end)
   "tool_cpu_s": X, "tool_max_rss_kb": K,   `edgemig migrate --json` rusage
   "daemon_hwm_kb": H}  edgemigd's VmHWM, added to the peak when given
Prints {"cpu_src_s", "cpu_tgt_s", "peak_rss_src_mb", "peak_rss_tgt_mb",
"sessions_src", "sessions_tgt", "daemon_hwm_src_mb", "daemon_hwm_tgt_mb"}:
CPU = the side's commands + its edgemigd sessions + the tool; peak = the
largest single process of the side (+ edgemigd's VmHWM for edgemig methods).
"""
import json
import re
import sys
import time

SESSION = re.compile(r"session (\d+) (?:finished|failed \(status \d+\)) rusage=(\{.*?\})\s*$", re.M)


def time_file(path):
    cpu, rss = 0.0, 0
    try:
        for line in open(path):
            f = line.split()
            if len(f) == 3 and all(re.fullmatch(r"[0-9.]+", x) for x in f):
                cpu += float(f[0]) + float(f[1])
                rss = max(rss, int(f[2]))
    except OSError:
        pass
    return cpu, rss


def sessions(path, offset, wait_s):
    deadline = time.monotonic() + wait_s
    while True:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        done = [json.loads(m.group(2)) for m in SESSION.finditer(text)]
        if len(done) >= text.count("session from") or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def side(spec):
    cpu, rss = time_file(spec["time_file"]) if spec.get("time_file") else (0.0, 0)
    done = sessions(spec["log"], int(spec["offset"]), spec.get("wait_s", 15)) if spec.get("log") else []
    cpu += sum(d.get("cpu_s", 0) for d in done) + (spec.get("tool_cpu_s") or 0)
    rss = max([rss, spec.get("tool_max_rss_kb") or 0] + [d.get("max_rss_kb", 0) for d in done])
    hwm = spec.get("daemon_hwm_kb")
    return cpu, (rss + (hwm or 0)) / 1024, len(done), (hwm / 1024 if hwm else None)


def main():
    src, tgt = (side(json.loads(a)) for a in sys.argv[1:3])
    out = {}
    for name, (cpu, peak, n, hwm) in (("src", src), ("tgt", tgt)):
        out.update({"cpu_%s_s" % name: round(cpu, 3), "peak_rss_%s_mb" % name: round(peak, 1),
                    "sessions_%s" % name: n, "daemon_hwm_%s_mb" % name: None if hwm is None else round(hwm, 1)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
