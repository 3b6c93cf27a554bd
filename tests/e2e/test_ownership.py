"""Ownership and history end to end: the real binary, its CLI and API, and
a real webhook receiver on loopback. An issue is assigned, commented on,
resolved, regresses and alerts; its activity lists every change newest
first, and still does after a restart."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import Server, create_project, free_port
from payloads import event, frame


class Receiver:
    """A loopback HTTP server that answers 200 and counts requests."""

    def __init__(self):
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.count += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"

    def stop(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def wait_until(check, what: str, server: Server, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{server.log()[-3000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_change_to_an_issue_is_in_its_activity_across_a_restart(tmp_path, receiver, backend, request):
    env = {"BOOBOO_OUTBOUND_ALLOW": "127.0.0.1"}
    if backend == "postgres":
        env["BOOBOO_DATABASE_URL"] = request.getfixturevalue("pg_database_url")
    server = Server(tmp_path / "data", extra_env=env).start()
    try:
        project = create_project(server)
        # A second member to assign to, with a token of her own.
        server.run_cli("user", "create", "--email", "dana@example.com", input="correct horse battery\n")
        server.run_cli("member", "add", project.org, "dana@example.com")
        project.api(
            f"/projects/{project.org}/{project.slug}/alert-rules",
            "POST",
            {"name": "new issues", "trigger": "new-issue", "channels": [{"kind": "webhook", "url": receiver.url}]},
            expect=201,
        )
        crash = event(frames=[frame(function="checkout")])
        assert server.post_event(project.ingest_token, crash).status == 200
        issue_id = project.wait_for_issues(1)[0]["id"]
        path = f"/issues/{issue_id}"
        # The delivery worker sends the alert and the store records it.
        wait_until(lambda: receiver.count >= 1, "the alert", server)
        wait_until(
            lambda: any(a["kind"] == "alert_sent" for a in project.api(f"{path}/activity")["items"]),
            "the alert in the activity",
            server,
        )

        assert project.api(path, "PATCH", {"assignee": "dana@example.com"})["assignee"] == "dana@example.com"
        refused = project.api(path, "PATCH", {"assignee": "stranger@example.com"}, expect=400)
        assert "stranger@example.com is not a member" in refused["detail"]
        comment = project.api(f"{path}/comments", "POST", {"text": "Dana is on it <b>now</b>"}, expect=201)
        assert comment["actor"] == project.email and comment["detail"]["text"] == "Dana is on it <b>now</b>"
        assert "at most 10000" in project.api(f"{path}/comments", "POST", {"text": "x" * 10_001}, expect=400)["detail"]
        project.api(path, "PATCH", {"status": "resolved"})
        assert server.post_event(project.ingest_token, event(frames=[frame(function="checkout")], release="2.0")).status == 200
        wait_until(lambda: project.api(path)["is_regression"], "the regression", server)

        def activity():
            items = project.api(f"{path}/activity")["items"]
            return [(a["kind"], a["actor"]) for a in items], items

        seen, items = activity()
        assert seen == [
            ("regression", "booboo"),
            ("status", project.email),
            ("comment", project.email),
            ("assignment", project.email),
            ("alert_sent", "booboo"),
        ], seen
        assert items[0]["detail"]["release"] == "2.0"
        assert items[-1]["detail"]["channel"] == "webhook" and items[-1]["detail"]["rule"] == "new issues"
        assert [c["id"] for c in project.api(f"{path}/comments")["items"]] == [comment["id"]]

        # Committed history survives a restart.
        assert server.stop() == 0
        server.start()
        assert activity() == (seen, items)
        assert project.api(path)["assignee"] == "dana@example.com"
    finally:
        server.kill()
