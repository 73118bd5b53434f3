#!/usr/bin/env python3
"""Strict check of Prometheus text exposition format 0.0.4, for the tests
(promtool is not in Debian 12 without the 96 MB prometheus package).

Usage: check-prom.py FILE...  Exits 1 naming the first fault of each file.
Checks: every line is HELP, TYPE or a sample; names and label names are
valid; label values are escaped; values are floats; a family's TYPE comes
before its samples, once, and its samples are contiguous; counters end in
_total; a histogram has cumulative _bucket lines with increasing le ending
in +Inf equal to _count, and a _sum; no sample is repeated."""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*,?)?\})? (\S+)(?: -?\d+)?$" % (NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError("bad value %r" % s)
    return float(s)


def family_of(name, types):
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and types.get(name[: -len(suf)]) in ("histogram", "summary"):
            return name[: -len(suf)]
    return name


def check(text):
    types, seen, done, cur = {}, set(), set(), None
    hist = {}
    if not text.endswith("\n"):
        return "no final newline"
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d (%r)" % (n, line[:80])
        if line.startswith("# HELP "):
            if not re.match(r"^# HELP %s \S" % NAME, line):
                return where + ": bad HELP"
            continue
        if line.startswith("# TYPE "):
            m = re.fullmatch(r"# TYPE (%s) (\w+)" % NAME, line)
            if not m or m.group(2) not in TYPES:
                return where + ": bad TYPE"
            name = m.group(1)
            if name in types:
                return where + ": second TYPE for " + name
            if m.group(2) == "counter" and not name.endswith("_total"):
                return where + ": counter without _total"
            if m.group(2) != "counter" and name.endswith("_total"):
                return where + ": _total on a " + m.group(2)
            types[name] = m.group(2)
            if cur is not None:
                done.add(cur)
            cur = name
            continue
        if line.startswith("#") or not line:
            return where + ": not a sample"
        m = SAMPLE.match(line)
        if not m:
            return where + ": not a valid sample"
        name = m.group(1)
        fam = family_of(name, types)
        if fam not in types:
            return where + ": sample before its TYPE"
        if fam != cur:
            return where + ": family %s is not contiguous" % fam
        labels = re.findall(LABEL, m.group(2) or "")
        key = (name, tuple(sorted(labels)))
        if key in seen:
            return where + ": repeated sample"
        seen.add(key)
        try:
            v = value(m.group(m.lastindex))
        except ValueError as e:
            return where + ": " + str(e)
        if types[fam] == "counter" and (v < 0 or math.isnan(v)):
            return where + ": negative counter"
        if types[fam] == "histogram":
            h = hist.setdefault(fam, {"le": [], "sum": None, "count": None})
            rest = tuple(l for l in labels if l[0] != "le")
            if name.endswith("_bucket"):
                le = [val for k, val in labels if k == "le"]
                if len(le) != 1:
                    return where + ": bucket without le"
                h["le"].append((rest, value(le[0]), v))
            elif name.endswith("_sum"):
                h["sum"] = v
            else:
                h["count"] = v
    for fam, h in hist.items():
        les = [(b, c) for _, b, c in h["le"]]
        if not les or les[-1][0] != math.inf:
            return fam + ": no +Inf bucket"
        if any(a[0] >= b[0] or a[1] > b[1] for a, b in zip(les, les[1:])):
            return fam + ": buckets not increasing and cumulative"
        if h["count"] != les[-1][1] or h["sum"] is None:
            return fam + ": _count differs from the +Inf bucket, or no _sum"
    return None


rc = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        fault = check(f.read())
    if fault:
        print("%s: %s" % (path, fault), file=sys.stderr)
        rc = 1
sys.exit(rc)
