#!/usr/bin/env python3
"""Plain TCP byte pipe for the benchmark's baseline methods (no nc/socat here).

  xfer.py recv ADDR PORT READY_FILE   listen, touch READY_FILE, copy one
                                      connection to stdout, exit at EOF
  xfer.py send ADDR PORT              copy stdin to ADDR:PORT (retries the
                                      connect for 10 s), then wait for the
                                      receiver to close, so that "sent" means
                                      "received"

Run each end inside its host's network namespace so the bytes really cross
the shaped veth path host A -> router -> host B.
"""
import os
import socket
import sys
import time

CHUNK = 1 << 20


def recv(addr, port, ready):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, int(port)))
    srv.listen(1)
    open(ready, "w").close()
    conn, _ = srv.accept()
    out = sys.stdout.buffer
    while True:
        buf = conn.recv(CHUNK)
        if not buf:
            break
        out.write(buf)
    out.flush()
    conn.close()


def send(addr, port):
    deadline = time.monotonic() + 10
    while True:
        try:
            s = socket.create_connection((addr, int(port)))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    inp = sys.stdin.buffer
    while True:
        buf = inp.read1(CHUNK) if hasattr(inp, "read1") else os.read(0, CHUNK)
        if not buf:
            break
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the receiver closes after EOF: everything has arrived
    s.close()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "recv":
        recv(*sys.argv[2:5])
    elif len(sys.argv) == 4 and sys.argv[1] == "send":
        send(*sys.argv[2:4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
