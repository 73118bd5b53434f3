#!/usr/bin/env python3
"""Client for the memwriter test workload (images/memwriter/memwriter.c).

usage: memwriter-client.py [--timeout S] HOST PORT [status|verify]

Connects, sends the command (default status), prints memwriter's one-line
JSON reply. "verify" makes memwriter check every page of its working set
(each page's content follows from its index and write serial).
Exit status: 0 reply with "ok": true, 1 otherwise (I/O error, bad pages), 2 usage.
Uses only the Python standard library.
"""
import argparse
import json
import socket
import sys


def main():
    ap = argparse.ArgumentParser(description="memwriter status client")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("command", nargs="?", default="status", choices=("status", "verify"))
    a = ap.parse_args()
    try:
        with socket.create_connection((a.host, a.port), timeout=a.timeout) as s:
            s.sendall(a.command.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf)
    except (OSError, ValueError) as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 1
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
