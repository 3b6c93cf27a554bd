"""Every dashboard page at a phone's width (390×844) in a real Chromium:
nothing scrolls sideways, with realistic data that used to push pages wide
(a long title, a long URL, nested locals from a Sentry SDK, breadcrumbs).

Uses the browser fixtures of test_dashboard_browser.py: without Chromium or
Playwright the test skips; with BOOBOO_REQUIRE_BROWSER=1 it fails instead.
"""

from __future__ import annotations

import json
import time

from conftest import create_project, http
from payloads import event, frame
from test_dashboard_browser import browser, screenshot, sign_in  # noqa: F401 (browser is a fixture)

WIDTH = 390
LONG_URL = "https://shop.example.com/checkout/" + "/".join(f"segment{n}-with-a-long-name" for n in range(30)) + "?q=" + "x" * 300
LONG_TITLE = "CheckoutFailedBecauseTheInventoryServiceAnsweredWithSomethingUnexpected: " + "no-spaces-here-" * 20


# The outermost elements that reach past the viewport, to name in a failure.
OVERFLOWING = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > %d && e.parentElement.getBoundingClientRect().right <= %d)
  .slice(0, 5).map(e => e.tagName.toLowerCase() + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + e.parentElement.outerHTML.slice(0, 150))""" % (WIDTH, WIDTH)


def sentry_event(project) -> dict:
    nested = {"cart": {"items": [{"sku": "APPLE-" + "1" * 80, "qty": 3, "meta": {"tags": ["a"] * 30}}]}, "note": "y" * 400}
    return {
        "event_id": "a" * 32,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "exception": {"values": [{
            "type": "LookupError", "value": "missing " + "z" * 200,
            "mechanism": {"type": "excepthook", "handled": False},
            "stacktrace": {"frames": [{
                "filename": "/srv/app/" + "deep/" * 20 + "views.py", "function": "checkout", "lineno": 12,
                "context_line": "    raise LookupError(" + "'z' * 200" * 5 + ")", "in_app": True, "vars": nested,
            }]},
        }]},
        "request": {"url": LONG_URL, "method": "POST", "headers": {"User-Agent": "Mozilla/5.0 " + "Gecko/" * 40}},
        "breadcrumbs": {"values": [{"timestamp": time.time() - 2.1, "category": "http", "message": "GET " + LONG_URL}]},
        "extra": {"payload": nested},
        "tags": {"url": LONG_URL[:190], "region": "eu-west"},
        "user": {"email": "someone-with-a-very-long-address-" + "q" * 60 + "@example.com"},
    }


def send_sentry(project, body: dict) -> None:
    project_id = project.sentry_dsn.rstrip("/").rsplit("/", 1)[1]
    key = project.sentry_dsn.split("://", 1)[1].split("@", 1)[0]
    r = http("POST", f"{project.server.url}/api/{project_id}/store/", json.dumps(body).encode(),
             {"Content-Type": "application/json", "X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7"})
    assert r.status == 200, r.body


def test_no_page_scrolls_sideways_at_390_px(server, browser):  # noqa: F811
    project = create_project(server, slug="a-project-with-a-rather-long-name-for-a-phone")
    server.run_cli("member", "add", project.org, project.email, "--role", "admin")
    long = event(message=LONG_TITLE, exception_type="CheckoutFailed",
                 exceptions=[{"type": "CheckoutFailed", "value": LONG_TITLE, "stacktrace": [frame()], "chain_type": None}],
                 request={"method": "GET", "url": LONG_URL, "headers": {}, "query_string": "q=" + "x" * 300},
                 tags={"url": LONG_URL[:190]})
    assert server.post_event(project.ingest_token, long).status == 200
    send_sentry(project, sentry_event(project))
    issues = project.wait_for_issues(2)
    sentry_issue = next(i for i in issues if i["title"].startswith("LookupError"))

    context = browser.new_context(viewport={"width": WIDTH, "height": 844})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    try:
        page.goto(server.url + "/signin")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH, f"/signin is {width} px wide"
        sign_in(page, server, project.email)
        base = f"/projects/{project.org}/{project.slug}"
        paths = [
            "/projects",
            base,
            f"{base}/setup",
            f"{base}/settings",
            f"{base}/alerts",
            f"/issues/{sentry_issue['id']}",
            *[f"/issues/{i['id']}" for i in issues if i["id"] != sentry_issue["id"]],
            "/settings",
            f"/settings/orgs/{project.org}",
        ]
        events = project.events(sentry_issue["id"])
        paths.append(f"/issues/{sentry_issue['id']}/events/{events[0]['event_id']}")
        wide = {}
        for n, path in enumerate(paths):
            page.goto(server.url + path)
            assert page.url.endswith(path), f"{path} led to {page.url}"
            screenshot(page, f"mobile-{n:02}.png")
            # Open every fold, so what a reader can unfold is measured too.
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > WIDTH:
                wide[path] = (width, page.evaluate(OVERFLOWING))
        assert not wide, f"pages wider than {WIDTH} px: {wide}"
        # The Sentry event reads as a tree, marked unhandled, with a readable breadcrumb time.
        page.goto(server.url + f"/issues/{sentry_issue['id']}")
        assert page.locator(".issue-head .handled-mark").inner_text() == "unhandled"
        assert page.locator("details.tree").count() >= 2
        assert "before the error" in page.inner_text(".crumbs-table")
    finally:
        context.close()
    assert not problems, "\n".join(problems)
