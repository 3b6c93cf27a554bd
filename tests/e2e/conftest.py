"""End-to-end fixtures: the real `booboo` binary on a free port with a
temporary data directory, driven over real HTTP and through its real CLI.

The binary comes from BOOBOO_BIN, else target/debug/booboo (scripts/test
builds it once and reuses it for every suite).
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("BOOBOO_BIN") or ROOT / "target" / "debug" / "booboo")
# Where extra virtualenvs (e.g. the published booboo-sdk 0.16.0) are cached.
VENV_CACHE = Path(os.environ.get("BOOBOO_E2E_VENVS") or ROOT / "target" / "e2e-venvs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


class Server:
    """One `booboo serve` process and its data directory."""

    def __init__(self, data_dir: Path, extra_env: dict | None = None, extra_args: tuple = ()):
        if not BIN.exists():
            raise RuntimeError(f"{BIN} does not exist: build it with `cargo build -p booboo-server` (scripts/test does)")
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The server sees only the settings the test gives it.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BOOBOO_")}
        self.env.update({"BOOBOO_DATA_DIR": str(data_dir), "BOOBOO_PUBLIC_URL": self.url, **(extra_env or {})})
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    def start(self) -> "Server":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN), "--bind", f"127.0.0.1:{self.port}", *self.extra_args, "serve"],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"booboo exited with {self.process.returncode}:\n{self.log()}")
            try:
                if http("GET", self.url + "/healthz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"booboo did not become healthy within 30 s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def run_cli(self, *args: str, input: str | None = None, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN), *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"booboo {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def post_event(self, token: str | None, body, *, gzipped: bool = False, headers: dict | None = None) -> Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["X-Booboo-DSN"] = token
        if gzipped:
            data = gzip.compress(data)
            h["Content-Encoding"] = "gzip"
        return http("POST", self.url + "/", data, h)


_names = itertools.count(1)


@dataclass
class Project:
    server: Server
    org: str
    slug: str
    dsn: str
    ingest_token: str
    token: str
    email: str
    _seen: dict = field(default_factory=dict)
    # The DSN Sentry SDKs take (`http://KEY@HOST/PROJECT_ID`), from the
    # labelled line `booboo project create` prints before the booboo DSN.
    sentry_dsn: str = ""

    def api(self, path: str, method: str = "GET", body=None, expect: int = 200):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        r = http(method, f"{self.server.url}/api/v1{path}", data, headers)
        assert r.status == expect, f"{method} {path}: {r.status} {r.body[:500]!r}"
        return r.json()

    def issues(self, **params) -> list:
        query = "&".join(f"{k}={v}" for k, v in {"status": "all", **params}.items())
        return self.api(f"/projects/{self.org}/{self.slug}/issues?{query}")["items"]

    def wait_for_issues(self, n: int = 1, timeout: float = 15, **params) -> list:
        """Polls until the project has at least `n` issues (any status)."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.issues(**params)
            if len(items) >= n or time.monotonic() > deadline:
                assert len(items) >= n, f"expected {n} issues, found {len(items)}:\n{self.server.log()[-3000:]}"
                return items
            time.sleep(0.1)

    def events(self, issue_id: int) -> list:
        """Every stored event of the issue, newest first, page after page."""
        items, cursor = [], ""
        while True:
            page = self.api(f"/issues/{issue_id}/events?limit=500&cursor={cursor}")
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


def create_project(server: Server, org: str | None = None, slug: str | None = None) -> Project:
    n = next(_names)
    org = org or f"org{n}"
    slug = slug or f"proj{n}"
    lines = server.run_cli("project", "create", f"{org}/{slug}").stdout.strip().splitlines()
    dsn = lines[-1]
    assert dsn.startswith("http://") and "@" in dsn, dsn
    sentry_dsn = next((line.split(": ", 1)[1] for line in lines if line.startswith("Sentry DSN")), "")
    email = f"user{n}@example.com"
    server.run_cli("user", "create", "--email", email, input="correct horse battery\n")
    server.run_cli("member", "add", org, email)
    token = server.run_cli("token", "create", "--email", email).stdout.strip().splitlines()[-1]
    ingest_token = dsn.split("://", 1)[1].split("@", 1)[0]
    return Project(server, org, slug, dsn, ingest_token, token, email, sentry_dsn=sentry_dsn)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("booboo-data")).start()
    yield s
    s.stop()


@pytest.fixture
def project(server) -> Project:
    return create_project(server)


@pytest.fixture
def fresh_server(tmp_path):
    """A server of the test's own, for tests that stop or kill it."""
    s = Server(tmp_path / "data")
    yield s
    s.kill()


def venv_python(name: str, requirements: list[str]) -> Path:
    """A cached virtualenv with `requirements` installed; returns its python."""
    venv = VENV_CACHE / name
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    wanted = "\n".join(requirements)
    if not (marker.exists() and marker.read_text() == wanted):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements], check=True)
        marker.write_text(wanted)
    return python


def run_script(python: Path, source: str, env: dict, timeout: float = 60, name: str = "app.py") -> subprocess.CompletedProcess:
    """Runs a Python application from a file of its own (so frames carry
    source lines), in its own process, as a user would."""
    directory = Path(tempfile.mkdtemp(prefix="booboo-app-"))
    script = directory / name
    script.write_text(source)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOOBOO_")}
    return subprocess.run([str(python), str(script)], cwd=directory, env={**clean, **env}, capture_output=True, text=True, timeout=timeout)


# --- PostgreSQL ----------------------------------------------------------

PG_URL = os.environ.get("BOOBOO_TEST_DATABASE_URL", "")


def psql(sql: str) -> str:
    result = subprocess.run(["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-tAc", sql], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


@pytest.fixture
def pg_database_url():
    """A URL for booboo on a PostgreSQL schema of the test's own, dropped
    afterwards. Skips when BOOBOO_TEST_DATABASE_URL is unset; when it is set,
    any failure to use it fails the test."""
    if not PG_URL:
        pytest.skip("BOOBOO_TEST_DATABASE_URL is not set: PostgreSQL end-to-end tests skipped")
    schema = f"booboo_e2e_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{separator}options=-c%20search_path%3D{schema}&application_name={schema}"
    yield url
    psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}'")
    psql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def smtp():
    """A real SMTP server on loopback collecting what it receives
    (`tests/e2e/smtp_receiver.py`)."""
    from smtp_receiver import SmtpReceiver

    with SmtpReceiver() as receiver:
        yield receiver
