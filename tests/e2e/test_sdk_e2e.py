"""Our Python SDK (sdk/python, installed in the interpreter running these
tests) against the real server: an application crashes, and the issue
appears through the JSON API with its frames, locals, user, request,
environment and release."""

import json
import sys
import textwrap
from pathlib import Path

from conftest import run_script

# The application runs in a process of its own with the same interpreter as
# pytest, where scripts/test installed the SDK from sdk/python.
PYTHON = Path(sys.executable)

APP = textwrap.dedent(
    """
    import json, os, sys
    import booboo
    from flask import Flask

    assert booboo.__version__ == "0.17.0", "not our SDK: " + booboo.__file__
    app = Flask(__name__)

    @app.route("/checkout")
    def checkout():
        basket = {"apples": 2}
        return str(basket["pears"])

    booboo.init(os.environ["DSN"], app=app, environment="staging", release="3.1.4")
    booboo.set_user({"id": "7", "email": "grace@example.com", "username": "grace"})
    booboo.set_tag("shard", "eu-2")

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
        chained_id = booboo.capture_exception()

    response = app.test_client().get(
        "/checkout?page=2&api_key=k",
        headers={"Authorization": "Bearer abc", "X-Request-Id": "r1"},
    )
    assert response.status_code == 500, response.status_code
    delivered = booboo.flush(20)
    print(json.dumps({"chained_id": chained_id, "delivered": delivered, "stats": booboo.stats()}))
    """
)


def find(issues, prefix):
    matches = [i for i in issues if i["title"].startswith(prefix)]
    assert matches, f"no issue titled {prefix!r} in {[i['title'] for i in issues]}"
    return matches[0]


def test_our_sdk_reports_a_chained_exception_and_a_flask_crash(project):
    result = run_script(PYTHON, APP, {"DSN": project.dsn})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["delivered"] is True, report
    assert report["stats"] == {"sent": 2, "queued": 0, "dropped": {}}, report

    [p] = [p for p in project.api("/projects")["items"] if p["slug"] == project.slug]
    assert p["connected_sdk"] == "python/0.17.0"

    issues = project.wait_for_issues(2)
    chained = find(issues, "RuntimeError: config is broken")
    assert chained["environments"] == ["staging"] and chained["first_release"] == "3.1.4"
    assert chained["users"] == 1
    assert chained["culprit"].startswith("load_config in ")

    # The issue's event list and the event itself, by the id the SDK returned.
    [listed] = project.events(chained["id"])
    assert listed["id"] == report["chained_id"]
    event = project.api(f"/events/{report['chained_id']}")
    assert event["issue_id"] == chained["id"]
    assert event["environment"] == "staging" and event["release"] == "3.1.4"
    assert event["user"] == {"id": "7", "email": "grace@example.com", "username": "grace"}
    assert event["sdk"] == {"name": "booboo-sdk", "version": "0.17.0"}
    assert event["tags"]["runtime"] == "python" and event["tags"]["shard"] == "eu-2"
    assert event["timestamp"][:4].isdigit() and event["timestamp"].endswith("Z")
    raised, cause = event["exceptions"]
    assert (raised["type"], raised["chain_type"]) == ("RuntimeError", None)
    assert (cause["type"], cause["value"], cause["chain_type"]) == (
        "ValueError", "invalid literal for int() with base 10: 'not a number'", "cause",
    )
    top = raised["stacktrace"][-1]
    assert top["function"] == "load_config" and top["in_app"] is True
    assert top["filename"].endswith("app.py")
    assert top["vars"]["retries"] == "3" and top["vars"]["path"] == "'/etc/app.ini'"
    assert top["context_line"].strip() == 'raise RuntimeError("config is broken") from exc'
    assert top["pre_context"][-1].strip() == "except ValueError as exc:"
    assert top["post_context"] and top["lineno"] > 0
    innermost = cause["stacktrace"][-1]
    assert innermost["function"] == "parse"
    assert innermost["vars"] == {"raw": "'not a number'", "secret_token": "[filtered]"}

    crash = find(issues, "KeyError: 'pears'")
    assert crash["environments"] == ["staging"]
    [event] = project.events(crash["id"])
    request = event["request"]
    assert request["method"] == "GET"
    assert request["url"] == "http://localhost/checkout"
    assert request["query_string"] == "page=2&api_key=[filtered]"
    assert request["headers"]["Authorization"] == "[filtered]"
    assert request["headers"]["X-Request-Id"] == "r1"
    assert event["user"]["email"] == "grace@example.com"
    frame = event["exceptions"][0]["stacktrace"][-1]
    assert frame["function"] == "checkout" and frame["vars"]["basket"] == "{'apples': 2}"
    flask_frames = [f for f in event["exceptions"][0]["stacktrace"] if "site-packages" in f["filename"]]
    assert flask_frames and not any(f["in_app"] for f in flask_frames)
