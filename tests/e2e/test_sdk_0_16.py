"""The published client, booboo-sdk 0.16.0 from PyPI, unchanged against our
server: its handshake, a chained exception with locals and user, a Flask
request crash, and an unhandled exception through sys.excepthook."""

import textwrap

import pytest

from conftest import run_script, venv_python

SDK_016 = ["booboo-sdk==0.16.0", "flask==3.1.0"]


@pytest.fixture(scope="module")
def python016():
    return venv_python("booboo-sdk-0.16.0", SDK_016)


def find(issues, prefix):
    matches = [i for i in issues if i["title"].startswith(prefix)]
    assert matches, f"no issue titled {prefix!r} in {[i['title'] for i in issues]}"
    return matches[0]


def test_booboo_sdk_0_16_events_and_handshake_land_correctly(project, python016):
    app = textwrap.dedent(
        """
        import os, booboo
        booboo.init(os.environ["DSN"], environment="staging", release="2.4.1")
        booboo.set_user({"id": "42", "email": "ada@example.com"})

        def parse(raw):
            secret_token = "s3cr3t"
            return int(raw)

        def load_config(path):
            retries = 3
            try:
                parse("not a number")
            except ValueError as exc:
                raise RuntimeError("config is broken") from exc

        try:
            load_config("/etc/app.ini")
        except RuntimeError:
            booboo.capture_exception()
        """
    )
    result = run_script(python016, app, {"DSN": project.dsn})
    assert result.returncode == 0, result.stderr

    [p] = [p for p in project.api("/projects")["items"] if p["slug"] == project.slug]
    assert p["connected_sdk"] == "python/0.16.0"

    issue = find(project.wait_for_issues(1), "RuntimeError: config is broken")
    assert issue["environments"] == ["staging"] and issue["first_release"] == "2.4.1"
    assert issue["users"] == 1
    assert issue["culprit"].startswith("load_config in ")
    [event] = project.events(issue["id"])
    assert event["user"]["id"] == "42" and event["user"]["email"] == "ada@example.com"
    assert event["environment"] == "staging" and event["release"] == "2.4.1"
    assert event["sdk"] == {"name": "booboo-sdk", "version": "0.16.0"}
    raised, cause = event["exceptions"]
    assert (raised["type"], raised["chain_type"]) == ("RuntimeError", None)
    assert (cause["type"], cause["chain_type"]) == ("ValueError", "cause")
    top = raised["stacktrace"][-1]
    assert top["function"] == "load_config" and top["in_app"] is True
    assert top["vars"]["retries"] == "3"
    assert 'raise RuntimeError("config is broken") from exc' in top["context_line"]
    assert top["pre_context"] and top["lineno"] > 0
    innermost = cause["stacktrace"][-1]
    assert innermost["function"] == "parse" and innermost["vars"]["secret_token"] == "[filtered]"


def test_booboo_sdk_0_16_flask_crash_carries_the_request(project, python016):
    app = textwrap.dedent(
        """
        import os, booboo
        from flask import Flask
        app = Flask(__name__)

        @app.route("/checkout")
        def checkout():
            basket = {"apples": 2}
            return str(basket["pears"])

        booboo.init(os.environ["DSN"], app=app, environment="production")
        client = app.test_client()
        response = client.get("/checkout?page=2&api_key=k", headers={"Authorization": "Bearer abc", "X-Request-Id": "r1"})
        assert response.status_code == 500, response.status_code
        """
    )
    result = run_script(python016, app, {"DSN": project.dsn})
    assert result.returncode == 0, result.stderr
    issue = find(project.wait_for_issues(1), "KeyError: 'pears'")
    [event] = project.events(issue["id"])
    request = event["request"]
    assert request["method"] == "GET"
    assert "/checkout" in request["url"]
    assert "api_key=[filtered]" in request["query_string"]
    assert request["headers"]["Authorization"] == "[filtered]"
    assert request["headers"]["X-Request-Id"] == "r1"
    assert event["exceptions"][0]["stacktrace"][-1]["vars"]["basket"] == "{'apples': 2}"


def test_booboo_sdk_0_16_unhandled_exception_is_reported(project, python016):
    app = textwrap.dedent(
        """
        import os, booboo
        booboo.init(os.environ["DSN"])
        def main():
            items = []
            return items[3]
        main()
        """
    )
    result = run_script(python016, app, {"DSN": project.dsn})
    assert result.returncode == 1 and "IndexError" in result.stderr
    issue = find(project.wait_for_issues(1), "IndexError: list index out of range")
    assert issue["culprit"].startswith("main in ")
