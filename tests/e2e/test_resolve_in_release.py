"""Resolving in a release end to end: the real binary, our Python SDK in
processes of its own sending the same crash from several releases, the API
resolving the issue in the next release, in a release not seen yet and now,
and a loopback receiver for the "regression" alert, which must arrive
exactly when an event reopens the issue. On SQLite, and on PostgreSQL when
BOOBOO_TEST_DATABASE_URL is set."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from conftest import Server, create_project, http, run_script
from test_alerts import ALERT_ENV, add_rule, deliveries, receiver, settled, wait_until  # noqa: F401

PYTHON = Path(sys.executable)

# For each release in RELEASES: start the SDK with it, raise the same error
# in the same function, and flush before the next.
APP = textwrap.dedent(
    """
    import json, os
    import booboo

    def charge(basket):
        raise RuntimeError("card declined")

    for release in json.loads(os.environ["RELEASES"]):
        booboo.init(os.environ["DSN"], environment="production", release=release)
        try:
            charge({"apples": 2})
        except RuntimeError:
            booboo.capture_exception()
        assert booboo.flush(20), "not delivered"
    """
)


def send_from(project, *releases: str) -> dict:
    """Sends one crash per release, in order; returns the issue once every
    event is stored."""
    before = sum(i["count"] for i in project.issues())
    result = run_script(PYTHON, APP, {"DSN": project.dsn, "RELEASES": json.dumps(releases)})
    assert result.returncode == 0, result.stderr
    wanted = before + len(releases)
    wait_until(lambda: sum(i["count"] for i in project.issues()) >= wanted, f"{wanted} events", project.server)
    [issue] = project.issues()
    return issue


def patch(project, issue_id: int, body: dict) -> tuple[int, dict]:
    r = http(
        "PATCH",
        f"{project.server.url}/api/v1/issues/{issue_id}",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"},
    )
    return r.status, r.json()


def regressions(project) -> list[dict]:
    return [d for d in deliveries(project) if d["type"] == "issue.regression"]


def resolve_and_regress(server: Server, receiver) -> None:
    project = create_project(server)
    add_rule(server, project, "--on", "regression", "--webhook", receiver.url + "/regression")
    issue = send_from(project, "1.3.8", "1.3.9")
    assert issue["releases"] and set(issue["releases"]) == {"1.3.8", "1.3.9"}

    # In the next release: old deployments keep crashing, quietly.
    status, resolved = patch(project, issue["id"], {"status": "resolved", "resolved_in": "next_release"})
    assert status == 200, resolved
    assert resolved["resolved_in"] == {"kind": "next_release", "release": "1.3.9"}
    issue = send_from(project, "1.3.8", "1.3.9", "")
    assert (issue["status"], issue["is_regression"], issue["count"]) == ("resolved", False, 5)
    assert regressions(project) == []

    # The first crash from 1.3.10 (newer by semver, not by text) regresses it.
    issue = send_from(project, "1.3.10")
    assert (issue["status"], issue["is_regression"], issue["resolved_in"]) == ("unresolved", True, None)
    [alert] = [d for d in settled(project, 1) if d["type"] == "issue.regression"]
    assert alert["status"] == "sent" and alert["issue"]["id"] == issue["id"]
    assert len(receiver.at("/regression")) == 1

    # In a release not seen yet: its pre-release and older ones stay quiet,
    # the release itself regresses it.
    status, resolved = patch(project, issue["id"], {"status": "resolved", "resolved_in": "2.0.0"})
    assert status == 200 and resolved["resolved_in"] == {"kind": "release", "release": "2.0.0"}, resolved
    issue = send_from(project, "1.3.10", "2.0.0-rc.1")
    assert issue["status"] == "resolved" and len(regressions(project)) == 1
    issue = send_from(project, "2.0.0")
    assert issue["status"] == "unresolved" and issue["is_regression"]
    wait_until(lambda: len(receiver.at("/regression")) == 2, "the second regression alert", server)

    # Resolved now: the next crash, of any release, regresses it.
    status, resolved = patch(project, issue["id"], {"status": "resolved"})
    assert status == 200 and resolved["resolved_in"] is None
    issue = send_from(project, "1.3.8")
    assert issue["status"] == "unresolved" and issue["is_regression"]
    wait_until(lambda: len(receiver.at("/regression")) == 3, "the third regression alert", server)
    assert len(regressions(project)) == 3

    # What cannot be resolved in is refused, naming the field.
    status, answer = patch(project, issue["id"], {"status": "resolved", "resolved_in": ""})
    assert status == 422 and "resolved_in" in answer["detail"], answer


def test_an_issue_resolved_in_a_release_regresses_only_from_newer_releases(tmp_path, receiver):
    server = Server(tmp_path / "data", extra_env=ALERT_ENV).start()
    try:
        resolve_and_regress(server, receiver)
    finally:
        server.stop()


def test_the_same_on_postgresql(tmp_path, pg_database_url, receiver):
    server = Server(tmp_path / "data", extra_env={"BOOBOO_DATABASE_URL": pg_database_url, **ALERT_ENV}).start()
    try:
        resolve_and_regress(server, receiver)
    finally:
        server.stop()
