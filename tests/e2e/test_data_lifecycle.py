"""Backup, restore, export and deletion through the real binary, its API
and its CLI:
a backup taken during steady ingest restores to a database that passes
`PRAGMA integrity_check` and holds every event acknowledged before it began;
bad paths, unwritable and full destinations and a running server are refused
with one clear line, and a failing backup never harms the live database
(SQLite); a project exports as JSON Lines, cut at one moment, and issues and
projects are deleted, through the API and the CLI alike (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from conftest import Server, create_project, http
from payloads import event


def send_until(server, token, acked, stop, lock):
    while not stop.is_set():
        event_id = uuid.uuid4().hex
        try:
            r = server.post_event(token, event(event_id=event_id, message=f"boom {len(acked) % 7}"))
        except OSError:
            continue
        if r.status == 200:
            with lock:
                acked.add(event_id)


def all_event_ids(project) -> set[str]:
    ids = set()
    for issue in project.issues():
        cursor = ""
        while True:
            page = project.api(f"/issues/{issue['id']}/events?limit=500&cursor={cursor}")
            ids |= {e["id"] for e in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                break
    return ids


def one_line_error(result, *needles):
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_backup_during_ingest_restores_everything_acknowledged_before_it(fresh_server, tmp_path):
    server = fresh_server.start()
    project = create_project(server)
    acked, stop, lock = set(), threading.Event(), threading.Lock()
    threads = [threading.Thread(target=send_until, args=(server, project.ingest_token, acked, stop, lock)) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        while len(acked) < 200:
            time.sleep(0.05)
        with lock:
            before = set(acked)
        backup = tmp_path / "backup.db"
        out = server.run_cli("backup", str(backup))
        assert "Backed up" in out.stdout
        time.sleep(0.3)  # ingest goes on after the backup too
    finally:
        stop.set()
        for t in threads:
            t.join()

    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not (tmp_path / "backup.db.partial").exists()

    # Bad input, each one clear line, nothing touched.
    one_line_error(server.run_cli("backup", str(backup), check=False), "already exists")
    one_line_error(server.run_cli("backup", str(tmp_path / "no" / "such" / "x.db"), check=False), "does not exist")
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    one_line_error(server.run_cli("restore", str(not_a_db), check=False), "not restoring")
    one_line_error(server.run_cli("restore", str(tmp_path / "missing.db"), check=False), "does not exist")
    # A running server's database is never swapped under it.
    one_line_error(server.run_cli("restore", str(backup), check=False), "stop it first")
    assert server.post_event(project.ingest_token, event()).status == 200

    # Restored into a new data directory, it holds every event acknowledged
    # before the backup began.
    restored_dir = tmp_path / "restored"
    out = server.run_cli("restore", str(backup), env={"BOOBOO_DATA_DIR": str(restored_dir)})
    assert "Restored" in out.stdout
    restored = Server(restored_dir).start()
    try:
        project.server = restored
        ids = all_event_ids(project)
        missing = before - ids
        assert not missing, f"{len(missing)} events acknowledged before the backup are missing"
        assert restored.post_event(project.ingest_token, event()).status == 200
    finally:
        restored.kill()

    # Restored over a stopped server's database, the previous one is kept.
    server.stop()
    out = server.run_cli("restore", str(backup))
    assert "previous database is kept at" in out.stdout, out.stdout
    kept = out.stdout.split("kept at ", 1)[1].split(" (", 1)[0]
    with sqlite3.connect(f"file:{kept}?mode=ro", uri=True) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= len(acked)
    server.start()
    project.server = server
    assert before <= all_event_ids(project)


@pytest.fixture(params=["sqlite", "postgres"])
def any_backend(request, tmp_path):
    """The shared SQLite server, or one on a PostgreSQL schema of the test's
    own (skipped when BOOBOO_TEST_DATABASE_URL is unset)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("server")
        return
    url = request.getfixturevalue("pg_database_url")
    server = Server(tmp_path / "pg-data", extra_env={"BOOBOO_DATABASE_URL": url}).start()
    yield server
    server.kill()


def test_a_project_exports_as_json_lines_through_the_api_and_the_cli(any_backend):
    server = any_backend
    project = create_project(server)
    for i in range(3):
        assert server.post_event(project.ingest_token, event(message=f"first kind {i}")).status == 200
    for i in range(2):
        assert server.post_event(project.ingest_token, event(exception_type="KeyError", message="'sku'",
                                                          exceptions=[{"type": "KeyError", "value": "'sku'", "stacktrace": [], "chain_type": None}])).status == 200
    project.wait_for_issues(2)

    r = http("GET", f"{server.url}/api/v1/projects/{project.org}/{project.slug}/export", headers={"Authorization": f"Bearer {project.token}"})
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.body.decode().splitlines()]
    assert lines[0]["type"] == "project" and lines[0]["slug"] == project.slug
    assert lines[-1] == {"type": "end", "issues": 2, "events": 5}
    issues = [line for line in lines if line["type"] == "issue"]
    events = [line for line in lines if line["type"] == "event"]
    assert sorted(i["count"] for i in issues) == [2, 3]
    assert {e["issue_id"] for e in events} == {i["id"] for i in issues}
    assert all(e["exceptions"] for e in events)

    cli = server.run_cli("export", f"{project.org}/{project.slug}")
    cli_lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [line["type"] for line in cli_lines] == [line["type"] for line in lines]
    assert [line.get("id") for line in cli_lines[1:]] == [line.get("id") for line in lines[1:]]

    one_line_error(server.run_cli("export", f"{project.org}/nope", check=False), "no project")
    other = create_project(server)
    r = http("GET", f"{server.url}/api/v1/projects/{other.org}/{other.slug}/export", headers={"Authorization": f"Bearer {project.token}"})
    assert r.status == 404


def test_issues_and_projects_are_deleted_through_the_api_and_the_cli(any_backend):
    server = any_backend
    project = create_project(server)
    for _ in range(3):
        assert server.post_event(project.ingest_token, event(message="to be deleted")).status == 200
    [issue] = project.wait_for_issues(1)
    event_id = project.events(issue["id"])[0]["id"]
    auth = {"Authorization": f"Bearer {project.token}"}

    # A member who is not an admin of the organisation may not.
    r = http("DELETE", f"{server.url}/api/v1/issues/{issue['id']}", headers=auth)
    assert r.status == 403 and "admin" in r.json()["detail"], r.body
    server.run_cli("member", "add", project.org, project.email, "--role", "admin")
    r = http("DELETE", f"{server.url}/api/v1/issues/{issue['id']}", headers=auth)
    assert r.status == 204, r.body
    project.api(f"/issues/{issue['id']}", expect=404)
    project.api(f"/events/{event_id}", expect=404)
    assert http("DELETE", f"{server.url}/api/v1/issues/{issue['id']}", headers=auth).status == 404
    # The same error again is a new issue.
    assert server.post_event(project.ingest_token, event(message="to be deleted")).status == 200
    [again] = project.wait_for_issues(1)
    assert again["count"] == 1, again

    r = http("DELETE", f"{server.url}/api/v1/projects/{project.org}/{project.slug}", headers=auth)
    assert r.status == 204, r.body
    assert server.post_event(project.ingest_token, event()).status == 401, "its key stops working"
    project.api(f"/projects/{project.org}/{project.slug}/issues", expect=404)

    other = create_project(server)
    one_line_error(server.run_cli("project", "delete", f"{other.org}/{other.slug}", check=False), "--yes")
    assert server.post_event(other.ingest_token, event()).status == 200, "without --yes nothing changes"
    out = server.run_cli("project", "delete", f"{other.org}/{other.slug}", "--yes")
    assert "Deleted" in out.stdout
    assert server.post_event(other.ingest_token, event()).status == 401
    one_line_error(server.run_cli("project", "delete", f"{other.org}/{other.slug}", "--yes", check=False), "no project")


def tmpfs(path, *options):
    """Mounts a small tmpfs at `path` (root only: skips otherwise)."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed: {result.stderr.strip()}")
    return path


def test_a_failing_backup_never_harms_the_live_database(fresh_server, tmp_path):
    server = fresh_server.start()
    project = create_project(server)
    acked, stop, lock = set(), threading.Event(), threading.Lock()
    threads = [threading.Thread(target=send_until, args=(server, project.ingest_token, acked, stop, lock)) for _ in range(2)]
    for t in threads:
        t.start()
    mounts = []
    try:
        while len(acked) < 300:
            time.sleep(0.05)
        # Unwritable: a read-only file system (root ignores file modes).
        read_only = tmpfs(tmp_path / "read-only", "ro", "size=1m")
        mounts.append(read_only)
        one_line_error(server.run_cli("backup", str(read_only / "b.db"), check=False), "backup failed", "live database is untouched")
        # Full: the copy runs out of space half-way.
        full = tmpfs(tmp_path / "full", "size=64k")
        mounts.append(full)
        one_line_error(server.run_cli("backup", str(full / "b.db"), check=False), "backup failed", "live database is untouched")
        assert list(full.iterdir()) == [], "a failed backup leaves nothing behind"
        # A destination in a file rather than a folder.
        not_a_folder = tmp_path / "notes.txt"
        not_a_folder.write_text("hello")
        one_line_error(server.run_cli("backup", str(not_a_folder / "b.db"), check=False), "does not exist")
        with lock:
            before = set(acked)
        time.sleep(0.3)  # ingest goes on after the failed backups
    finally:
        stop.set()
        for t in threads:
            t.join()
        for mount in mounts:
            subprocess.run(["umount", "-l", str(mount)], check=False)

    assert len(acked) > len(before), "ingest kept going"
    live = server.data_dir / "booboo.db"
    with sqlite3.connect(f"file:{live}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert acked <= all_event_ids(project), "every acknowledged event is still stored"
    assert server.post_event(project.ingest_token, event()).status == 200
    backup = tmp_path / "after.db"
    assert "Backed up" in server.run_cli("backup", str(backup)).stdout, "the next backup works"


def test_backup_on_postgresql_points_at_pg_dump(tmp_path, pg_database_url):
    server = Server(tmp_path / "data", extra_env={"BOOBOO_DATABASE_URL": pg_database_url}).start()
    try:
        result = server.run_cli("backup", str(tmp_path / "b.db"), check=False)
        assert result.returncode != 0
        # The last line is booboo's; a loaded database may add a slow-query warning before it.
        last = result.stderr.strip().splitlines()[-1]
        assert "pg_dump" in last and "failed" not in last, result.stderr
        assert not (tmp_path / "b.db").exists()
    finally:
        server.kill()
