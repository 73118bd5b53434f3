#!/usr/bin/python3
"""A committing client for the edgemig MariaDB test image (images/mariadb).

usage: mariadb-client.py commit HOST [--interval-ms N] --until-file FILE
       mariadb-client.py verify HOST --last N

commit: over ONE connection (never reconnects), creates table edge.t if
needed and commits one row (n = the largest there + 1, + 2, ...; a later
client continues the numbers) every --interval-ms until
FILE exists; a commit counts as acknowledged when COMMIT returned. Prints
one JSON line: {"commits", "last_acked", "errors", "max_gap_ms",
"connection_id_first", "connection_id_last"}. Exit 1 on any error (the
connection broke, a statement failed).

verify: over a new connection, every n of 1..N is in edge.t (exit 1 if
not; so every earlier client's acknowledged rows are checked too), and
prints {"rows", "max", "missing"}.

Account edge/edge (images/mariadb/init.sql). Needs python3-pymysql.
"""
import argparse
import json
import os
import sys
import time

import pymysql


def connect(host):
    return pymysql.connect(host=host, port=3306, user="edge", password="edge",
                           database="edge", autocommit=False, connect_timeout=10,
                           read_timeout=300, write_timeout=300)


def conn_id(cur):
    cur.execute("SELECT CONNECTION_ID()")
    return cur.fetchone()[0]


def commit_loop(args):
    c = connect(args.host)
    cur = c.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS t (n INT PRIMARY KEY, at TIMESTAMP(6) "
                "DEFAULT CURRENT_TIMESTAMP(6), pad VARCHAR(200)) ENGINE=InnoDB")
    c.commit()
    first = conn_id(cur)
    cur.execute("SELECT COALESCE(MAX(n), 0) FROM t")
    n = cur.fetchone()[0]
    c.commit()
    out = {"commits": 0, "last_acked": n, "errors": 0, "max_gap_ms": 0,
           "connection_id_first": first}
    last_ok, step = time.monotonic(), args.interval_ms / 1000.0
    try:
        while not os.path.exists(args.until_file):
            n += 1
            cur.execute("INSERT INTO t (n, pad) VALUES (%s, %s)", (n, "x" * 100))
            c.commit()
            now = time.monotonic()
            out["max_gap_ms"] = max(out["max_gap_ms"], int((now - last_ok) * 1000))
            out["commits"] += 1
            out["last_acked"] = n
            last_ok = now
            time.sleep(max(0.0, step - (time.monotonic() - now)))
        out["connection_id_last"] = conn_id(cur)
    except Exception as e:  # the connection broke or a statement failed
        out["errors"] += 1
        out["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(out), flush=True)
    return 1 if out["errors"] else 0


def verify(args):
    c = connect(args.host)
    cur = c.cursor()
    cur.execute("SELECT n FROM t")
    have = {r[0] for r in cur.fetchall()}
    missing = [i for i in range(1, args.last + 1) if i not in have]
    print(json.dumps({"rows": len(have), "max": max(have, default=0),
                      "missing": missing[:20]}))
    return 1 if missing else 0


def main():
    ap = argparse.ArgumentParser(description="edgemig MariaDB test client")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("commit", help="commit a row every interval over one connection")
    a.add_argument("host")
    a.add_argument("--interval-ms", type=float, default=10)
    a.add_argument("--until-file", required=True)
    v = sub.add_parser("verify", help="check rows 1..N over a new connection")
    v.add_argument("host")
    v.add_argument("--last", type=int, required=True)
    args = ap.parse_args()
    return commit_loop(args) if args.cmd == "commit" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
