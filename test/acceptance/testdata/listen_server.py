#!/usr/bin/env python3
"""A Python 3 standard-library HTTP server that takes its listening socket
from systemd socket activation (LISTEN_FDS, LISTEN_PID) and says it is ready
with sd_notify (READY=1 to $NOTIFY_SOCKET). It knows nothing of herd beyond
these two conventions. Used by listenfds_test.go.

GET /            200 "pid=P index=I uid=U gid=G" (on every inherited socket)
GET /crash/I     the worker whose HERD_WORKER_INDEX is I answers "crashing"
                 and exits 1; any other answers "skip"
GET /stall/S     answers "stalling", accepts nothing for S seconds, exits 1

Options:
  --bind HOST:PORT      bind a socket of its own instead (negative control)
  --beat-for SECONDS    send WATCHDOG=1 every 100 ms for that long, then stop
                        (negative: forever)
  --once-marker PATH    if PATH exists, exit 1 at once without serving
                        (a crash loop after the first run); else create it
  --no-ready            never send READY=1
"""

import os
import socket
import sys


def say(line):
    """One line on stdout in one write, so lines of several workers sharing
    the pipe never interleave (print may write the text and its newline
    separately)."""
    os.write(1, (line + "\n").encode())


def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(msg.encode(), addr)


if "--beat-for" in sys.argv:
    # The first heartbeat before the slower imports: the watchdog clock
    # runs from the moment the process started.
    notify("WATCHDOG=1")

import argparse  # noqa: E402
import http.server  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


def inherited_sockets():
    """The sockets passed by socket activation (fds 3.., sd_listen_fds(3))."""
    pid = os.environ.get("LISTEN_PID")
    if pid is None or int(pid) != os.getpid():
        say(f"listen_server: LISTEN_PID={pid!r} is not my pid {os.getpid()}")
        sys.exit(3)
    n = int(os.environ.get("LISTEN_FDS", "0"))
    if n < 1:
        say("listen_server: LISTEN_FDS < 1")
        sys.exit(3)
    return [socket.socket(fileno=fd) for fd in range(3, 3 + n)]


def http_server(sock):
    server = http.server.HTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    return server


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def reply(self, body):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def finish_and_exit(self, delay):
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if delay > 0:
            time.sleep(delay)
        os._exit(1)

    def do_GET(self):
        me = os.environ.get("HERD_WORKER_INDEX", "")
        parts = self.path.strip("/").split("/")
        if parts[0] == "crash" and len(parts) == 2:
            if parts[1] == me:
                self.reply(f"crashing pid={os.getpid()} index={me}\n")
                self.finish_and_exit(0)
            self.reply(f"skip pid={os.getpid()} index={me}\n")
            return
        if parts[0] == "stall" and len(parts) == 2:
            self.reply(f"stalling pid={os.getpid()}\n")
            self.finish_and_exit(float(parts[1]))
        self.reply(f"pid={os.getpid()} index={me} uid={os.getuid()} gid={os.getgid()}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind")
    ap.add_argument("--beat-for", type=float)
    ap.add_argument("--once-marker")
    ap.add_argument("--no-ready", action="store_true")
    a = ap.parse_args()

    if a.once_marker:
        if os.path.exists(a.once_marker):
            sys.exit(1)
        open(a.once_marker, "w").close()

    if a.bind:
        host, port = a.bind.rsplit(":", 1)
        socks = [socket.create_server((host, int(port)), backlog=128)]
    else:
        socks = inherited_sockets()
    servers = [http_server(s) for s in socks]

    ports = ",".join(str(s.getsockname()[1]) for s in socks)
    say(
        f"listen_server pid={os.getpid()} index={os.environ.get('HERD_WORKER_INDEX', '')}"
        f" port={ports} env_port={os.environ.get('PORT', '')}"
        f" uid={os.getuid()} gid={os.getgid()} groups={','.join(map(str, os.getgroups()))}"
        f" listen_fds={os.environ.get('LISTEN_FDS', '')}"
        f" fdnames={os.environ.get('LISTEN_FDNAMES', '')}"
        f" watchdog_usec={os.environ.get('WATCHDOG_USEC', '')}"
    )

    if a.beat_for is not None:
        def beat():
            end = time.monotonic() + a.beat_for
            while a.beat_for < 0 or time.monotonic() < end:
                notify("WATCHDOG=1")
                time.sleep(0.1)
            say(f"listen_server pid={os.getpid()} beats stopped")
        notify("WATCHDOG=1")
        threading.Thread(target=beat, daemon=True).start()

    if not a.no_ready:
        notify("READY=1")
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
