"""A project's limits through the real binary: `booboo project set` and the
API change the same settings in the database, a running server answers with
them at once, the installation's defaults come from its flags, and bad values
are refused with one clear line and a non-zero exit, changing nothing."""

from __future__ import annotations

from conftest import Server, create_project, http


def settings(project):
    return project.api(f"/projects/{project.org}/{project.slug}")


def test_the_cli_and_the_api_change_the_same_limits(server):
    project = create_project(server)
    path = f"{project.org}/{project.slug}"
    out = server.run_cli("project", "set", path, "--max-events", "1000", "--retention-days", "30",
                         "--rate-limit", "100/min", "--spike-guard", "on").stdout
    assert "max events:     1000" in out and "rate limit:     100/min" in out and "spike guard:    on" in out, out
    # The running server reads them from the database: no restart, no cache.
    body = settings(project)
    assert (body["max_events"], body["retention_days"], body["rate_limit"], body["spike_guard"]) == (
        1000, 30, "100/min", True), body

    out = server.run_cli("project", "set", path, "--max-events", "default", "--rate-limit", "off").stdout
    assert "max events:     100000 (installation default)" in out and "rate limit:     off" in out, out
    body = settings(project)
    assert body["max_events"] is None and body["effective"]["max_events"] == 100000, body
    assert body["retention_days"] == 30 and body["rate_limit"] is None, body

    # Only an organisation admin changes them through the API.
    auth = {"Authorization": f"Bearer {project.token}", "Content-Type": "application/json"}
    url = f"{server.url}/api/v1/projects/{path}"
    r = http("PATCH", url, b'{"rate_limit": "5000/hour"}', auth)
    assert r.status == 403, r.body
    server.run_cli("member", "add", project.org, project.email, "--role", "admin")
    r = http("PATCH", url, b'{"rate_limit": "5000/hour", "retention_days": null}', auth)
    assert r.status == 200, r.body
    out = server.run_cli("project", "set", path).stdout
    assert "rate limit:     5000/hour" in out and "retention days: 90 (installation default)" in out, out
    r = http("PATCH", url, b'{"max_events": 0}', auth)
    assert r.status == 400 and r.json()["detail"].startswith("max_events"), r.body


def one_line_error(result, says):
    assert result.returncode != 0, result
    assert says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_bad_values_and_unknown_projects_are_refused_and_change_nothing(server):
    project = create_project(server)
    path = f"{project.org}/{project.slug}"
    for args, says in [
        (("--max-events", "-5"), "--max-events"),
        (("--max-events", "0"), "--max-events"),
        (("--max-events", "2000000000"), "--max-events"),
        (("--retention-days", "36501"), "--retention-days"),
        (("--retention-days", "soon"), "--retention-days"),
        (("--rate-limit", "100/fortnight"), "--rate-limit"),
        (("--spike-guard", "maybe"), "--spike-guard"),
    ]:
        one_line_error(server.run_cli("project", "set", path, *args, check=False), says)
    body = settings(project)
    assert body["max_events"] is None and body["retention_days"] is None and body["rate_limit"] is None, body
    one_line_error(server.run_cli("project", "set", f"{project.org}/nope", "--max-events", "5", check=False),
                   "no project")


def test_installation_defaults_come_from_flags_and_bad_ones_stop_the_start(tmp_path):
    s = Server(tmp_path / "data", extra_args=("--default-max-events", "5000", "--default-retention-days", "14",
                                               "--max-disk-bytes", "2GiB", "--min-free-disk", "0"))
    shown = s.run_cli("--default-max-events", "5000", "--rate-limit", "10/s", "config", "show").stdout
    assert "default_max_events = 5000" in shown and "rate_limit = 10/s" in shown, shown
    s.start()
    try:
        project = create_project(s)
        effective = settings(project)["effective"]
        assert (effective["max_events"], effective["retention_days"]) == (5000, 14), effective
    finally:
        s.stop()
    one_line_error(s.run_cli("--max-disk-bytes", "lots", "config", "show", check=False), "--max-disk-bytes")
    one_line_error(s.run_cli("--rate-limit", "fast", "config", "show", check=False), "--rate-limit")
