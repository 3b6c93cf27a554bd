"""Backup, restore, export and deletion through the real binary, its API
and its CLI (SQLite):
a backup taken during steady ingest restores to an intact database holding
every event acknowledged before it began; bad paths and a running server are
refused with one clear line; a project exports as JSON Lines, cut at one
moment, through the API and the CLI alike."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

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


def test_a_project_exports_as_json_lines_through_the_api_and_the_cli(server, project):
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


def test_issues_and_projects_are_deleted_through_the_api_and_the_cli(server):
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
