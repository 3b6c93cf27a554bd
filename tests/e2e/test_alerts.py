"""Alerts end to end: the real binary, its CLI and API, and a real HTTP
receiver on loopback. Signatures are checked with the Standard Webhooks
reference library (`standardwebhooks` from PyPI), not with our own code.

Waiting is by polling what the server reports (the deliveries API) with
generous deadlines; no assertion depends on how fast anything is."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from conftest import Server, create_project, free_port, http, psql  # noqa: F401
from payloads import event, frame

# Loopback receivers need allowing; tests shorten the first retry (a
# documented setting) so that three failures take under a few seconds.
ALERT_ENV = {"BOOBOO_OUTBOUND_ALLOW": "127.0.0.1", "BOOBOO_ALERT_RETRY_FIRST_MS": "200"}


class Receiver:
    """An HTTP server on loopback that records every request and answers
    each path with the statuses it is told, then 200."""

    def __init__(self, port: int | None = None):
        self.requests: list[dict] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    planned = receiver.script.get(self.path, [])
                    status = planned.pop(0) if planned else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"receiver is having a bad day")

            def log_message(self, *args):
                pass

        self.port = port or free_port()
        self.http = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def stop(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def alert_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("alerts-data"), extra_env=ALERT_ENV).start()
    yield s
    s.stop()


def add_rule(server: Server, project, *args: str, env: dict | None = None) -> tuple[int, str | None]:
    """`booboo alert add`; returns the rule id (printed last) and the
    generated secret (printed on the line after its label), if any."""
    lines = server.run_cli("alert", "add", f"{project.org}/{project.slug}", *args, env=env).stdout.strip().splitlines()
    secret = next((lines[i + 1] for i, line in enumerate(lines) if line.startswith("Webhook signing secret")), None)
    return int(lines[-1]), secret


def deliveries(project) -> list[dict]:
    return project.api(f"/projects/{project.org}/{project.slug}/alert-deliveries?limit=200")["items"]


def wait_until(check, what: str, server: Server, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{server.log()[-3000:]}")
        time.sleep(0.1)


def settled(project, n: int):
    """Waits until the project has `n` deliveries and none is pending."""
    def check():
        items = deliveries(project)
        return items if len(items) >= n and all(d["status"] != "pending" for d in items) else None
    return wait_until(check, f"{n} settled deliveries", project.server)


def verified(request: dict, secret: str) -> dict:
    """The body, after the Standard Webhooks library verified its signature."""
    return Webhook(secret).verify(request["body"], request["headers"])


def crash(function: str, **overrides) -> dict:
    return event(frames=[frame(function=function)], **overrides)


def test_new_issue_regression_and_frequency_each_deliver_once_per_throttle(alert_server, receiver):
    project = create_project(alert_server)
    _, new_secret = add_rule(alert_server, project, "--on", "new-issue", "--webhook", receiver.url + "/new")
    _, regression_secret = add_rule(alert_server, project, "--on", "regression", "--webhook", receiver.url + "/regression")
    _, frequency_secret = add_rule(
        alert_server, project, "--on", "frequency", "--count", "3", "--window", "10m", "--webhook", receiver.url + "/frequency"
    )
    assert new_secret and new_secret.startswith("whsec_")

    assert alert_server.post_event(project.ingest_token, crash("checkout")).status == 200
    [first] = settled(project, 1)
    assert first["type"] == "issue.new" and first["status"] == "sent" and first["attempts"] == 1
    [new] = receiver.at("/new")
    body = verified(new, new_secret)
    issue_id = project.issues()[0]["id"]
    assert body["type"] == "issue.new"
    assert body["issue"]["id"] == issue_id and body["issue"]["title"].startswith("ZeroDivisionError")
    assert body["issue"]["url"] == f"{alert_server.url}/issues/{issue_id}"
    assert body["project"]["slug"] == project.slug and body["event"]["environment"] == "production"
    assert body["rule"]["trigger"] == "new-issue"

    # Events 2 and 3 reach the frequency rule's count once; 4 and 5 are
    # within its throttle (one window by default).
    for _ in range(4):
        assert alert_server.post_event(project.ingest_token, crash("checkout")).status == 200
    settled(project, 2)
    project.wait_for_issues(1)
    assert len(project.events(issue_id)) == 5
    settled(project, 2)
    [frequency] = receiver.at("/frequency")
    assert verified(frequency, frequency_secret)["type"] == "issue.frequency"

    # A manual reopen is no regression; a new event on a resolved issue is one.
    project.api(f"/issues/{issue_id}", "PATCH", {"status": "resolved"})
    project.api(f"/issues/{issue_id}", "PATCH", {"status": "unresolved"})
    project.api(f"/issues/{issue_id}", "PATCH", {"status": "resolved"})
    assert alert_server.post_event(project.ingest_token, crash("checkout")).status == 200
    settled(project, 3)
    [regression] = receiver.at("/regression")
    assert verified(regression, regression_secret)["type"] == "issue.regression"

    # Everything has settled: each alert reached its receiver exactly once.
    assert len(deliveries(project)) == 3
    assert [len(receiver.at(p)) for p in ("/new", "/frequency", "/regression")] == [1, 1, 1]
    # The issue's alerts are what the deliveries say.
    assert {d["type"] for d in deliveries(project)} == {"issue.new", "issue.frequency", "issue.regression"}


def test_a_receiver_failing_three_times_gets_the_alert_on_the_fourth_try_with_the_same_id(alert_server, receiver):
    project = create_project(alert_server)
    receiver.script["/flaky"] = [500, 500, 500]
    rule_id, secret = add_rule(alert_server, project, "--on", "new-issue", "--webhook", receiver.url + "/flaky")
    assert alert_server.post_event(project.ingest_token, crash("flaky")).status == 200
    [delivery] = settled(project, 1)
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("sent", 4, None)
    attempts = receiver.at("/flaky")
    assert len(attempts) == 4
    ids = {a["headers"]["webhook-id"] for a in attempts}
    assert ids == {delivery["webhook_id"]}, ids
    # Every attempt is signed afresh, and each signature verifies.
    for attempt in attempts:
        assert verified(attempt, secret)["type"] == "issue.new"
    # The success cleared the channel's last failure.
    rule = project.api(f"/alert-rules/{rule_id}")
    assert rule["channels"][0]["last_failure"] is None
    metrics = http("GET", alert_server.url + "/metrics").body.decode()
    assert 'booboo_alert_deliveries_retried_total{channel="webhook"}' in metrics


def test_a_failing_channel_shows_its_last_failure_until_a_success_clears_it(alert_server, receiver):
    project = create_project(alert_server)
    receiver.script["/down"] = [503]
    rule_id, secret = add_rule(alert_server, project, "--on", "new-issue", "--webhook", receiver.url + "/down")
    result = alert_server.run_cli("alert", "test", str(rule_id), check=False)
    assert result.returncode != 0 and "503" in result.stdout, result.stdout
    failure = project.api(f"/alert-rules/{rule_id}")["channels"][0]["last_failure"]
    assert failure["status"] == 503 and "bad day" in failure["detail"]
    listed = alert_server.run_cli("alert", "list", f"{project.org}/{project.slug}").stdout
    assert "last failure" in listed and "503" in listed
    answer = project.api(f"/alert-rules/{rule_id}/test", "POST")
    assert answer["ok"] is True
    assert project.api(f"/alert-rules/{rule_id}")["channels"][0]["last_failure"] is None
    test_body = verified(receiver.at("/down")[-1], secret)
    assert test_body["type"] == "test" and test_body["issue"] is None


def test_an_event_acknowledged_just_before_sigkill_still_alerts_after_restart(tmp_path):
    port = free_port()
    server = Server(tmp_path / "data", extra_env=ALERT_ENV).start()
    try:
        project = create_project(server)
        # Nothing listens on the receiver's port yet: any attempt before the
        # kill fails, so the alert can only arrive from the stored outbox.
        add_rule(server, project, "--on", "new-issue", "--webhook", f"http://127.0.0.1:{port}/late")
        assert server.post_event(project.ingest_token, crash("killed")).status == 200
        server.kill()
        receiver = Receiver(port)
        try:
            server.start()
            wait_until(lambda: receiver.at("/late"), "the alert after the restart", server)
            [delivery] = settled(project, 1)
            assert delivery["status"] == "sent"
            assert {r["headers"]["webhook-id"] for r in receiver.at("/late")} == {delivery["webhook_id"]}
        finally:
            receiver.stop()
    finally:
        server.stop()


def test_refused_and_invalid_targets_and_fields_are_named_and_nothing_is_created(alert_server, receiver):
    project = create_project(alert_server)
    no_allow = {"BOOBOO_OUTBOUND_ALLOW": ""}
    path = f"{project.org}/{project.slug}"
    for url, words in [
        (receiver.url + "/x", ["loopback", "--outbound-allow"]),
        ("http://169.254.169.254/latest/meta-data/", ["link-local", "metadata"]),
        ("http://10.0.0.7/hook", ["private"]),
        ("http://[::1]:9/hook", ["loopback"]),
    ]:
        result = alert_server.run_cli("alert", "add", path, "--on", "new-issue", "--webhook", url, check=False, env=no_allow)
        assert result.returncode != 0, url
        assert all(w in result.stderr for w in words), result.stderr
    for args, field in [
        (["--on", "sometimes", "--slack", "https://hooks.slack.com/x"], "--on"),
        (["--on", "frequency", "--count", "5", "--window", "2d", "--slack", "https://hooks.slack.com/x"], "--window"),
        (["--on", "new-issue", "--slack", "not a url"], "--channel URL"),
        (["--on", "new-issue"], "--channels"),
        (["--on", "new-issue", "--email", "ops@example.com"], "--smtp-url"),
    ]:
        result = alert_server.run_cli("alert", "add", path, *args, check=False, env=no_allow)
        assert result.returncode != 0 and field in result.stderr, (args, result.stderr)
    # The API refuses the same way, naming the field, with 422.
    r = http(
        "POST",
        f"{alert_server.url}/api/v1/projects/{path}/alert-rules",
        json.dumps({"trigger": "new-issue", "channels": [{"kind": "discord", "url": "http://169.254.169.254/"}]}).encode(),
        {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"},
    )
    assert r.status == 422 and r.json()["detail"].startswith("channels[0].url"), r.body
    r = http(
        "POST",
        f"{alert_server.url}/api/v1/projects/{path}/alert-rules",
        json.dumps({"trigger": "users", "count": 3, "window": "30s", "channels": [{"kind": "slack", "url": "https://hooks.slack.com/x"}]}).encode(),
        {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"},
    )
    assert r.status == 422 and r.json()["detail"].startswith("window"), r.body
    assert project.api(f"/projects/{path}/alert-rules")["items"] == []
    assert "has no alert rules" in alert_server.run_cli("alert", "list", path).stdout


def test_rules_are_managed_through_the_api_and_changes_apply_at_once(alert_server, receiver):
    project = create_project(alert_server)
    path = f"/projects/{project.org}/{project.slug}/alert-rules"
    created = project.api(
        path,
        "POST",
        {"trigger": "new-issue", "environments": ["staging"], "channels": [{"kind": "webhook", "url": receiver.url + "/api"}]},
        expect=201,
    )
    secret = created["channels"][0]["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in project.api(f"/alert-rules/{created['id']}")["channels"][0]
    # Production events do not match the staging filter.
    assert alert_server.post_event(project.ingest_token, crash("prod_only")).status == 200
    project.wait_for_issues(1)
    # The running server applies a changed filter to the next event.
    changed = project.api(f"/alert-rules/{created['id']}", "PATCH", {"environments": ["production"], "level": "error"})
    assert changed["environments"] == ["production"] and changed["channels"][0]["id"] == created["channels"][0]["id"]
    assert alert_server.post_event(project.ingest_token, crash("now_matching")).status == 200
    [delivery] = settled(project, 1)
    assert delivery["rule"]["id"] == created["id"] and delivery["type"] == "issue.new"
    assert "now_matching" in verified(receiver.at("/api")[0], secret)["issue"]["culprit"]
    gone = http("DELETE", f"{alert_server.url}/api/v1/alert-rules/{created['id']}", headers={"Authorization": f"Bearer {project.token}"})
    assert gone.status == 204
    project.api(f"/alert-rules/{created['id']}", expect=404)
    # Another organisation's user cannot see or change the rule.
    other = create_project(alert_server)
    r = http("GET", f"{alert_server.url}/api/v1/alert-rules/{changed['id']}", headers={"Authorization": f"Bearer {other.token}"})
    assert r.status == 404


def test_slack_and_discord_bodies_stay_within_their_documented_limits(alert_server, receiver):
    project = create_project(alert_server)
    add_rule(alert_server, project, "--on", "new-issue", "--slack", receiver.url + "/slack", "--discord", receiver.url + "/discord")
    hostile = "@everyone <!channel> <@123> " + "x" * 9000
    body = crash("a" * 300, message=hostile, exceptions=[{"type": "Boom" * 100, "value": hostile, "stacktrace": [frame()], "chain_type": None}],
                 exception_type="Boom" * 100, environment="e" * 150, release="r" * 150)
    assert alert_server.post_event(project.ingest_token, body).status == 200
    settled(project, 2)
    [slack] = receiver.at("/slack")
    [discord] = receiver.at("/discord")

    s = json.loads(slack["body"])
    assert isinstance(s["text"], str) and 0 < len(s["text"]) <= 3000
    assert "<!channel>" not in json.dumps(s) and "<@123>" not in json.dumps(s)
    assert len(s["blocks"]) <= 50
    for block in s["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))

    d = json.loads(discord["body"])
    assert d["allowed_mentions"] == {"parse": []}
    assert len(d["content"]) <= 2000
    assert len(d["embeds"]) <= 10
    for embed in d["embeds"]:
        assert len(embed.get("title", "")) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed.get("fields", []))
        assert len(embed.get("footer", {}).get("text", "")) <= 2048
        total = len(embed.get("title", "")) + len(embed.get("description", "")) + len(embed.get("footer", {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
        assert total <= 6000


def test_two_nodes_on_postgresql_deliver_each_alert_once(tmp_path, pg_database_url, receiver):
    env = {"BOOBOO_DATABASE_URL": pg_database_url, **ALERT_ENV}
    a = Server(tmp_path / "node-a", extra_env=env).start()
    b = Server(tmp_path / "node-b", extra_env=env).start()
    try:
        project = create_project(a)
        _, secret = add_rule(a, project, "--on", "new-issue", "--webhook", receiver.url + "/multi")
        issues = 30
        for i in range(issues):
            node = a if i % 2 == 0 else b
            assert node.post_event(project.ingest_token, crash(f"fn_{i}_{uuid.uuid4().hex[:6]}")).status == 200
        items = settled(project, issues)
        assert len(items) == issues and all(d["status"] == "sent" for d in items)
        got = receiver.at("/multi")
        ids = [r["headers"]["webhook-id"] for r in got]
        assert len(ids) == issues and len(set(ids)) == issues, f"{len(ids)} requests, {len(set(ids))} distinct"
        assert all(verified(r, secret)["type"] == "issue.new" for r in got)
    finally:
        for node in (a, b):
            node.stop()
