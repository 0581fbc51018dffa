#!/usr/bin/env python3
"""A well-behaved HTTP worker for herd's lifecycle acceptance tests.

Standard library only. It serves on the listening socket it inherits as fd 3
(systemd socket activation: LISTEN_FDS, LISTEN_PID), answers every GET with
200, its pid in the X-Worker-Pid header and as the body, after an optional
?delay=MS. It tells herd over $NOTIFY_SOCKET when it serves (READY=1) and when
it stops (STOPPING=1).

On SIGTERM (or SIGINT) it stops accepting, takes the connections that were
already waiting in the socket's accept queue when it stopped (one bounded,
non-blocking pass), lets every request in flight finish, closes its copy of
the socket and exits 0.

It writes one line to stdout when it serves and one when it exits:
    life_server <pid> serving on <address>
    life_server <pid> exiting 0 after <n> requests
"""

import http.server
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

PID = os.getpid()


def fail(msg):
    print("life_server %d: %s" % (PID, msg), file=sys.stderr, flush=True)
    sys.exit(3)


def notify(state):
    """Sends one sd_notify datagram; a missing NOTIFY_SOCKET is no error."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(addr)
        s.send(state.encode())
    finally:
        s.close()


def inherited_socket():
    if os.environ.get("LISTEN_PID", "") != str(PID):
        fail("LISTEN_PID=%r is not my pid" % os.environ.get("LISTEN_PID"))
    try:
        n = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        n = 0
    if n < 1:
        fail("LISTEN_FDS=%r: no socket to serve on" % os.environ.get("LISTEN_FDS"))
    sock = socket.socket(fileno=3)
    # herd made it non-blocking already; say so to Python too. Workers
    # sharing one socket all wake for a connection and only one gets it:
    # the others must not block in accept().
    sock.setblocking(False)
    return sock


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, closed after the response.
    protocol_version = "HTTP/1.0"
    timeout = 30  # never keep a thread on a silent client for ever

    def do_GET(self):
        q = urllib.parse.urlparse(self.path).query
        delay = urllib.parse.parse_qs(q).get("delay", ["0"])[0]
        try:
            ms = int(delay)
        except ValueError:
            ms = 0
        if ms > 0:
            time.sleep(ms / 1000.0)
        body = ("%d\n" % PID).encode()
        self.send_response(200)
        self.send_header("X-Worker-Pid", str(PID))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.count()

    def log_message(self, format, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    # Wait for every request thread on close: in-flight requests finish.
    daemon_threads = False
    block_on_close = True

    def __init__(self, sock):
        # No bind, no listen: the socket is herd's, bound before we ran.
        socketserver.BaseServer.__init__(self, sock.getsockname(), Handler)
        self.socket = sock
        self.server_name = "life"
        self.server_port = sock.getsockname()[1] if isinstance(sock.getsockname(), tuple) else 0
        self._lock = threading.Lock()
        self.served = 0

    def count(self):
        with self._lock:
            self.served += 1

    def drain_queue(self, limit=256):
        """Takes the connections already waiting in the accept queue."""
        for _ in range(limit):
            try:
                conn, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.process_request(conn, addr)


def main():
    sock = inherited_socket()
    server = Server(sock)
    stopping = threading.Event()

    def on_stop(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        try:
            notify("STOPPING=1")
        except OSError:
            pass
        # shutdown() waits for serve_forever, which runs on this (the main)
        # thread: call it from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    notify("READY=1")
    print("life_server %d serving on %s" % (PID, sock.getsockname()), flush=True)
    server.serve_forever(poll_interval=0.05)
    server.drain_queue()
    server.server_close()  # closes our copy of fd 3, joins request threads
    print("life_server %d exiting 0 after %d requests" % (PID, server.served), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
