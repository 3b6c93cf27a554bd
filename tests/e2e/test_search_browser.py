"""The issue list's search box in a real browser (Chromium through
Playwright, as in test_dashboard_browser.py): the query goes into the URL,
the list says how many issues match, and a bad query is answered with the
reason next to the box.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from conftest import create_project
from test_dashboard_browser import browser, page, sign_in  # noqa: F401  (fixtures)


def crash(function: str, environment: str, message: str) -> dict:
    return {
        "message": message,
        "exception_type": "RuntimeError",
        "level": "error",
        "stacktrace": [{
            "filename": "/srv/app/shop.py", "function": function, "lineno": 7, "context_line": "fail()",
            "pre_context": [], "post_context": [], "vars": {}, "in_app": True,
        }],
        "exceptions": [],
        "context": {},
        "tags": {"region": "eu-west"},
        "environment": environment,
        "release": "2.4.0",
    }


def test_the_search_box_puts_the_query_in_the_url_and_shows_errors(server, page):
    from playwright.sync_api import expect

    project = create_project(server)
    for function, environment, message in [
        ("checkout", "production", "payment gateway timed out"),
        ("ship", "staging", "no parcels"),
        ("refund", "staging", "card declined"),
    ]:
        assert server.post_event(project.ingest_token, crash(function, environment, message)).status == 200
    project.wait_for_issues(3)
    sign_in(page, server, project.email)
    page.goto(f"{server.url}/projects/{project.org}/{project.slug}")
    expect(page.locator(".match-count")).to_have_text("3 issues match")

    box = page.locator("input[name=query]")
    box.fill("env:staging !refund:x declined")
    box.press("Enter")
    page.wait_for_url(re.compile(r".*query=.*"))
    assert parse_qs(urlparse(page.url).query)["query"] == ["env:staging !refund:x declined"]
    expect(page.locator(".match-count")).to_have_text("1 issue matches")
    expect(page.locator("a.issue-title")).to_have_count(1)
    expect(page.locator("a.issue-title")).to_contain_text("card declined")
    assert box.input_value() == "env:staging !refund:x declined"

    # A bad term: the page says which one and why, next to the box.
    box.fill("env:staging level:loud")
    box.press("Enter")
    page.wait_for_url(re.compile(r".*level%3Aloud.*"))
    error = page.locator(".search-error")
    expect(error).to_contain_text('"level:loud"')
    expect(error).to_contain_text("level must be one of")
    assert box.get_attribute("aria-invalid") == "true"
    assert page.locator("a.issue-title").count() == 0
    # The 400 that carried the message is what this test wants; Chromium logs it.
    page.problems[:] = [p for p in page.problems if "status of 400" not in p]
