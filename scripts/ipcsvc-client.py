#!/usr/bin/env python3
"""Drives the ipcsvc test workload (images/ipcsvc/ipcsvc.c) and checks its
state exactly against a model of every acknowledged update.

usage: ipcsvc-client.py --until-file F [--conns N] [--interval-ms MS]
                        [--progress FILE] HOST PORT

Opens N connections (default 3; each is served by its own prefork front
end) and never reconnects. Every MS ms (default 5) each connection sends
`INC id key delta` for keys of its own (key % N == its index, so each
answer, the key's new value, is predictable from the model); connection 0
also PARKs a word into the service's SysV message queue every 7th round and
UNPARKs the oldest every 11th, so the queue's contents change all the time.
Every answer is checked as it arrives. When file F exists, it asks for
STATE and compares counters, totals, the semaphore, the POSIX shm and
shared-anonymous mirrors, the requests served, the parked messages in
order and the queue's length with the model, that the big segment
(IPCSVC_SHM_MB) still holds what it was filled with, and that the HELLO token of
every connection (drawn once when the service started) is unchanged.
--progress FILE gets the number of acknowledged updates every 100 rounds.
Prints {"ok", "acked", "parked", "rounds", "max_gap_ms", "errors": [...]}
as one JSON line; exit 0 if ok, 1 otherwise, 2 usage.
Uses only the Python standard library.
"""
import argparse
import collections
import json
import os
import socket
import sys
import time

NKEYS = 64


class Check(Exception):
    pass


class Client:
    def __init__(self, a):
        self.a = a
        self.counters = [0] * NKEYS
        self.parked = collections.deque()
        self.acked = self.sum = self.served = self.next_id = self.rounds = 0
        self.max_gap = 0.0
        self.conns, self.token = [], None

    def connect(self):
        for _ in range(self.a.conns):
            s = socket.create_connection((self.a.host, self.a.port), timeout=10)
            s.settimeout(self.a.timeout)
            f = s.makefile("rb")
            hello = f.readline().decode().split()
            if len(hello) != 3 or hello[0] != "HELLO":
                raise Check("no HELLO: %r" % hello)
            if self.token not in (None, hello[1]):
                raise Check("two tokens: %s and %s" % (self.token, hello[1]))
            self.token = hello[1]
            self.conns.append((s, f))

    def ask(self, i, line):
        s, f = self.conns[i]
        s.sendall(line.encode() + b"\n")
        return self.answer(i)

    def answer(self, i):
        reply = self.conns[i][1].readline().decode()
        if not reply.endswith("\n"):
            raise Check("connection %d closed by the service" % i)
        return reply.split()

    def new_id(self):
        self.next_id += 1
        return self.next_id

    def one_round(self):
        sent = []
        for i, (s, _) in enumerate(self.conns):
            mine = range(i, NKEYS, self.a.conns)
            key = mine[self.rounds % len(mine)]
            rid, delta = self.new_id(), self.rounds % 97 + 1
            s.sendall(("INC %d %d %d\n" % (rid, key, delta)).encode())
            sent.append((i, rid, key, delta))
        for i, rid, key, delta in sent:
            self.check_inc(self.answer(i), rid, key, delta)
        if self.rounds % 7 == 0 and len(self.parked) < 100:
            self.park()
        if self.rounds % 11 == 0 and self.parked:
            self.unpark()
        self.rounds += 1

    def check_inc(self, r, rid, key, delta):
        self.counters[key] += delta
        want = ["OK", str(rid), str(self.counters[key])]
        if r != want:
            raise Check("INC %d on key %d: got %s, want %s" % (rid, key, r, want))
        self.acked += 1
        self.sum += delta
        self.served += 1

    def park(self):
        rid = self.new_id()
        word = "w%d-%x" % (rid, rid * 2654435761 % 2**32)
        r = self.ask(0, "PARK %d %s" % (rid, word))
        self.parked.append([rid, word])
        self.served += 1
        if r != ["PARKED", str(rid), str(len(self.parked))]:
            raise Check("PARK %d: got %s, %d parked in the model" % (rid, r, len(self.parked)))

    def unpark(self):
        rid = self.new_id()
        r = self.ask(0, "UNPARK %d" % rid)
        want_id, want_word = self.parked.popleft()
        self.served += 1
        if r != ["UNPARKED", str(rid), str(want_id), want_word]:
            raise Check("UNPARK %d: got %s, want %d %s" % (rid, r, want_id, want_word))

    def progress(self):
        if self.a.progress and self.rounds % 100 == 0:
            tmp = self.a.progress + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % self.acked)
            os.replace(tmp, self.a.progress)

    def run(self):
        self.connect()
        last = time.monotonic()
        while not os.path.exists(self.a.until_file):
            self.one_round()
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.progress()
            time.sleep(self.a.interval_ms / 1000.0)
        return self.final_state()

    def final_state(self):
        s, f = self.conns[0]
        s.sendall(b"STATE\n")
        st = json.loads(f.readline())
        want = {"big_ok": True, "token": self.token, "ops": self.acked, "sum": self.sum,
                "sem": self.acked % st["sem_mod"], "posix_ops": self.acked,
                "posix_sum": self.sum, "anon_ops": self.acked, "served": self.served,
                "qnum": len(self.parked), "parked": [list(p) for p in self.parked],
                "counters": self.counters}
        return ["%s: service has %s, model %s" % (k, st.get(k), v)
                for k, v in want.items() if st.get(k) != v]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--until-file", required=True)
    p.add_argument("--conns", type=int, default=3)
    p.add_argument("--interval-ms", type=float, default=5)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--progress")
    p.add_argument("host")
    p.add_argument("port", type=int)
    a = p.parse_args()
    if not 1 <= a.conns <= 4:
        p.error("--conns: 1 to 4 (the service has 4 front ends)")
    c = Client(a)
    try:
        errors = c.run()
    except (Check, OSError, ValueError) as e:
        errors = ["%s: %s" % (type(e).__name__, e)]
    print(json.dumps({"ok": not errors, "acked": c.acked, "parked": len(c.parked),
                      "rounds": c.rounds, "max_gap_ms": round(c.max_gap * 1000),
                      "errors": errors}))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
