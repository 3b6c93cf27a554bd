"""A real HTTP ingestion server on localhost that records what the SDK sends."""

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "test-token-0123456789abcdef"


class Received:
    """One request the server got: its headers and its decoded JSON body."""

    def __init__(self, headers, raw, body):
        self.headers = headers
        self.raw = raw
        self.body = body

    @property
    def is_handshake(self):
        return isinstance(self.body, dict) and self.body.get("handshake") is True


class IngestServer:
    """A stand-in for the booboo server that speaks the protocol over real HTTP.

    ``responses`` is a list of scripted answers consumed one per request
    (``(status, headers)`` or ``"hang"``); once it is empty every request
    gets ``default`` (200 unless changed).
    """

    def __init__(self):
        self.requests = []
        self.responses = []
        self.default = (200, {})
        self.delay = 0.0
        self.arrivals = 0
        """Requests that reached the handler, answered or not."""
        self.lock = threading.Condition()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                data = raw
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(raw)
                try:
                    body = json.loads(data)
                except ValueError:
                    body = None
                with server.lock:
                    server.arrivals += 1
                    server.lock.notify_all()
                    answer = server.responses.pop(0) if server.responses else server.default
                if answer == "hang":
                    server._release.wait(30)
                    return
                if server.delay:
                    time.sleep(server.delay)
                with server.lock:
                    server.requests.append(Received(dict(self.headers), raw, body))
                    server.lock.notify_all()
                status, headers = answer
                payload = json.dumps({"detail": "scripted answer %d" % status}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/" % self.port
        self.dsn = "http://%s@127.0.0.1:%d/acme/web" % (TOKEN, self.port)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for_arrivals(self, count, timeout=15.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.arrivals < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("timed out; %d requests arrived" % self.arrivals)
                self.lock.wait(remaining)

    def events(self):
        with self.lock:
            return [r.body for r in self.requests if not r.is_handshake]

    def wait_for(self, predicate, timeout=15.0):
        """Wait until predicate(requests) is true; return the requests."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self.requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("timed out; the server got %d requests" % len(self.requests))
                self.lock.wait(remaining)
            return list(self.requests)

    def wait_for_events(self, count, timeout=15.0):
        self.wait_for(lambda rs: sum(1 for r in rs if not r.is_handshake) >= count, timeout)
        return self.events()

    def close(self):
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port_nobody_listens_on():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
