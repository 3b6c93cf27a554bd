"""Merging issues and deleting project keys through the real binary, its API
and its CLI, on SQLite and on PostgreSQL: a merge survives new events (later
events of either fingerprint land in the kept issue, also while ingest runs
during the merge), and a revoked or deleted key is refused at once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from conftest import Server, create_project, http
from payloads import event, frame


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """A server of the test's own on each backend (PostgreSQL skips when
    BOOBOO_TEST_DATABASE_URL is unset)."""
    env = {}
    if request.param == "postgres":
        env["BOOBOO_DATABASE_URL"] = request.getfixturevalue("pg_database_url")
    server = Server(tmp_path / "data", extra_env=env).start()
    yield server
    server.kill()


def of_kind(kind: str, **overrides) -> dict:
    """An event whose stack (and so issue) is `kind`'s own."""
    return event(frames=[frame(function=kind)], **overrides)


def one_line_error(result, *needles):
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def send_until(server, token, kinds, acked, stop, lock):
    n = 0
    while not stop.is_set():
        event_id = uuid.uuid4().hex
        n += 1
        try:
            r = server.post_event(token, of_kind(kinds[n % len(kinds)], event_id=event_id))
        except OSError:
            continue
        if r.status == 200:
            with lock:
                acked.add(event_id)


def test_merge_survives_new_events(backend):
    server = backend
    project = create_project(server)
    for kind, n in (("load", 3), ("save", 2), ("ship", 1)):
        for _ in range(n):
            assert server.post_event(project.ingest_token, of_kind(kind)).status == 200
    issues = {i["culprit"].split(" ")[0]: i for i in project.wait_for_issues(3)}
    load, save, ship = issues["load"]["id"], issues["save"]["id"], issues["ship"]["id"]

    merged = project.api(f"/issues/{load}/merge", "POST", {"from": [save]})
    assert merged["id"] == load and merged["count"] == 5, merged
    project.api(f"/issues/{save}", expect=404)
    assert len(project.events(load)) == 5

    # Later events of the merged fingerprint are counted on the kept issue,
    # also while several clients send both kinds during a second merge.
    acked, stop, lock = set(), threading.Event(), threading.Lock()
    threads = [
        threading.Thread(target=send_until, args=(server, project.ingest_token, ["load", "save", "ship"], acked, stop, lock))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    try:
        while len(acked) < 100:
            time.sleep(0.02)
        out = server.run_cli("issue", "merge", str(load), str(ship))
        assert f"into issue {load}" in out.stdout, out.stdout
        while len(acked) < 250:
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()

    [only] = project.issues()
    assert only["id"] == load
    assert only["count"] == 6 + len(acked), (only["count"], len(acked))
    ids = {e["id"] for e in project.events(load)}
    assert acked <= ids, f"{len(acked - ids)} acknowledged events are not in the merged issue"

    # Bad requests say what is wrong; nothing changes.
    auth = {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"}
    url = f"{server.url}/api/v1/issues/{load}/merge"
    r = http("POST", url, b'{"from": []}', auth)
    assert r.status == 422 and "at least one" in r.json()["detail"], r.body
    r = http("POST", url, b'{"from": [' + str(load).encode() + b"]}", auth)
    assert r.status == 422 and "itself" in r.json()["detail"], r.body
    r = http("POST", url, b'{"form": [1]}', auth)
    assert r.status == 422 and "`from`" in r.json()["detail"], r.body
    r = http("POST", url, b"not json", auth)
    assert r.status == 400, r.body
    r = http("POST", url, b'{"from": [999999999]}', auth)
    assert r.status == 404 and "999999999" in r.json()["detail"], r.body
    other = create_project(server, org=project.org)
    assert server.post_event(other.ingest_token, of_kind("elsewhere")).status == 200
    [elsewhere] = other.wait_for_issues(1)
    r = http("POST", url, f'{{"from": [{elsewhere["id"]}]}}'.encode(), auth)
    assert r.status == 409 and "another project" in r.json()["detail"], r.body
    one_line_error(server.run_cli("issue", "merge", str(load), str(load), check=False), "itself")
    one_line_error(server.run_cli("issue", "merge", str(load), "999999999", check=False), "999999999")
    one_line_error(server.run_cli("issue", "merge", "999999998", str(load), check=False), "no issue 999999998")
    assert project.issues()[0]["count"] == only["count"]


def test_keys_are_listed_revoked_and_deleted_through_the_api_and_the_cli(backend):
    server = backend
    project = create_project(server)
    path = f"{project.org}/{project.slug}"
    keys_url = f"/projects/{path}/keys"
    [first] = project.api(keys_url)["items"]
    assert first["dsn"] == project.dsn and first["revoked_at"] is None

    # Members read keys; changing them is for the organisation's admins.
    auth = {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"}
    r = http("POST", f"{server.url}/api/v1{keys_url}", b'{"label": "worker"}', auth)
    assert r.status == 403 and "admins" in r.json()["detail"], r.body
    server.run_cli("member", "add", project.org, project.email, "--role", "admin")
    added = project.api(keys_url, "POST", {"label": "worker"}, expect=201)
    token = added["dsn"].split("://", 1)[1].split("@", 1)[0]
    assert server.post_event(token, event()).status == 200

    revoked = project.api(f"{keys_url}/{added['id']}/revoke", "POST", expect=200)
    assert revoked["revoked_at"] is not None
    assert server.post_event(token, event()).status == 401, "a revoked key is refused at once"
    r = http("POST", f"{server.url}/api/v1{keys_url}/{added['id']}/revoke", None, auth)
    assert r.status == 409 and "already revoked" in r.json()["detail"], r.body
    http_delete = lambda key: http("DELETE", f"{server.url}/api/v1{keys_url}/{key}", None, auth)  # noqa: E731
    assert http_delete(added["id"]).status == 204
    assert [k["id"] for k in project.api(keys_url)["items"]] == [first["id"]]
    assert http_delete(added["id"]).status == 404
    assert http_delete("nope").status == 404

    # The CLI: list, add, revoke, delete (asks for --yes), each error one line.
    out = server.run_cli("key", "add", path, "--label", "cron").stdout.strip().splitlines()
    cron_id = int(out[0].split("key ", 1)[1].split(" ", 1)[0])
    cron_token = out[-1].split("://", 1)[1].split("@", 1)[0]
    assert server.post_event(cron_token, event()).status == 200
    listing = server.run_cli("key", "list", path).stdout
    assert f"{cron_id}\tlive\tcron\t" in listing, listing
    one_line_error(server.run_cli("key", "delete", path, str(cron_id), check=False), "--yes", "refused")
    assert server.post_event(cron_token, event()).status == 200, "without --yes nothing changes"
    server.run_cli("key", "revoke", path, str(cron_id))
    assert server.post_event(cron_token, event()).status == 401
    assert f"{cron_id}\trevoked\tcron\t" in server.run_cli("key", "list", path).stdout
    one_line_error(server.run_cli("key", "revoke", path, str(cron_id), check=False), "already revoked")
    assert "Deleted key" in server.run_cli("key", "delete", path, str(cron_id), "--yes").stdout
    one_line_error(server.run_cli("key", "delete", path, str(cron_id), "--yes", check=False), f"no key {cron_id}")
    one_line_error(server.run_cli("key", "revoke", path, "12345678", check=False), "no key 12345678")
    one_line_error(server.run_cli("key", "list", f"{project.org}/nope", check=False), "no project")
    one_line_error(server.run_cli("key", "list", "not-a-path", check=False), "ORG/PROJECT")

    # Deleting the live first key: the project's DSN stops working at once.
    assert http_delete(first["id"]).status == 204
    assert server.post_event(project.ingest_token, event()).status == 401
