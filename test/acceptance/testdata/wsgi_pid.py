# A WSGI app for gunicorn: every request is answered with the pid and
# HERD_WORKER_INDEX of the process that served it.
import os
def app(environ, start_response):
    body = ("pid=%d index=%s" % (os.getpid(), os.environ.get("HERD_WORKER_INDEX", ""))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
