"""Disk full: the real binary with its database on a small tmpfs, on SQLite
(the data directory) and on PostgreSQL (a tablespace on this machine's
server). Every event answered 200 is stored, every refused one is absent
(not half stored), refusals say "disk full" with Retry-After, `/healthz` says
so, and once space is freed ingest and project creation work again without a
restart.

Mounting a tmpfs needs root: the test skips without it, and fails instead
when BOOBOO_REQUIRE_TMPFS=1 (CI sets it). The PostgreSQL case also needs
BOOBOO_TEST_DATABASE_URL, naming a server on this machine (the tablespace
is a directory it must reach)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import PG_URL, Server, create_project, http, psql
from payloads import event

REQUIRED = os.environ.get("BOOBOO_REQUIRE_TMPFS") == "1"


def _cannot(problem: str, required: bool = REQUIRED):
    if required:
        pytest.fail(f"{problem}, and the environment demands this test")
    pytest.skip(problem)


@pytest.fixture
def small_disk():
    """A 12 MiB tmpfs, unmounted afterwards. Mounted under the system's
    temporary directory, which PostgreSQL's own user can reach too."""
    mount_point = Path(tempfile.mkdtemp(prefix="booboo-small-disk-"))
    mount_point.chmod(0o755)
    problem = None
    if os.geteuid() != 0:
        problem = "mounting a tmpfs needs root"
    else:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)], capture_output=True, text=True)
        if result.returncode != 0:
            problem = f"mount -t tmpfs failed: {result.stderr.strip()}"
    if problem:
        mount_point.rmdir()
        _cannot(problem)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        shutil.rmtree(mount_point, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def full_disk_store(request, small_disk, tmp_path):
    """`(extra_env, data_dir)` for a server whose database lives on the
    small disk: SQLite's data directory there, or PostgreSQL's tables in a
    tablespace there (a schema of the test's own, dropped afterwards)."""
    if request.param == "sqlite":
        yield {}, small_disk / "data"
        return
    if not PG_URL:
        _cannot("BOOBOO_TEST_DATABASE_URL is not set: the PostgreSQL disk-full test skipped", required=False)
    server_dir = Path(psql("SHOW data_directory"))
    if not server_dir.is_dir():
        _cannot(f"the PostgreSQL server's data directory {server_dir} is not on this machine, "
                "so a tablespace on a local tmpfs cannot be made")
    owner = server_dir.stat()
    location = small_disk / "tablespace"
    location.mkdir()
    os.chown(location, owner.st_uid, owner.st_gid)
    location.chmod(0o700)
    name = f"booboo_e2e_full_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE TABLESPACE {name} LOCATION '{location}'")
    try:
        psql(f"CREATE SCHEMA {name}")
        separator = "&" if "?" in PG_URL else "?"
        url = (f"{PG_URL}{separator}options=-c%20search_path%3D{name}%20-c%20default_tablespace%3D{name}"
               f"&application_name={name}")
        yield {"BOOBOO_DATABASE_URL": url}, tmp_path / "data"
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'")
        psql(f"DROP SCHEMA {name} CASCADE")
    finally:
        psql(f"DROP TABLESPACE IF EXISTS {name}")


def fill(path: Path) -> None:
    """Writes a ballast file until the file system refuses more."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 512)
            except OSError:
                return


def big_event(event_id: str) -> dict:
    # About 6 KB, so the database needs new pages often.
    return event(event_id=event_id, extra={"blob": uuid.uuid4().hex * 180})


class Sender:
    """Threads posting booboo events; every id is filed by its answer."""

    def __init__(self, server: Server, token: str):
        self.server, self.token = server, token
        self.acked: set[str] = set()
        self.refused: dict[str, tuple[int, dict]] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set():
            event_id = uuid.uuid4().hex
            r = self.server.post_event(self.token, big_event(event_id))
            with self.lock:
                if r.status == 200:
                    self.acked.add(event_id)
                else:
                    self.refused[event_id] = (r.status, {**r.headers, "body": r.body.decode(errors="replace")})

    def refusals(self) -> int:
        with self.lock:
            return len(self.refused)


def stored_ids(project, issue_id: int) -> list[str]:
    ids, cursor = [], ""
    while True:
        page = project.api(f"/issues/{issue_id}/events?limit=500&cursor={cursor}")
        ids += [e["id"] for e in page["items"]]
        if not page["next_cursor"]:
            return ids
        cursor = page["next_cursor"]


def test_a_full_disk_loses_no_acknowledged_event_and_recovers_without_a_restart(full_disk_store, small_disk, tmp_path):
    store_env, data_dir = full_disk_store
    # --min-free-disk would refuse events long before the 12 MiB fill up:
    # off, so this tests the real disk-full path.
    server = Server(data_dir, extra_env={"BOOBOO_MIN_FREE_DISK": "0", **store_env})
    server.log_path = tmp_path / "server.log"  # the log must not compete for the small disk
    server.start()
    try:
        project = create_project(server)
        sender = Sender(server, project.ingest_token)
        for _ in range(5):
            r = server.post_event(project.ingest_token, big_event(uuid.uuid4().hex))
            assert r.status == 200, r.body

        # Fill the disk but for 2 MiB, which ingest then fills itself: the
        # moment the disk runs out falls in the middle of steady ingest.
        slack = small_disk / "slack"
        slack.write_bytes(b"\0" * (2 << 20))
        ballast = small_disk / "ballast"
        fill(ballast)
        os.remove(slack)
        threads = [threading.Thread(target=sender.run) for _ in range(4)]
        for t in threads:
            t.start()
        # While full, a small write can still squeeze into space the
        # database file already has, so health and answers may flicker
        # between "ok" and "disk full"; never anything else.
        health_seen, envelope_refusal = set(), None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = http("GET", server.url + "/healthz")
            health_seen.add((health.status, health.json()["status"]))
            envelope_id, envelope = sentry_envelope_answer(server, project)
            assert envelope.status in (200, 503), envelope.body
            with sender.lock:
                if envelope.status == 200:
                    sender.acked.add(envelope_id)
                else:
                    envelope_refusal = envelope
                    sender.refused[envelope_id] = (503, {**envelope.headers, "body": envelope.body.decode()})
            if sender.refusals() >= 40 and (503, "disk full") in health_seen and envelope_refusal:
                break
            time.sleep(0.05)
        refused_while_full = sender.refusals()
        sender.stop.set()
        for t in threads:
            t.join()

        assert refused_while_full >= 40, f"the disk never filled: {len(sender.acked)} accepted\n{server.log()[-3000:]}"
        statuses = {status for status, _ in sender.refused.values()}
        assert statuses == {503}, f"refusals answered {statuses}: {list(sender.refused.values())[:3]}"
        for _, headers in sender.refused.values():
            assert int(headers["retry-after"]) > 0
            assert "disk is full" in json.loads(headers["body"])["detail"]
        assert (503, "disk full") in health_seen and health_seen <= {(200, "ok"), (503, "disk full")}, health_seen
        assert envelope_refusal, "no Sentry envelope was refused while the disk was full"
        assert "disk is full" in envelope_refusal.json()["detail"]
        assert envelope_refusal.headers.get("retry-after") and envelope_refusal.headers.get("x-sentry-rate-limits")
        assert "disk full" in server.log()

        # Space comes back: the same process stores again.
        os.remove(ballast)
        after = []
        for _ in range(20):
            event_id = uuid.uuid4().hex
            r = server.post_event(project.ingest_token, big_event(event_id))
            assert r.status == 200, f"after freeing space: {r.status} {r.body!r}\n{server.log()[-2000:]}"
            after.append(event_id)
        assert http("GET", server.url + "/healthz").status == 200
        created = create_project(server)  # a write outside ingest works too
        assert created.dsn

        ids = []
        for issue in project.wait_for_issues(1):
            stored = stored_ids(project, issue["id"])
            assert issue["count"] == len(stored), "an issue's count disagrees with its stored events"
            ids += stored
        assert len(ids) == len(set(ids)), "an event was stored twice"
        missing = (sender.acked | set(after)) - set(ids)
        assert not missing, f"{len(missing)} events answered 200 are not stored\n{server.log()[-3000:]}"
        half = set(sender.refused) & set(ids)
        assert not half, f"{len(half)} events answered 5xx were stored anyway"
        for event_id in list(sender.refused)[:20]:
            assert project.api(f"/events/{event_id}", expect=404)
        assert server.process.poll() is None, "the server died"
    finally:
        server.kill()


def sentry_envelope_answer(server: Server, project):
    project_id = int(project.sentry_dsn.rstrip("/").rsplit("/", 1)[1])
    event_id = uuid.uuid4().hex
    body = json.dumps({"event_id": event_id}).encode() + b"\n" + b'{"type":"event"}\n' + json.dumps(
        {"event_id": event_id, "message": "while the disk is full " + "x" * 6000, "level": "error"}
    ).encode()
    return event_id, http(
        "POST",
        f"{server.url}/api/{project_id}/envelope/",
        body,
        {"X-Sentry-Auth": f"Sentry sentry_key={project.ingest_token}, sentry_version=7"},
    )
