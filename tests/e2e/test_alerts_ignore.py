"""Ignore conditions end to end: an issue ignored until N more events comes
back, and alerts "issue.unignored", with the event that ends the ignore; a
manual un-ignore alerts nothing; bad conditions are refused naming the
field."""

from __future__ import annotations

import json

from conftest import create_project, http
from test_alerts import add_rule, alert_server, crash, deliveries, receiver, settled, verified, wait_until  # noqa: F401


def patch_issue(project, issue_id: int, body) -> tuple[int, dict]:
    r = http(
        "PATCH",
        f"{project.server.url}/api/v1/issues/{issue_id}",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"},
    )
    return r.status, r.json()


def wait_for_events(project, issue_id: int, n: int) -> None:
    wait_until(lambda: len(project.events(issue_id)) >= n, f"{n} stored events", project.server)


def test_an_issue_ignored_until_3_more_events_alerts_unignored_once_on_the_3rd(alert_server, receiver):
    project = create_project(alert_server)
    _, secret = add_rule(alert_server, project, "--on", "unignored", "--webhook", receiver.url + "/unignored")
    assert alert_server.post_event(project.ingest_token, crash("ignored_for_a_while")).status == 200
    [issue] = project.wait_for_issues(1)

    status, ignored = patch_issue(project, issue["id"], {"status": "ignored", "ignore": {"count": 3}})
    assert status == 200 and ignored["status"] == "ignored", ignored
    assert ignored["ignore"] == {"until": None, "until_count": 4, "until_users": None}

    for n in (2, 3):
        assert alert_server.post_event(project.ingest_token, crash("ignored_for_a_while")).status == 200
        wait_for_events(project, issue["id"], n)
    # Two more events: still ignored, nothing written to the outbox (the
    # decision is taken in the event's own transaction).
    assert project.api(f"/issues/{issue['id']}")["status"] == "ignored"
    assert deliveries(project) == []

    assert alert_server.post_event(project.ingest_token, crash("ignored_for_a_while")).status == 200
    [delivery] = settled(project, 1)
    assert delivery["type"] == "issue.unignored" and delivery["status"] == "sent"
    back = project.api(f"/issues/{issue['id']}")
    assert back["status"] == "unresolved" and back["ignore"] is None
    [request] = receiver.at("/unignored")
    body = verified(request, secret)
    assert body["type"] == "issue.unignored" and body["issue"]["id"] == issue["id"]
    # The alert carries the event that ended the ignore: the newest.
    assert body["event"]["id"] == project.events(issue["id"])[0]["id"]

    # Later events of the unresolved issue alert nothing more.
    assert alert_server.post_event(project.ingest_token, crash("ignored_for_a_while")).status == 200
    wait_for_events(project, issue["id"], 5)
    assert len(deliveries(project)) == 1 and len(receiver.at("/unignored")) == 1


def test_a_manual_unignore_alerts_nothing_and_bad_conditions_are_refused_naming_the_field(alert_server, receiver):
    project = create_project(alert_server)
    add_rule(alert_server, project, "--on", "unignored", "--webhook", receiver.url + "/manual")
    assert alert_server.post_event(project.ingest_token, crash("reopened_by_hand")).status == 200
    [issue] = project.wait_for_issues(1)
    path = issue["id"]

    # Forever, then for an hour, each reopened by hand: no alert.
    status, forever = patch_issue(project, path, {"status": "ignored"})
    assert status == 200 and forever["ignore"] == {"until": None, "until_count": None, "until_users": None}
    assert patch_issue(project, path, {"status": "unresolved"})[0] == 200
    status, timed = patch_issue(project, path, {"status": "ignored", "ignore": {"minutes": 60}})
    assert status == 200 and timed["ignore"]["until"] is not None
    status, users = patch_issue(project, path, {"status": "ignored", "ignore": {"users": 10}})
    assert status == 200 and users["ignore"] == {"until": None, "until_count": None, "until_users": 10}
    status, reopened = patch_issue(project, path, {"status": "unresolved"})
    assert status == 200 and reopened["ignore"] is None
    assert deliveries(project) == []

    for body, field in [
        ({"status": "ignored", "ignore": {"minutes": 0}}, "ignore.minutes"),
        ({"status": "ignored", "ignore": {"minutes": 10_000_000}}, "ignore.minutes"),
        ({"status": "ignored", "ignore": {"count": "lots"}}, "ignore.count"),
        ({"status": "ignored", "ignore": {"count": 2.5}}, "ignore.count"),
        ({"status": "ignored", "ignore": {"users": -1}}, "ignore.users"),
        ({"status": "ignored", "ignore": {"weeks": 1}}, "ignore.weeks"),
        ({"status": "ignored", "ignore": {"minutes": 60, "count": 3}}, "ignore"),
        ({"status": "ignored", "ignore": 60}, "ignore"),
        ({"status": "resolved", "ignore": {"count": 3}}, "ignore"),
    ]:
        status, answer = patch_issue(project, path, body)
        assert status == 422 and answer["detail"].startswith(f"field `{field}`"), (body, answer)
    assert project.api(f"/issues/{path}")["status"] == "unresolved"
