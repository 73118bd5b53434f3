#!/usr/bin/env python3
"""Load client for the edgemig openface service (images/openface/openface.js).

usage: openface-client.py [options] HOST PORT EXPECT.json

EXPECT.json maps image files (paths relative to it) to the identities the
service must answer for them, left to right, e.g.
    {"sample1.jpg": ["sample1-0"], "noface.png": []}
The client sends the images round-robin over ONE TCP connection (4-byte
big-endian length + JPEG; reply 4-byte length + JSON), checks every answer
(ids equal to the expected list, seq one more than the last) and prints one
JSON summary line at the end: requests, max_latency_s, and max_gap_ms (the
longest time without an answer, from the first request on; with SIGTERM it
stops at once and adds open_gap_ms, the time since the last answer), and
samples: [end, latency] of every answered request (end in Unix seconds,
wall clock, so that bench/run can place them against a migration's
timeline: the time until the p99 latency is back at its level before it).

  --rate R          requests per second to aim for (0 = back to back; default)
  --count N         stop after N requests
  --duration S      stop after S seconds
  --until-file F    stop when file F exists
  --timeout S       one request's deadline (default 120 s)
Exit status: 0 every answer correct, 1 a wrong answer or I/O failure, 2 usage.
Uses only the Python standard library.
"""
import argparse
import json
import os
import signal
import socket
import struct
import sys
import time


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return bytes(buf)


def request(sock, payload):
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    (n,) = struct.unpack(">I", recv_exact(sock, 4))
    return json.loads(recv_exact(sock, n))


def load_expect(path):
    base = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        spec = json.load(f)
    out = []
    for name, ids in sorted(spec.items()):
        with open(os.path.join(base, name), "rb") as f:
            out.append((name, f.read(), ids))
    if not out:
        raise ValueError("%s lists no images" % path)
    return out


def stop(args, n, t0):
    if args.count and n >= args.count:
        return True
    if args.duration and time.monotonic() - t0 >= args.duration:
        return True
    return bool(args.until_file) and os.path.exists(args.until_file)


class Stopped(Exception):
    pass


def on_term(*_):
    raise Stopped()


def run(args, images, st):
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n, seq0, worst, t0 = 0, None, 0.0, time.monotonic()
    st["last"] = t0
    while not stop(args, n, t0):
        name, data, ids = images[n % len(images)]
        t = time.monotonic()
        r = request(sock, data)
        now = time.monotonic()
        worst = max(worst, now - t)
        st["gap"] = max(st["gap"], now - st["last"])
        st["last"] = now
        st["requests"] = n + 1
        st["samples"].append([round(time.time(), 3), round(now - t, 3)])
        if r.get("ids") != ids:
            raise ValueError("request %d (%s): expected %s, got %s" % (n, name, ids, r))
        if seq0 is None:
            seq0 = r["seq"] - n
        elif r["seq"] != seq0 + n:
            raise ValueError("request %d: seq %s, expected %s" % (n, r["seq"], seq0 + n))
        n += 1
        if args.rate > 0:
            time.sleep(max(0.0, t + 1.0 / args.rate - time.monotonic()))
    return {"ok": True, "requests": n, "seconds": round(time.monotonic() - t0, 3),
            "max_latency_s": round(worst, 3), "max_gap_ms": round(st["gap"] * 1000),
            "last_seq": (seq0 or 0) + n - 1, "samples": st["samples"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("expect")
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--until-file")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    st = {"gap": 0.0, "last": None, "requests": 0, "samples": []}
    signal.signal(signal.SIGTERM, on_term)
    try:
        images = load_expect(args.expect)
        print(json.dumps(run(args, images, st)))
    except Stopped:
        now = time.monotonic()
        print(json.dumps({"ok": True, "stopped": True, "requests": st["requests"],
                          "max_gap_ms": round(st["gap"] * 1000),
                          "open_gap_ms": round((now - st["last"]) * 1000) if st["last"] else None,
                          "samples": st["samples"]}))
    except (OSError, ValueError, KeyError) as e:
        print(json.dumps({"ok": False, "error": str(e), "requests": st["requests"],
                          "max_gap_ms": round(st["gap"] * 1000), "samples": st["samples"]}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
