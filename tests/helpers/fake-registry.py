#!/usr/bin/env python3
"""A registry that answers every request with a Bearer challenge whose realm
is given on the command line, and a plain TCP listener (the realm's target).
Both note each request or connection in LOG. For 41-hostile-peer.sh.

  fake-registry.py LOG REGISTRY_PORT LISTENER_PORT REALM
"""
import http.server
import socket
import sys
import threading

log_path, reg_port, lst_port, realm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def note(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        note("registry %s %s" % (self.command, self.path))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="%s",service="x",scope="y"' % realm)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", lst_port))
    s.listen(8)
    while True:
        c, _ = s.accept()
        note("listener connection")
        c.close()


threading.Thread(target=listener, daemon=True).start()
http.server.ThreadingHTTPServer(("127.0.0.1", reg_port), Handler).serve_forever()
