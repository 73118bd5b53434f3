#!/usr/bin/env python3
"""The client's view of one migration: time back to full performance.

  recovery.py PROBE.json T_BEGIN_MS T_REQ_MS T_RUN_MS

PROBE.json is a client summary with "samples": [end, latency] per answered
request (end in Unix seconds; scripts/openface-client.py writes them).
T_BEGIN_MS is when the method began (edgemig prepare or the paper's base
dump run before the request and load the machine: the level before the
migration is taken from the answers before T_BEGIN), T_REQ the request,
T_RUN the target running (all Unix ms). Prints one JSON object:

  base_p99_s      p99 latency of the answers before T_BEGIN
  base_n          how many answers that is
  recovered_s     seconds from the request to the start of the first run of
                  WINDOW consecutive requests, all started after T_RUN, whose
                  p99 is within 10 % of base_p99_s (issue 17: "the time until
                  the client's p99 request latency is back within 10 % of its
                  level before the migration"); null if none was
  observed_s      how long after the request the client was watched
  max_latency_after_s  the slowest request that ended after the request

A window of 10 requests (about 10 s of this service's answers) makes its
p99 its slowest answer, so one slow answer keeps it "not back yet".
"""
import json
import sys

WINDOW = 10
SLACK = 1.10


def p99(vals):
    v = sorted(vals)
    return v[min(len(v) - 1, int(0.99 * len(v)))] if v else None


def recovery(samples, t_begin, t_req, t_run):
    """samples: [(end_s, latency_s)]; times in seconds. Returns the dict above."""
    base = [lat for end, lat in samples if end < t_begin]
    out = {"base_p99_s": p99(base), "base_n": len(base), "recovered_s": None,
           "observed_s": round(samples[-1][0] - t_req, 3) if samples else None,
           "max_latency_after_s": max([lat for end, lat in samples if end >= t_req], default=None)}
    if not base:
        return out
    after = [(end - lat, lat) for end, lat in samples if end - lat >= t_run]
    for i in range(len(after) - WINDOW + 1):
        win = [lat for _, lat in after[i:i + WINDOW]]
        if p99(win) <= SLACK * out["base_p99_s"]:
            out["recovered_s"] = round(max(after[i][0], t_run) - t_req, 3)
            break
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    try:
        with open(sys.argv[1]) as f:
            samples = json.load(f).get("samples") or []
    except (OSError, ValueError):
        samples = []
    t = [int(a) / 1000 for a in sys.argv[2:5]]
    print(json.dumps(recovery(samples, *t)))


if __name__ == "__main__":
    main()
