"""Resolving in a release in a real browser (Chromium through Playwright,
as in test_dashboard_browser.py): bulk resolve behind its confirmation,
the issue page's release choice and what it says, and a crash from the
fixed release bringing the issue back as a regression."""

from __future__ import annotations

import time

from conftest import create_project
from test_dashboard_browser import CRASH, OTHER_CRASH, browser, page, run_crash, sign_in  # noqa: F401


def wait_for_count(project, total: int) -> list:
    deadline = time.monotonic() + 20
    while True:
        issues = project.issues()
        if sum(i["count"] for i in issues) >= total or time.monotonic() > deadline:
            assert sum(i["count"] for i in issues) >= total, issues
            return issues
        time.sleep(0.1)


def test_resolving_in_a_release_from_the_list_and_the_issue_page(server, page):
    project = create_project(server)
    run_crash(CRASH, project.dsn, "production", "1.3.9")
    run_crash(OTHER_CRASH, project.dsn, "production", "1.3.9")
    wait_for_count(project, 2)
    sign_in(page, server, project.email)

    # Bulk: the buttons lead to a confirmation with the issue page's choices.
    list_url = f"{server.url}/projects/{project.org}/{project.slug}"
    page.goto(list_url)
    for box in page.locator("input[name=issue]").all():
        box.check()
    page.click("button:has-text('Resolve…')")
    assert page.inner_text("h1") == "Resolve 2 issues?"
    assert [i["status"] for i in project.issues()] == ["unresolved", "unresolved"]
    page.select_option("select[name=resolved_in]", "next_release")
    page.click("button:has-text('Resolve 2 issues')")
    page.wait_for_url(list_url)
    issues = project.issues()
    assert {i["status"] for i in issues} == {"resolved"}
    assert all(i["resolved_in"] == {"kind": "next_release", "release": "1.3.9"} for i in issues), issues

    # The issue page says so, and resolves again in a named release.
    crash = next(i for i in issues if "durian" in i["title"])
    page.goto(f"{server.url}/issues/{crash['id']}")
    assert page.inner_text(".resolved-in") == "Resolved in the next release (after 1.3.9)"
    page.select_option("select[name=resolved_in]", "release")
    page.fill("input[name=release]", "1.4.0")
    page.click("button:has-text('Resolve again')")
    page.wait_for_url(f"{server.url}/issues/{crash['id']}")
    assert page.inner_text(".resolved-in") == "Resolved in 1.4.0"

    # A crash from the old release changes nothing; one from 1.4.0 is back.
    run_crash(CRASH, project.dsn, "production", "1.3.9")
    wait_for_count(project, 3)
    page.reload()
    assert page.inner_text(".status-badge") == "resolved"
    assert page.locator(".issue-head .badge.regression").count() == 0
    run_crash(CRASH, project.dsn, "production", "1.4.0")
    wait_for_count(project, 4)
    page.reload()
    assert page.inner_text(".status-badge") == "unresolved"
    assert page.locator(".issue-head .badge.regression").count() == 1
    assert page.locator(".resolved-in").count() == 0
