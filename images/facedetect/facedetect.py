#!/usr/bin/env python3
"""edgemig test workload: a small face-detection TCP service.

Protocol (per request, several requests per connection allowed):
  client -> server: 4-byte big-endian length N, then N bytes of an encoded
                    image (anything cv2.imdecode reads: PNG, JPEG, ...)
  server -> client: 4-byte big-endian length M, then M bytes of UTF-8 JSON
                    {"faces": [[x, y, w, h], ...], "n": K, "seq": S}
                    S = number of requests served so far (including this one),
                    kept in memory only -- a live migration preserves it.
  On a bad request the JSON is {"error": "...", "seq": S}.

Environment: FACEDETECT_PORT (default 8080), FACEDETECT_HOST (default 0.0.0.0),
FACEDETECT_CASCADE (default: haarcascade_frontalface_default.xml from
opencv-data or cv2.data).
"""
import json
import os
import socket
import socketserver
import struct
import sys
import threading

import cv2
import numpy as np

MAX_IMAGE = 32 * 1024 * 1024
CASCADE_NAME = "haarcascade_frontalface_default.xml"


def find_cascade():
    env = os.environ.get("FACEDETECT_CASCADE")
    if env:
        return env
    candidates = ["/usr/share/opencv4/haarcascades/" + CASCADE_NAME,
                  "/usr/share/opencv/haarcascades/" + CASCADE_NAME]
    data = getattr(cv2, "data", None)
    if data is not None:
        candidates.append(os.path.join(data.haarcascades, CASCADE_NAME))
    for c in candidates:
        if os.path.exists(c):
            return c
    sys.exit("facedetect: cannot find " + CASCADE_NAME)


CASCADE_PATH = find_cascade()
CLASSIFIER = cv2.CascadeClassifier(CASCADE_PATH)
if CLASSIFIER.empty():
    sys.exit("facedetect: cannot load cascade " + CASCADE_PATH)
LOCK = threading.Lock()  # CascadeClassifier is not thread-safe; also guards seq
SEQ = 0


def detect(data):
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError("cannot decode image")
    img = cv2.equalizeHist(img)
    faces = CLASSIFIER.detectMultiScale(img, scaleFactor=1.1, minNeighbors=5,
                                        minSize=(30, 30))
    return [[int(v) for v in f] for f in faces]


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        global SEQ
        sock = self.request
        while True:
            hdr = recv_exact(sock, 4)
            if hdr is None:
                return
            (n,) = struct.unpack(">I", hdr)
            if n > MAX_IMAGE:
                return
            data = recv_exact(sock, n)
            if data is None:
                return
            with LOCK:
                SEQ += 1
                seq = SEQ
                try:
                    faces = detect(data)
                    reply = {"faces": faces, "n": len(faces), "seq": seq}
                except Exception as e:  # report, keep serving
                    reply = {"error": str(e), "seq": seq}
            body = json.dumps(reply).encode()
            sock.sendall(struct.pack(">I", len(body)) + body)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    host = os.environ.get("FACEDETECT_HOST", "0.0.0.0")
    port = int(os.environ.get("FACEDETECT_PORT", "8080"))
    with Server((host, port), Handler) as srv:
        print("facedetect: listening on %s:%d (cascade %s, opencv %s)"
              % (host, port, CASCADE_PATH, cv2.__version__), flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
