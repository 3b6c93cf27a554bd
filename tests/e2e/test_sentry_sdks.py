"""Sentry's own SDKs against the real binary: the latest `sentry-sdk` from
PyPI (a plain script and a Flask application) and the latest `@sentry/node`
from npm, each pointed at the project's Sentry DSN and nothing else changed;
what they sent is read back through the JSON API and the dashboard.

The Python SDK lives in a cached virtualenv of its own (with `brotli`, so it
compresses with br; the Flask test asks for gzip); the Node SDK in a cached
`npm install` under target/. Node and npm must be installed: without them the
Node test fails, it does not skip.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.client import HTTPConnection
from http.cookiejar import CookieJar
from pathlib import Path

from conftest import ROOT, create_project, http, run_script, venv_python

NODE_CACHE = Path(os.environ.get("BOOBOO_E2E_NODE") or ROOT / "target" / "e2e-node")


def sentry_python() -> Path:
    return venv_python("sentry-sdk", ["sentry-sdk", "flask", "brotli"])


def node_modules(packages: list[str]) -> Path:
    """A cached `npm install` of `packages`; returns its node_modules."""
    marker = NODE_CACHE / ".installed"
    wanted = "\n".join(packages)
    if not (marker.exists() and marker.read_text() == wanted):
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        (NODE_CACHE / "package.json").write_text('{"private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", *packages], cwd=NODE_CACHE, check=True, timeout=600)
        marker.write_text(wanted)
    return NODE_CACHE / "node_modules"


def project_id(project) -> int:
    return int(project.sentry_dsn.rstrip("/").rsplit("/", 1)[1])


def wait_for_events(project, issue_id: int, n: int, timeout: float = 15) -> list:
    deadline = time.monotonic() + timeout
    while True:
        events = project.events(issue_id)
        if len(events) >= n or time.monotonic() > deadline:
            assert len(events) >= n, f"expected {n} events, found {len(events)}:\n{project.server.log()[-3000:]}"
            return events
        time.sleep(0.1)


def issue_titled(project, title: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [i for i in project.issues() if i["title"] == title]
        if found or time.monotonic() > deadline:
            assert found, f"no issue titled {title!r} in {[i['title'] for i in project.issues()]}:\n{project.server.log()[-3000:]}"
            return found[0]
        time.sleep(0.1)


def frame_named(event: dict, function: str) -> dict:
    frames = [f for e in event["exceptions"] for f in e["stacktrace"] if f["function"] == function]
    assert frames, f"no frame {function!r} in {json.dumps(event['exceptions'])[:2000]}"
    return frames[-1]


def line_of(source: str, text: str) -> int:
    """The 1-based line of `source` that holds `text`, as a stack trace counts."""
    return next(n for n, line in enumerate(source.splitlines(), 1) if text in line)


def run_ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_project_create_prints_the_sentry_dsn_before_the_booboo_dsn(server):
    lines = server.run_cli("project", "create", "sentry-cli/web").stdout.strip().splitlines()
    label, sentry_dsn = lines[-3].split(": ", 1)
    assert label.startswith("Sentry DSN"), lines
    assert lines[-1].endswith("/sentry-cli/web") and lines[-1].startswith("http://")
    key = lines[-1].split("://", 1)[1].split("@", 1)[0]
    assert sentry_dsn.startswith(f"http://{key}@127.0.0.1:{server.port}/")
    assert sentry_dsn.rsplit("/", 1)[1].isdigit()


SCRIPT = """
import os
import sentry_sdk

sentry_sdk.init(os.environ["SENTRY_DSN"], environment="staging", release="batch@1.0.0")
sentry_sdk.set_user({"id": "u-7", "username": "ada"})
sentry_sdk.set_tag("job", "nightly")
sentry_sdk.add_breadcrumb(category="job", message="loaded 3 orders", level="info")


def average(orders):
    count = len(orders) - 3
    return sum(o["price"] for o in orders) / count


try:
    try:
        average([{"price": 1}, {"price": 2}, {"price": 3}])
    except ZeroDivisionError as exc:
        raise RuntimeError("nightly average failed") from exc
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.capture_message("job finished with errors", level="warning")
print("compression:", getattr(sentry_sdk.get_client().transport, "_compression_algo", "unknown"))
sentry_sdk.flush()
"""


def test_sentry_sdk_in_a_plain_script(server, project):
    result = run_ok(run_script(sentry_python(), SCRIPT, {"SENTRY_DSN": project.sentry_dsn}))
    # With the brotli module installed, sentry-sdk sends br bodies.
    assert "compression: br" in result.stdout, result.stdout

    issue = issue_titled(project, "RuntimeError: nightly average failed")
    assert issue["culprit"] == "<module> in app.py"
    assert issue["environments"] == ["staging"] and issue["releases"] == ["batch@1.0.0"]
    [event] = wait_for_events(project, issue["id"], 1)
    assert [e["type"] for e in event["exceptions"]] == ["RuntimeError", "ZeroDivisionError"]
    assert event["exceptions"][0]["handled"] is True
    raised = frame_named(event, "average")
    assert raised["context_line"].strip() == 'return sum(o["price"] for o in orders) / count'
    assert raised["lineno"] == line_of(SCRIPT, "/ count")
    assert raised["vars"]["count"] == "0"
    # Nested locals stay structured (a tree on the event page); values are the SDK's reprs.
    assert raised["vars"]["orders"] == [{"price": "1"}, {"price": "2"}, {"price": "3"}], raised["vars"]
    assert raised["filename"].endswith("/app.py") and raised["in_app"] is True
    assert [b["message"] for b in event["breadcrumbs"]] == ["loaded 3 orders"]
    assert event["user"]["id"] == "u-7" and event["user"]["username"] == "ada"
    assert event["tags"]["job"] == "nightly"
    assert event["environment"] == "staging" and event["release"] == "batch@1.0.0"
    assert event["sdk"]["name"].startswith("sentry.python")
    assert event["runtime"]["name"] == "CPython"
    assert event["platform"] == "python"

    message = issue_titled(project, "job finished with errors")
    assert message["level"] == "warning"


FLASK_APP = """
import logging
import os

import sentry_sdk
from flask import Flask

sentry_sdk.init(
    os.environ["SENTRY_DSN"],
    environment="production",
    release="shop@2.0.0",
    _experiments={"transport_compression_algo": "gzip"},
)
app = Flask(__name__)


@app.route("/checkout/<int:qty>")
def checkout(qty):
    sentry_sdk.set_tag("shop", "eu")
    sentry_sdk.set_user({"id": "u-42", "email": "ada@example.com"})
    logging.getLogger("shop").warning("checking out %d items", qty)
    unit_price = 10
    return str(unit_price / qty)


with app.test_client() as client:
    response = client.get("/checkout/0?coupon=SPRING", headers={"Authorization": "Bearer secret"})
    assert response.status_code == 500, response.status_code
print("compression:", getattr(sentry_sdk.get_client().transport, "_compression_algo", "unknown"))
sentry_sdk.flush()
"""


def test_sentry_sdk_in_a_flask_application(server, project):
    result = run_ok(run_script(sentry_python(), FLASK_APP, {"SENTRY_DSN": project.sentry_dsn}))
    assert "compression: gzip" in result.stdout, result.stdout

    issue = issue_titled(project, "ZeroDivisionError: division by zero")
    assert issue["culprit"] == "checkout in app.py"
    [event] = wait_for_events(project, issue["id"], 1)
    assert event["exceptions"][0]["handled"] is False
    raised = frame_named(event, "checkout")
    assert raised["context_line"].strip() == "return str(unit_price / qty)"
    assert raised["vars"]["qty"] == "0" and raised["vars"]["unit_price"] == "10"
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"].endswith("/checkout/0")
    assert event["request"]["query_string"] == "coupon=SPRING"
    assert event["request"]["headers"].get("Authorization") in (None, "[filtered]", "[Filtered]")
    assert any(b.get("message") == "checking out 0 items" for b in event["breadcrumbs"]), event["breadcrumbs"]
    assert event["user"]["id"] == "u-42"
    assert event["tags"]["shop"] == "eu"
    assert event["environment"] == "production" and event["release"] == "shop@2.0.0"
    assert event["sdk"]["name"] == "sentry.python.flask"


NODE_APP = """
const Sentry = require("@sentry/node");
Sentry.init({ dsn: process.env.SENTRY_DSN, release: "api@3.1.0", environment: "staging" });
Sentry.setUser({ id: "u-9", email: "grace@example.com" });
Sentry.setTag("region", "us");
Sentry.addBreadcrumb({ category: "cart", message: "added item", level: "info" });

function checkout(price, qty) {
  if (qty === 0) throw new TypeError("quantity must not be zero");
  return price / qty;
}

try {
  checkout(10, 0);
} catch (e) {
  Sentry.captureException(e);
}
Sentry.flush(10000).then((sent) => { console.log("flushed:", sent); process.exit(0); });
"""


def test_sentry_node_sdk(server, project):
    modules = node_modules(["@sentry/node"])
    directory = Path(tempfile.mkdtemp(prefix="booboo-node-"))
    script = directory / "app.js"
    script.write_text(NODE_APP)
    env = {**os.environ, "NODE_PATH": str(modules), "SENTRY_DSN": project.sentry_dsn}
    result = run_ok(subprocess.run(["node", str(script)], cwd=directory, env=env, capture_output=True, text=True, timeout=120))
    assert "flushed: true" in result.stdout, result.stdout

    issue = issue_titled(project, "TypeError: quantity must not be zero")
    assert issue["culprit"] == "checkout in app.js"
    [event] = wait_for_events(project, issue["id"], 1)
    raised = frame_named(event, "checkout")
    assert raised["filename"] == str(script)
    assert (raised["lineno"], raised["colno"]) == (line_of(NODE_APP, "throw new TypeError"), 24)
    assert raised["context_line"].strip() == 'if (qty === 0) throw new TypeError("quantity must not be zero");'
    assert raised["in_app"] is True
    assert any(b.get("message") == "added item" and b.get("category") == "cart" for b in event["breadcrumbs"])
    assert event["user"] == {"id": "u-9", "email": "grace@example.com"}
    assert event["tags"]["region"] == "us"
    assert event["environment"] == "staging" and event["release"] == "api@3.1.0"
    assert event["sdk"]["name"] == "sentry.javascript.node"
    assert event["runtime"]["name"] == "node"
    # The SDK also sent its release-health session, accepted and counted.
    metrics = http("GET", server.url + "/metrics").body.decode()
    assert 'booboo_envelope_items_ignored_total{type="session"}' in metrics


SAME_CRASH = """
import os

if os.environ["WHICH_SDK"] == "sentry":
    import sentry_sdk as sdk
else:
    import booboo as sdk
sdk.init(os.environ["DSN"])


def apply_discount(price, percent):
    return price / (100 - percent)


try:
    apply_discount(50, 100)
except ZeroDivisionError:
    sdk.capture_exception()
sdk.flush()
"""


def test_the_same_crash_from_sentry_sdk_and_our_sdk_is_one_issue(server, project):
    run_ok(run_script(sentry_python(), SAME_CRASH, {"WHICH_SDK": "sentry", "DSN": project.sentry_dsn}))
    run_ok(run_script(Path(sys.executable), SAME_CRASH, {"WHICH_SDK": "booboo", "DSN": project.dsn}))
    [issue] = project.wait_for_issues(1)
    events = wait_for_events(project, issue["id"], 2)
    assert sorted(e["sdk"]["name"].split(".")[0].split("-")[0] for e in events) == ["booboo", "sentry"]
    assert project.issues() == [project.issues()[0]] and project.issues()[0]["count"] == 2


def test_chunked_bodies_and_cors_over_real_http(server, project):
    pid = project_id(project)
    event_id = "c0ffee00c0ffee00c0ffee00c0ffee00"
    event = {"event_id": event_id, "message": "chunked hello", "level": "info"}
    body = json.dumps({"event_id": event_id}).encode() + b"\n" + b'{"type":"event"}\n' + json.dumps(event).encode()
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    conn = HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        f"/api/{pid}/envelope/?sentry_key={project.ingest_token}&sentry_version=7",
        body=iter(chunks),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    answer = response.read()
    assert response.status == 200, answer
    assert json.loads(answer) == {"id": event_id}
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    assert project.api(f"/events/{event_id}")["message"] == "chunked hello"

    preflight = http(
        "OPTIONS",
        f"{server.url}/api/{pid}/envelope/",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]

    refused = http("POST", f"{server.url}/api/{pid}/envelope/", b"{}\n", {"X-Sentry-Auth": "Sentry sentry_key=" + "0" * 32})
    assert refused.status == 401 and "unknown" in refused.json()["detail"]
    assert refused.headers["access-control-allow-origin"] == "*"
    other = create_project(server)
    wrong = http("POST", f"{server.url}/api/{pid}/envelope/", b"{}\n", {"X-Sentry-Auth": "Sentry sentry_key=" + other.ingest_token})
    assert wrong.status == 403 and "another project" in wrong.json()["detail"]


class Dashboard:
    """The dashboard as a signed-in member sees it, over plain HTTP."""

    def __init__(self, project, password: str = "correct horse battery"):
        self.base = project.server.url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        form = self.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        fields = {"csrf": csrf, "email": project.email, "password": password, "next": "/projects"}
        self.opener.open(urllib.request.Request(self.base + "/signin", data=urllib.parse.urlencode(fields).encode()), timeout=30)

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as r:
            assert r.status == 200, (path, r.status)
            return html.unescape(r.read().decode())


def test_the_dashboard_shows_the_sentry_dsn_and_sentry_events(server, project):
    dashboard = Dashboard(project)
    setup = dashboard.get(f"/projects/{project.org}/{project.slug}/setup")
    assert project.dsn in setup and project.sentry_dsn in setup
    assert "Sentry SDKs" in setup

    run_ok(run_script(sentry_python(), SCRIPT, {"SENTRY_DSN": project.sentry_dsn}))
    issue = issue_titled(project, "RuntimeError: nightly average failed")
    [event] = wait_for_events(project, issue["id"], 1)
    page = dashboard.get(f"/issues/{issue['id']}/events/{event['id']}")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Breadcrumbs" in text and "loaded 3 orders" in text
    assert "RuntimeError" in text and "ZeroDivisionError" in text and "nightly average failed" in text
    assert "average" in text and 'return sum(o["price"] for o in orders) / count' in text
    assert "u-7" in text and "nightly" in text
    assert "staging" in text and "batch@1.0.0" in text
    issue_page = dashboard.get(f"/issues/{issue['id']}")
    assert "nightly average failed" in issue_page


NESTED_SECRETS = """
import os
import sentry_sdk

# From the environment, so the secret is not in the source lines sent too.
SECRET = os.environ["THE_SECRET"]
sentry_sdk.init(os.environ["SENTRY_DSN"])
sentry_sdk.set_context("payment", {"gateway": {"name": "acme", "token": SECRET}})
sentry_sdk.set_extra("job", {"args": [{"password": SECRET}], "queue": "default"})


def connect(settings):
    raise ConnectionError("the database refused the connection")


try:
    connect({"db": {"host": "db1", "password": SECRET}})
except ConnectionError:
    sentry_sdk.capture_exception()
sentry_sdk.flush()
"""


def test_secrets_nested_in_what_sentry_sdk_sends_are_filtered(server, project):
    """sentry-sdk filters only the top level of locals and extra, and not
    contexts at all; the server filters a sensitive key at any depth before
    it stores the event, so neither the API nor the dashboard shows it."""
    env = {"SENTRY_DSN": project.sentry_dsn, "THE_SECRET": "hunter2"}
    run_ok(run_script(sentry_python(), NESTED_SECRETS, env))
    issue = issue_titled(project, "ConnectionError: the database refused the connection")
    [event] = wait_for_events(project, issue["id"], 1)
    assert "hunter2" not in json.dumps(event), json.dumps(event)[:3000]
    settings = json.dumps(frame_named(event, "connect")["vars"]["settings"])
    assert "[filtered]" in settings and "db1" in settings, settings
    assert event["contexts"]["payment"]["gateway"] == {"name": "acme", "token": "[filtered]"}
    assert event["extra"]["job"]["args"] == [{"password": "[filtered]"}]

    dashboard = Dashboard(project)
    for path in [f"/issues/{issue['id']}", f"/issues/{issue['id']}/events/{event['id']}"]:
        page = dashboard.get(path)
        assert "acme" in page and "db1" in page, path
        assert "hunter2" not in page, path
