"""The Alerts page in a real browser (Debian's Chromium through Playwright,
as in test_dashboard_browser.py): add a rule, send a test message, see a
failure next to its channel until a success clears it, edit and delete,
and see on the issue page which alerts it triggered."""

from __future__ import annotations

import re

import pytest

from conftest import Server, create_project
from test_alerts import ALERT_ENV, Receiver, crash, settled, verified
from test_dashboard_browser import browser, page, screenshot, sign_in  # noqa: F401  (fixtures)


@pytest.fixture
def alert_site(tmp_path):
    server = Server(tmp_path / "data", extra_env=ALERT_ENV).start()
    receiver = Receiver()
    yield server, receiver
    receiver.stop()
    server.stop()


def test_the_alerts_page_adds_tests_edits_and_deletes_rules(page, alert_site):  # noqa: F811
    server, receiver = alert_site
    project = create_project(server)
    sign_in(page, server, project.email)
    page.goto(f"{server.url}/projects/{project.org}/{project.slug}")
    page.click("nav.tabs a:has-text('Alerts')")
    page.wait_for_url(re.compile(r".*/alerts$"))
    assert "No rules yet" in page.inner_text("#rules")

    # A refused address is named, and the form keeps what was typed.
    page.fill("#add input[name=name]", "Ops webhook")
    page.select_option("#add select[name=trigger]", "new-issue")
    page.select_option("#add select[name=channel_kind]", "webhook")
    page.fill("#add input[name=channel_url]", "http://169.254.169.254/latest")
    page.click("#add button:has-text('Add rule')")
    assert "channels[0].url" in page.inner_text(".notice.error")
    assert page.input_value("#add input[name=name]") == "Ops webhook"
    # The refusal is a 422 page, which Chromium reports on its console; that
    # one is expected, anything else still fails the test.
    expected = [p for p in page.problems if "422" in p]
    assert len(expected) == 1, page.problems
    page.problems.remove(expected[0])

    page.fill("#add input[name=channel_url]", receiver.url + "/page")
    page.click("#add button:has-text('Add rule')")
    secret = page.input_value("#webhook-secret")
    assert secret.startswith("whsec_")
    rule = page.locator("article.alert-rule")
    assert "Ops webhook" in rule.inner_text() and receiver.url + "/page" in rule.inner_text()

    # A test message that fails shows the failure next to the channel…
    receiver.script["/page"] = [502]
    page.click("article.alert-rule button:has-text('Send a test message')")
    assert "502" in page.inner_text(".notice.error")
    assert "502" in page.inner_text("article.alert-rule td.last-failure")
    # …until one succeeds.
    page.click("article.alert-rule button:has-text('Send a test message')")
    assert "Sent a test message" in page.inner_text(".notice.success")
    assert page.inner_text("article.alert-rule td.last-failure").strip() == "none"
    assert verified(receiver.at("/page")[-1], secret)["type"] == "test"

    # Editing keeps the channel and its secret.
    page.click("article.alert-rule details summary")
    page.fill("article.alert-rule details input[name=environments]", "production, staging")
    page.click("article.alert-rule details button:has-text('Save')")
    assert "environments production, staging" in page.inner_text("article.alert-rule")

    # A new issue alerts, and its page says so.
    assert server.post_event(project.ingest_token, crash("from_the_page")).status == 200
    [delivery] = settled(project, 1)
    assert verified(receiver.at("/page")[-1], secret)["type"] == "issue.new"
    page.goto(f"{server.url}/issues/{delivery['issue']['id']}")
    assert "issue.new → webhook" in page.inner_text("#alerts")
    page.goto(f"{server.url}/projects/{project.org}/{project.slug}/alerts")
    assert "issue.new" in page.inner_text("#deliveries") and "sent" in page.inner_text("#deliveries")
    screenshot(page, "alerts.png")

    page.click("article.alert-rule button:has-text('Delete')")
    page.wait_for_url(re.compile(r".*/alerts$"))
    assert "No rules yet" in page.inner_text("#rules")
