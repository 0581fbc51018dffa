#!/usr/bin/env python3
"""A Python HTTP server from the standard library alone, for herd's `none`
policy: herd binds the port and gives every worker the same listening
socket as fd 3 with LISTEN_FDS and LISTEN_PID (systemd's socket activation
convention), and the kernel spreads connections among the workers. The
server says it is ready with sd_notify READY=1 on $NOTIFY_SOCKET, which is
what turns herd's /readyz green, and STOPPING=1 when SIGTERM asks it to
stop; requests in flight then finish before it exits.
"""

import http.server
import os
import signal
import socket
import socketserver
import sys
import threading

SD_LISTEN_FDS_START = 3


def listen_socket():
    """The first socket passed by socket activation."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        sys.exit("server.py: no socket in LISTEN_FDS: run it under herd with HERD_SCHED_POLICY=none")
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def sd_notify(state):
    """Send one state line to the service manager (herd), if there is one."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return
    if addr.startswith("@"):  # an abstract socket
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), addr)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    # server_close waits for the threads serving requests.
    daemon_threads = False
    block_on_close = True


def main():
    sock = listen_socket()
    server = Server(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock

    def stop(signum, frame):
        sd_notify("STOPPING=1")
        # shutdown waits for serve_forever, which runs in this very thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    sd_notify("READY=1")
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
