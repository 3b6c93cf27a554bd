"""The booboo protocol against the real binary: what is accepted, how it is
grouped and counted, and how every bad input is answered."""

import gzip
import subprocess
import json
import uuid

from conftest import BIN, create_project, http
from payloads import event, frame


def test_handshake_marks_the_project_connected_without_an_issue(server, project):
    r = server.post_event(project.ingest_token, {"handshake": True, "sdk": "python/0.16.0"})
    assert r.status == 200
    [p] = [p for p in project.api("/projects")["items"] if p["slug"] == project.slug]
    assert p["connected_sdk"] == "python/0.16.0"
    assert p["connected_at"]
    assert project.issues() == []


def test_events_of_one_fingerprint_share_an_issue_and_are_counted(server, project):
    for i, user in enumerate(["u1", "u2", "u1"]):
        body = event(message=f"division by zero #{i}", context={"user": {"id": user}})
        body["exceptions"][0]["value"] = body["message"]
        r = server.post_event(project.ingest_token, body)
        assert r.status == 200, r.body
        assert len(r.json()["id"]) == 32
    [issue] = project.wait_for_issues(1)
    assert issue["count"] == 3
    assert issue["users"] == 2
    assert issue["title"].startswith("ZeroDivisionError: division by zero")
    assert issue["culprit"] == "handler in views.py"
    assert issue["environments"] == ["production"]
    assert issue["releases"] == ["1.0.0"]
    assert issue["first_release"] == "1.0.0"
    assert issue["status"] == "unresolved"


def test_a_retried_event_id_is_stored_once(server, project):
    event_id = uuid.uuid4().hex
    for _ in range(3):
        r = server.post_event(project.ingest_token, event(event_id=event_id))
        assert r.status == 200
        assert r.json()["id"] == event_id
    [issue] = project.wait_for_issues(1)
    assert issue["count"] == 1
    assert [e["id"] for e in project.events(issue["id"])] == [event_id]


def test_the_stored_event_keeps_frames_context_and_unknown_fields(server, project):
    body = event(
        event_id=uuid.uuid4().hex,
        request={"method": "POST", "url": "https://shop.example/pay?token=abc&page=2", "headers": {"Authorization": "Bearer x", "Accept": "*/*"}, "query_string": "token=abc&page=2"},
        future_field={"nested": [1, 2, 3]},
    )
    body["exceptions"][0]["stacktrace"][0]["vars"] = {"db_password": "'hunter2'", "__name__": "'x'", "qty": "0"}
    assert server.post_event(project.ingest_token, body).status == 200
    stored = project.api(f"/events/{body['event_id']}")
    assert stored["id"] == body["event_id"]
    assert stored["future_field"] == {"nested": [1, 2, 3]}
    [raised] = stored["exceptions"]
    top = raised["stacktrace"][0]
    assert top["context_line"] == "total = price / qty"
    assert top["pre_context"] == ["def handler(price, qty):"]
    assert top["vars"] == {"db_password": "[filtered]", "qty": "0"}
    assert stored["request"]["headers"]["Authorization"] == "[filtered]"
    assert stored["request"]["headers"]["Accept"] == "*/*"
    assert stored["request"]["query_string"] == "token=[filtered]&page=2"
    assert stored["request"]["url"] == "https://shop.example/pay?token=[filtered]&page=2"
    assert stored["sdk"] == {"name": "booboo-sdk", "version": "0.16.0"}
    assert stored["environment"] == "production" and stored["release"] == "1.0.0"
    assert stored["issue_id"] and stored["received_at"]


def test_gzip_bodies_are_accepted(server, project):
    assert server.post_event(project.ingest_token, event(), gzipped=True).status == 200
    assert project.wait_for_issues(1)[0]["count"] == 1


def test_bad_input_gets_a_status_and_a_reason(server, project):
    t = project.ingest_token
    cases = [
        (server.post_event(None, event()), 401, "X-Booboo-DSN"),
        (server.post_event("not-a-token", event()), 401, "unknown"),
        (server.post_event(t, b"{nope"), 400, "JSON"),
        (server.post_event(t, b"[1, 2]"), 400, "object"),
        (server.post_event(t, b'{"message": "\xff\xfe"}'), 400, "JSON"),
        (server.post_event(t, ("[" * 100000 + "]" * 100000).encode()), 400, "JSON"),
        (server.post_event(t, event(tags=["a"])), 422, "`tags`"),
        (server.post_event(t, event(stacktrace=[frame(lineno="3")], exceptions=[])), 422, "stacktrace[0].lineno"),
        (server.post_event(t, event(message="x" * (1024 * 1024 + 10))), 413, "1048576"),
        (server.post_event(t, b"\x00" * (5 * 1024 * 1024), gzipped=True), 413, "decompressed"),
        (server.post_event(t, event(), headers={"Content-Encoding": "zstd"}), 415, "zstd"),
    ]
    for response, status, words in cases:
        assert response.status == status, (status, response.body[:300])
        assert words in response.json()["detail"], response.json()
    # Nothing above poisoned anything: a good event still goes in.
    assert server.post_event(t, event()).status == 200
    assert http("GET", server.url + "/healthz").status == 200
    text = http("GET", server.url + "/metrics").body.decode()
    for reason in ["missing_token", "unknown_token", "invalid_json", "not_an_object", "invalid_field", "too_large", "unsupported_encoding"]:
        assert f'booboo_events_rejected_total{{reason="{reason}"}}' in text, reason


def test_the_protocol_size_of_existing_clients_is_accepted(server, project):
    body = event(message="x" * 102_000)
    assert len(json.dumps(body)) > 102_000
    assert server.post_event(project.ingest_token, body).status == 200


def test_a_negative_lineno_is_stored_as_unknown(server, project):
    body = event(frames=[frame(lineno=-1)])
    r = server.post_event(project.ingest_token, body)
    assert r.status == 200
    stored = project.api(f"/events/{r.json()['id']}")
    assert stored["exceptions"][0]["stacktrace"][0]["lineno"] is None


def test_a_new_event_reopens_a_resolved_issue_as_a_regression(server, project):
    assert server.post_event(project.ingest_token, event()).status == 200
    [issue] = project.wait_for_issues(1)
    resolved = project.api(f"/issues/{issue['id']}", "PATCH", {"status": "resolved"})
    assert resolved["status"] == "resolved"
    assert project.issues(status="unresolved") == []
    assert server.post_event(project.ingest_token, event()).status == 200
    again = project.api(f"/issues/{issue['id']}")
    assert again["status"] == "unresolved" and again["is_regression"] is True and again["count"] == 2
    project.api(f"/issues/{issue['id']}", "PATCH", {"status": "closed"}, expect=422)


def test_issue_filters_sorts_and_pages(server, project):
    t = project.ingest_token
    for i in range(5):
        body = event(frames=[frame(function=f"f{i}", line=f"fail_{i}()")], environment="staging" if i % 2 else "production", release=f"2.{i}")
        for _ in range(i + 1):
            assert server.post_event(t, body).status == 200
    assert len(project.issues()) == 5
    staging = project.issues(environment="staging")
    assert len(staging) == 2 and all("staging" in i["environments"] for i in staging)
    assert [i["culprit"] for i in project.issues(release="2.3")] == ["f3 in views.py"]
    assert [i["culprit"] for i in project.issues(query="f4")] == ["f4 in views.py"]
    assert [i["count"] for i in project.issues(sort="events")] == [5, 4, 3, 2, 1]
    first = project.api(f"/projects/{project.org}/{project.slug}/issues?sort=events&limit=2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = project.api(f"/projects/{project.org}/{project.slug}/issues?sort=events&limit=2&cursor={first['next_cursor']}")
    assert [i["count"] for i in second["items"]] == [3, 2]
    project.api(f"/projects/{project.org}/{project.slug}/issues?sort=sideways", expect=400)
    assert project.issues(level="warning") == []


def test_a_token_sees_only_its_own_organisations(server, project):
    other = create_project(server)
    r = server.post_event(other.ingest_token, event())
    assert r.status == 200
    [their_issue] = other.wait_for_issues(1)
    project.api(f"/issues/{their_issue['id']}", expect=404)
    project.api(f"/issues/{their_issue['id']}/events", expect=404)
    project.api(f"/issues/{their_issue['id']}", "PATCH", {"status": "resolved"}, expect=404)
    project.api(f"/events/{r.json()['id']}", expect=404)
    project.api(f"/projects/{other.org}/{other.slug}/issues", expect=404)
    assert other.org not in [p["organization"] for p in project.api("/projects")["items"]]
    assert http("GET", server.url + "/api/v1/projects").status == 401
    assert http("GET", server.url + "/api/v1/projects", headers={"Authorization": "Bearer nope"}).status == 401


def test_cli_refuses_wrong_arguments_in_one_line(server):
    for args in (["project", "create", "no-slash"], ["project", "create", "Bad/Slug"], ["--bind", "nope", "config", "show"], ["frobnicate"]):
        result = server.run_cli(*args, check=False)
        assert result.returncode != 0, args
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr and "panicked" not in result.stderr, result.stderr


def test_config_show_redacts_the_database_password(server):
    out = server.run_cli("config", "show", env={"BOOBOO_DATABASE_URL": "postgres://booboo:s3cret@db/booboo"}).stdout
    assert "s3cret" not in out and "[redacted]" in out


def test_project_create_warns_when_the_public_url_is_only_guessed(server):
    env = {k: v for k, v in server.env.items() if k != "BOOBOO_PUBLIC_URL"}
    guessed = subprocess.run([str(BIN), "project", "create", "guess/web"], env=env, capture_output=True, text=True, timeout=60)
    assert guessed.returncode == 0, guessed.stderr
    assert "BOOBOO_PUBLIC_URL" in guessed.stderr and "not set" in guessed.stderr, guessed.stderr
    assert guessed.stdout.strip().splitlines()[-1].startswith("http://"), guessed.stdout
    told = server.run_cli("project", "create", "told/web")
    assert "warning" not in told.stderr, told.stderr
    assert told.stdout.strip().splitlines()[-1].endswith(f"@{server.url.split('://')[1]}/told/web"), told.stdout
