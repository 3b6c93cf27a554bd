"""Hostile clients against the real binary over raw sockets: slow senders
are cut while others are served, connections are capped, and ingestion
refuses what the memory budget cannot hold, or a key it does not know,
before reading the body.

Timeouts are set small through flags; the tests assert what happens, with
generous waits only as an upper bound so a slow machine does not fail them.
"""

from __future__ import annotations

import gzip
import json
import socket
import time

import pytest

from conftest import Server, create_project, http

# Upper bound for anything that should happen "after a one-second timeout".
WAIT = 15


def start(tmp_path, **settings: str) -> Server:
    """A server with settings given as BOOBOO_* variables (the same as the
    flags), e.g. header_timeout="1" for --header-timeout 1."""
    env = {f"BOOBOO_{name.upper()}": value for name, value in settings.items()}
    return Server(tmp_path / "data", extra_env=env).start()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)


def read_response(sock: socket.socket, timeout: float = WAIT) -> tuple[int, dict, bytes]:
    """Reads one HTTP/1.1 response (head and Content-Length body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest


def is_closed_by_server(sock: socket.socket, timeout: float = WAIT) -> bool:
    """True once the server closes the connection; False if it is still open
    after `timeout` seconds. Any response bytes before the close are read."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def no_response_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except socket.timeout:
        return True
    return False


def inflight_bytes(server: Server) -> int:
    for line in http("GET", server.url + "/metrics").body.decode().splitlines():
        if line.startswith("booboo_inflight_bytes "):
            return int(line.split()[1])
    raise AssertionError("/metrics shows no booboo_inflight_bytes")


def hold_budget(server: Server, project, size: int) -> tuple[socket.socket, bytes]:
    """Starts an envelope of `size` bytes and stops sending after its first
    kilobyte; returns once the server has reserved the budget for it."""
    body = envelope_body(project, size)
    holder = connect(server)
    holder.sendall(envelope_headers(project, len(body)) + body[:1000])
    deadline = time.monotonic() + WAIT
    while inflight_bytes(server) < size - 1000:
        assert time.monotonic() < deadline, "the held request never reserved its budget"
        time.sleep(0.05)
    return holder, body


def envelope_headers(project, length: int, *, with_key: bool = True, extra: str = "") -> bytes:
    key = project.ingest_token
    project_id = project.sentry_dsn.rsplit("/", 1)[1]
    auth = f"X-Sentry-Auth: Sentry sentry_key={key}, sentry_version=7\r\n" if with_key else ""
    return (
        f"POST /api/{project_id}/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/x-sentry-envelope\r\nContent-Length: {length}\r\n{auth}{extra}\r\n"
    ).encode()


def envelope_body(project, size: int, *, dsn: str | None = None) -> bytes:
    """An envelope with one event and an attachment padding it to `size` bytes."""
    header = json.dumps({"event_id": "a" * 32, **({"dsn": dsn} if dsn else {})}).encode()
    event = json.dumps({"message": "held open", "level": "error", "platform": "python"}).encode()
    start = header + b"\n" + json.dumps({"type": "event", "length": len(event)}).encode() + b"\n" + event + b"\n"
    pad = size - len(start) - 60
    attachment = json.dumps({"type": "attachment", "length": pad, "filename": "big.bin"}).encode() + b"\n"
    body = start + attachment + b"x" * pad + b"\n"
    assert abs(len(body) - size) < 100
    return body


def test_slowloris_connections_are_closed_after_the_header_timeout_while_others_are_served(tmp_path):
    server = start(tmp_path, header_timeout="1", idle_timeout="60")
    try:
        slow = []
        for _ in range(20):
            s = connect(server)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(s)
        assert http("GET", server.url + "/healthz", timeout=WAIT).status == 200
        for s in slow:
            assert is_closed_by_server(s), "a connection still sending its headers was not closed"
            s.close()
        assert http("GET", server.url + "/healthz", timeout=WAIT).status == 200
    finally:
        server.stop()


def test_a_trickle_of_header_bytes_does_not_extend_the_header_timeout(tmp_path):
    server = start(tmp_path, header_timeout="1", idle_timeout="60")
    try:
        s = connect(server)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        deadline = time.monotonic() + WAIT
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                s.sendall(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = is_closed_by_server(s, timeout=0.2)
        assert closed, "headers sent a line at a time kept the connection open"
        s.close()
    finally:
        server.stop()


def test_an_idle_kept_alive_connection_is_closed(tmp_path):
    server = start(tmp_path, header_timeout="60", idle_timeout="1")
    try:
        s = connect(server)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, _ = read_response(s)
        assert status == 200 and headers.get("connection", "").lower() != "close"
        assert is_closed_by_server(s), "an idle kept-alive connection stayed open"
    finally:
        server.stop()


def test_a_body_sent_too_slowly_is_cut_with_408(tmp_path):
    server = start(tmp_path, body_timeout="1", header_timeout="60", idle_timeout="60")
    try:
        project = create_project(server)
        s = connect(server)
        s.sendall(envelope_headers(project, 100_000))
        answer = None
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                s.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.1)
            try:
                first = s.recv(65536, socket.MSG_PEEK)
            except socket.timeout:
                continue
            if first:
                answer = read_response(s)
            break
        assert answer is not None, "a body trickling in was never cut"
        status, headers, body = answer
        assert status == 408, (status, body)
        assert "body-timeout" in json.loads(body)["detail"]
        assert is_closed_by_server(s)
        # Other clients are still served.
        assert http("GET", server.url + "/healthz", timeout=WAIT).status == 200
    finally:
        server.stop()


def test_connections_past_the_cap_wait_until_a_slot_frees(tmp_path):
    server = start(tmp_path, max_connections="2", header_timeout="60", idle_timeout="60")
    try:
        holders = [connect(server) for _ in range(2)]
        for h in holders:
            h.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        waiting = connect(server)  # completes in the kernel's backlog
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert no_response_within(waiting, 1.5), "a third connection was served past --max-connections 2"
        holders[0].close()
        status, _, _ = read_response(waiting)
        assert status == 200
        for h in holders[1:]:
            h.close()
    finally:
        server.stop()


BUDGET = 2_000_000  # the smallest allowed is --max-body-bytes (1 MiB by default)


def test_over_budget_requests_get_429_or_503_with_retry_after_before_the_body_is_read(tmp_path):
    server = start(tmp_path, max_inflight_bytes=str(BUDGET), body_timeout="60")
    try:
        project = create_project(server)
        holder, holder_body = hold_budget(server, project, 1_500_000)

        # Headers only: the answer must come without a byte of the body.
        s = connect(server)
        s.sendall(envelope_headers(project, 1_000_000))
        status, headers, body = read_response(s)
        assert status == 429, (status, body)
        assert headers["retry-after"] == "1"
        assert headers["x-sentry-rate-limits"].startswith("1:")
        assert "max-inflight-bytes" in json.loads(body)["detail"]
        s.close()

        s = connect(server)
        s.sendall(
            f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Booboo-DSN: {project.ingest_token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n".encode()
        )
        status, headers, body = read_response(s)
        assert status == 503 and headers["retry-after"] == "1", (status, body)
        s.close()

        # The holder finishes and is stored; then the budget has room again.
        holder.sendall(holder_body[1000:])
        status, _, body = read_response(holder)
        assert status == 200, body
        holder.close()
        small = envelope_body(project, 900_000)
        r = http("POST", f"{server.url}/api/{project.sentry_dsn.rsplit('/', 1)[1]}/envelope/", small,
                 {"X-Sentry-Auth": f"Sentry sentry_key={project.ingest_token}"})
        assert r.status == 200, r.body
        metrics = http("GET", server.url + "/metrics").body.decode()
        assert 'reason="over_memory_budget"' in metrics
        # Everything given back once stored.
        assert inflight_bytes(server) == 0
    finally:
        server.stop()


def test_decompressed_bytes_count_against_the_budget(tmp_path):
    server = start(tmp_path, max_inflight_bytes=str(BUDGET))
    try:
        project = create_project(server)
        holder, _ = hold_budget(server, project, 1_500_000)
        # Small on the wire, 1 MB once inflated: it does not fit beside the holder.
        bomb = gzip.compress(envelope_body(project, 1_000_000))
        assert len(bomb) < 20_000
        s = connect(server)
        s.sendall(envelope_headers(project, len(bomb), extra="Content-Encoding: gzip\r\n") + bomb)
        status, headers, body = read_response(s)
        assert status == 429 and headers["retry-after"] == "1", (status, body)
        s.close()
        holder.close()
    finally:
        server.stop()


def test_an_unknown_key_in_the_envelope_header_is_refused_after_the_first_line(tmp_path):
    server = start(tmp_path, body_timeout="60")
    try:
        project = create_project(server)
        project_id = project.sentry_dsn.rsplit("/", 1)[1]
        for encoding in (None, "gzip"):
            first_line = json.dumps({"dsn": f"http://{'0' * 32}@127.0.0.1/{project_id}"}).encode() + b"\n"
            s = connect(server)
            extra = f"Content-Encoding: {encoding}\r\n" if encoding else ""
            start_of_body = first_line + b'{"type":"attachment","length":19000000}\n' + b"x" * 4096
            if encoding == "gzip":
                # A gzip stream flushed after the first line, as a streaming client sends it.
                import zlib

                z = zlib.compressobj(wbits=31)
                start_of_body = z.compress(start_of_body) + z.flush(zlib.Z_SYNC_FLUSH)
            s.sendall(envelope_headers(project, 19 * 1024 * 1024, with_key=False, extra=extra) + start_of_body)
            status, _, body = read_response(s)
            assert status == 401, (encoding, status, body)
            assert "unknown or revoked" in json.loads(body)["detail"]
            s.close()
    finally:
        server.stop()


@pytest.mark.parametrize("header_timeout", ["1"])
def test_graceful_shutdown_still_finishes_a_request_in_progress(tmp_path, header_timeout):
    server = start(tmp_path, header_timeout=header_timeout)
    project = create_project(server)
    body = envelope_body(project, 200_000)
    s = connect(server)
    s.sendall(envelope_headers(project, len(body)) + body[:1000])
    time.sleep(0.3)
    server.process.send_signal(15)
    time.sleep(0.3)
    s.sendall(body[1000:])
    status, _, answer = read_response(s)
    assert status == 200, answer
    assert server.process.wait(timeout=WAIT) == 0
