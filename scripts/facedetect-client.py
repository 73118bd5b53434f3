#!/usr/bin/env python3
"""Client for the edgemig facedetect test service (images/facedetect/facedetect.py).

usage: facedetect-client.py [-n COUNT] [--timeout S] HOST PORT IMAGE

Sends IMAGE (PNG/JPEG bytes) as a 4-byte big-endian length + payload, reads the
4-byte big-endian length + JSON reply and prints the JSON (one line per
request; with -n COUNT it sends COUNT requests over the same connection).
Exit status: 0 ok, 1 error reply or I/O failure, 2 usage.
Uses only the Python standard library.
"""
import argparse
import json
import socket
import struct
import sys


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def request(sock, payload):
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    (n,) = struct.unpack(">I", recv_exact(sock, 4))
    return json.loads(recv_exact(sock, n))


def main():
    ap = argparse.ArgumentParser(description="edgemig facedetect client")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("image")
    ap.add_argument("-n", "--count", type=int, default=1, help="requests to send (default 1)")
    ap.add_argument("--timeout", type=float, default=30.0, help="socket timeout in seconds")
    args = ap.parse_args()
    try:
        with open(args.image, "rb") as f:
            payload = f.read()
    except OSError as e:
        print("facedetect-client: %s" % e, file=sys.stderr)
        return 2
    rc = 0
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
            for _ in range(args.count):
                reply = request(sock, payload)
                print(json.dumps(reply), flush=True)
                if "error" in reply:
                    rc = 1
    except (OSError, ValueError) as e:
        print("facedetect-client: %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
