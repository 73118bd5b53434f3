#!/usr/bin/env python3
"""Client for the memwriter test workload (images/memwriter/memwriter.c).

usage: memwriter-client.py [--timeout S] HOST PORT [status|verify]
       memwriter-client.py --probe --until-file F [--interval-ms N] HOST PORT

Connects, sends the command (default status), prints memwriter's one-line
JSON reply. "verify" makes memwriter check every page of its working set
(each page's content follows from its index and write serial).
--probe asks for the status every N ms (default 100) over ONE connection,
never reconnecting (like edgemig-probe: the connection must survive a
migration, and CRIU refuses to dump a listener with a connection not yet
accepted), until file F exists or SIGTERM, then prints {"requests", "errors",
"broken", "max_gap_ms" (longest time between two answers), "open_gap_ms"
(since the last answer), "first", "last" (the first and last replies),
"samples" ([end, latency] of every answer, end in Unix seconds: memwriter
answers between its page writes, so a stalled writer answers late;
bench/lib/recovery.py)}.
Exit status: 0 reply with "ok": true, 1 otherwise (I/O error, bad pages), 2 usage.
Uses only the Python standard library.
"""
import argparse
import json
import os
import signal
import socket
import sys
import time


def ask(host, port, command, timeout):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def probe(a):
    st = {"requests": 0, "errors": 0, "broken": False, "max_gap": 0.0, "first": None, "last": None,
          "t_last": time.monotonic(), "samples": []}

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        s = socket.create_connection((a.host, a.port), timeout=5)
        s.settimeout(300)
        f = s.makefile("rb")
        while not os.path.exists(a.until_file):
            t0 = time.monotonic()
            st["requests"] += 1
            s.sendall(b"status\n")
            line = f.readline()
            if not line:
                raise ConnectionError("closed by memwriter")
            r = json.loads(line)
            now = time.monotonic()
            st["samples"].append([round(time.time(), 4), round(now - t0, 4)])
            st["max_gap"] = max(st["max_gap"], now - st["t_last"])
            st["t_last"] = now
            st["first"] = st["first"] or r
            st["last"] = r
            time.sleep(max(0.0, a.interval_ms / 1000 - (time.monotonic() - t0)))
    except (OSError, ValueError) as e:
        st["errors"] += 1
        st["broken"] = str(e)
    finally:
        print(json.dumps({"requests": st["requests"], "errors": st["errors"], "broken": st["broken"],
                          "max_gap_ms": round(st["max_gap"] * 1000, 1),
                          "open_gap_ms": round((time.monotonic() - st["t_last"]) * 1000, 1),
                          "first": st["first"], "last": st["last"], "samples": st["samples"]}), flush=True)
    return 0 if st["last"] and not st["broken"] else 1


def main():
    ap = argparse.ArgumentParser(description="memwriter status client")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--until-file")
    ap.add_argument("--interval-ms", type=float, default=100)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("command", nargs="?", default="status", choices=("status", "verify"))
    a = ap.parse_args()
    if a.probe:
        if not a.until_file:
            ap.error("--probe needs --until-file")
        return probe(a)
    try:
        reply = ask(a.host, a.port, a.command, a.timeout)
    except (OSError, ValueError) as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 1
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
