#!/usr/bin/env python3
"""How many MB of a process's memory change over an interval.

usage: dirty-pages.py PID SECONDS [SECONDS...]

Hashes every 4 KiB page of PID's writable private mappings (read through
/proc/PID/mem), waits SECONDS, hashes again and counts the pages whose
content changed or that appeared: what a final dump would have to carry
after a base dump taken SECONDS earlier (this kernel has no soft-dirty bit,
so content is compared, as edgemig's page hashing does). With several
SECONDS, each interval starts from a fresh base. Reading the memory takes
time too (seconds for a few hundred MB on a loaded machine): span_s is from
the base reading's start to the second reading's end, the bound on the
interval the pages were dirtied in. Prints one JSON line:
{"pid", "rss_mb", "intervals": [{"seconds", "span_s", "dirty_mb", "new_mb"}]}.
"""
import hashlib
import json
import sys
import time

PAGE = 4096


def regions(pid):
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]", "[vdso]"):
                continue
            if parts[1][1] == "w" and parts[1][3] == "p":
                a, b = (int(x, 16) for x in parts[0].split("-"))
                yield a, b


def snapshot(pid):
    pages = {}
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for a, b in regions(pid):
            try:
                mem.seek(a)
                data = mem.read(b - a)
            except OSError:
                continue
            for off in range(0, len(data), PAGE):
                page = data[off:off + PAGE]
                if page.count(0) != PAGE:  # never-touched or zero pages cost nothing
                    pages[a + off] = hashlib.blake2b(page, digest_size=16).digest()
    return pages


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    out = {"pid": pid, "rss_mb": rss_mb(pid), "intervals": []}
    for s in sys.argv[2:]:
        t0 = time.monotonic()
        base = snapshot(pid)
        time.sleep(float(s))
        now = snapshot(pid)
        span = time.monotonic() - t0
        changed = sum(1 for k, v in now.items() if k in base and base[k] != v)
        new = sum(1 for k in now if k not in base)
        out["intervals"].append({"seconds": float(s), "span_s": round(span, 1), "dirty_mb": round((changed + new) * PAGE / 1e6, 1),
                                 "new_mb": round(new * PAGE / 1e6, 1)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
