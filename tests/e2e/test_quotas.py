"""Quotas that keep counting, on the real binary: a rate-limited project
answers every event 200 and keeps exact counts (events, users, the hourly
chart) while storing only its quota, on SQLite and on two nodes sharing one
PostgreSQL; only a server that must shed load (free disk below
`--min-free-disk`) refuses, with Retry-After and X-Sentry-Rate-Limits, and
`/healthz` says why."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import BIN, Server, create_project, http
from payloads import event


def send_events(servers: list[Server], project, n: int, function: str = "quota_breaker") -> None:
    """Sends `n` events of one error from `n` users, spread over the
    servers and several threads, so they land in several batches."""

    def send(i: int):
        body = event(
            event_id=uuid.uuid4().hex,
            message=f"{function} failed",
            stacktrace=[{"filename": "/srv/app/quota.py", "function": function, "lineno": 3, "in_app": True,
                         "context_line": "x()", "pre_context": [], "post_context": [], "vars": {}}],
            exceptions=[],
            context={"user": {"id": f"user-{i}"}},
        )
        return servers[i % len(servers)].post_event(project.ingest_token, body).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(n)))
    assert statuses == [200] * n, statuses


def metric(server: Server, line_start: str) -> int:
    text = http("GET", server.url + "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(line_start):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def check_counts(project, sent: int, quota: int) -> None:
    issues = project.wait_for_issues(1)
    assert len(issues) == 1, issues
    issue = project.api(f"/issues/{issues[0]['id']}")
    assert issue["count"] == sent, issue
    assert issue["users"] == sent, issue
    assert issue["stored"] == quota, issue
    assert issue["not_stored"] == {"rate_limit": sent - quota, "retention": 0}, issue
    assert len(project.events(issue["id"])) == quota


def test_a_rate_limited_project_keeps_exact_counts_while_storing_only_its_quota(server):
    project = create_project(server)
    server.run_cli("project", "set", f"{project.org}/{project.slug}", "--rate-limit", "7/hour")
    before = metric(server, 'booboo_events_not_stored_total{reason="rate_limit"}')
    send_events([server], project, 40)
    check_counts(project, 40, 7)
    assert metric(server, 'booboo_events_not_stored_total{reason="rate_limit"}') - before == 33
    # Taking the limit off stores again at once, on the running server.
    server.run_cli("project", "set", f"{project.org}/{project.slug}", "--rate-limit", "off")
    send_events([server], project, 3)
    issue = project.issues()[0]
    assert (issue["count"], issue["stored"]) == (43, 10), issue


def test_two_postgresql_nodes_share_one_exact_quota(tmp_path, pg_database_url):
    env = {"BOOBOO_DATABASE_URL": pg_database_url}
    a = Server(tmp_path / "node-a", extra_env=env).start()
    b = Server(tmp_path / "node-b", extra_env=env).start()
    try:
        project = create_project(a)
        a.run_cli("project", "set", f"{project.org}/{project.slug}", "--rate-limit", "11/hour")
        send_events([a, b], project, 60)
        check_counts(project, 60, 11)
    finally:
        a.stop()
        b.stop()


def start_refusing(server: Server) -> None:
    """Starts a server whose `/healthz` is expected to answer 503."""
    server.data_dir.mkdir(parents=True, exist_ok=True)
    log = open(server.log_path, "ab")
    server.process = subprocess.Popen(
        [str(BIN), "--bind", f"127.0.0.1:{server.port}", *server.extra_args, "serve"],
        env=server.env, stdout=log, stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()
        try:
            http("GET", server.url + "/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"booboo did not answer within 30 s:\n{server.log()}")


def test_free_disk_below_the_minimum_refuses_events_and_says_why(tmp_path):
    # No disk has an exabyte free: the data directory counts as low.
    server = Server(tmp_path / "data", extra_args=("--min-free-disk", "1000000000000000000"))
    project = create_project(server)
    start_refusing(server)
    try:
        refused = server.post_event(project.ingest_token, event())
        assert refused.status == 503, refused.body
        assert refused.headers.get("retry-after") == "60"
        assert b"--min-free-disk" in refused.body

        key = project.sentry_dsn.split("://", 1)[1].split("@", 1)[0]
        project_id = project.sentry_dsn.rsplit("/", 1)[1]
        envelope = "\n".join(json.dumps(x) for x in [
            {"event_id": uuid.uuid4().hex},
            {"type": "event"},
            {"message": "boom", "level": "error"},
        ]).encode()
        sentry = http("POST", f"{server.url}/api/{project_id}/envelope/?sentry_key={key}", envelope,
                      {"Content-Type": "application/x-sentry-envelope"})
        assert sentry.status == 503, sentry.body
        assert sentry.headers.get("retry-after") == "60"
        assert sentry.headers.get("x-sentry-rate-limits") == "60::organization"

        health = http("GET", server.url + "/healthz")
        assert health.status == 503
        assert health.json()["status"] == "low disk"
        assert "--min-free-disk" in health.json()["detail"] and health.json()["since"]
        assert metric(server, 'booboo_events_rejected_total{reason="low_disk"}') == 2
        assert project.issues() == []
    finally:
        server.stop()
