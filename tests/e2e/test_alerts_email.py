"""E-mail alerts end to end: the real binary sends through a real SMTP server
on loopback (aiosmtpd, `tests/e2e/smtp_receiver.py`). A new project gets the
default rules (new issues and regressions to the organisation's members),
members can stop them per project in their settings, and the per-recipient
cap holds back what is over it."""

from __future__ import annotations

import re

import pytest

from conftest import Server, create_project
from test_accounts import PASSWORD, Browser, csrf_of
from payloads import frame
from test_alerts import ALERT_ENV, crash, deliveries, settled, wait_until

FROM = "booboo <booboo@example.com>"


@pytest.fixture
def mail_server(tmp_path, smtp):
    env = {**ALERT_ENV, "BOOBOO_SMTP_URL": smtp.url, "BOOBOO_EMAIL_FROM": FROM, "BOOBOO_ALERT_EMAIL_CAP": "2"}
    server = Server(tmp_path / "data", extra_env=env).start()
    yield server
    server.stop()


def test_new_projects_email_their_members_who_can_opt_out_and_the_cap_holds_back_the_rest(mail_server, smtp):
    project = create_project(mail_server)
    rules = project.api(f"/projects/{project.org}/{project.slug}/alert-rules")["items"]
    assert sorted(r["trigger"] for r in rules) == ["new-issue", "regression"]
    assert all(r["channels"][0] == {**r["channels"][0], "kind": "email", "to": "members"} for r in rules)

    # A second member, who stops this project's alert e-mails in settings.
    quiet = "quiet@example.com"
    mail_server.run_cli("user", "create", "--email", quiet, input=PASSWORD + "\n")
    mail_server.run_cli("member", "add", project.org, quiet)
    browser = Browser(mail_server)
    assert browser.sign_in(quiet).status == 303
    settings = browser.get("/settings").body
    project_id = project.api("/projects")["items"][0]["id"]
    answer = browser.post(f"/settings/alert-emails/{project_id}", {"csrf": csrf_of(settings), "alert_emails": "stop"})
    assert answer.status == 200 and "no longer get alert e-mails" in answer.body

    assert mail_server.post_event(project.ingest_token, crash("mailed", message="the <b>cart</b> broke", exceptions=[
        {"type": "ValueError", "value": "the <b>cart</b> broke", "stacktrace": [frame(function="mailed")], "chain_type": None}
    ])).status == 200
    [message] = smtp.wait_for(project.email)
    subject = str(message.message["Subject"])
    assert "New issue in" in subject and project.slug in subject
    text, html = message.part("text/plain"), message.part("text/html")
    issue_id = project.issues()[0]["id"]
    assert f"{mail_server.url}/issues/{issue_id}" in text and "Environment: production" in text
    assert "mailed" in text  # the stack excerpt names the crashing function
    assert "&lt;b&gt;cart&lt;/b&gt;" in html and "<b>cart</b>" not in html
    settled(project, 1)
    assert smtp.to(quiet) == []

    # The cap (2 an hour here): the second alert is sent, the third held back
    # for the hourly digest and not e-mailed now.
    for function in ("second", "third"):
        assert mail_server.post_event(project.ingest_token, crash(function)).status == 200
    deliveries = settled(project, 3)
    assert all(d["status"] == "sent" for d in deliveries)
    assert len(smtp.to(project.email)) == 2


def test_email_rules_are_refused_without_smtp_with_how_to_configure_it(tmp_path):
    server = Server(tmp_path / "data", extra_env=ALERT_ENV).start()
    try:
        project = create_project(server)
        assert project.api(f"/projects/{project.org}/{project.slug}/alert-rules")["items"] == []
        result = server.run_cli("alert", "add", f"{project.org}/{project.slug}", "--on", "new-issue", "--email-members", check=False)
        assert result.returncode != 0 and "--smtp-url" in result.stderr and "--email-from" in result.stderr
    finally:
        server.stop()


def test_a_refused_recipient_is_retried_alone_and_the_others_get_one_email(mail_server, smtp):
    project = create_project(mail_server)
    picky, patient = "picky@example.com", "patient@example.com"
    for address in (picky, patient):
        mail_server.run_cli("user", "create", "--email", address, input=PASSWORD + "\n")
        mail_server.run_cli("member", "add", project.org, address)
    smtp.refuse[picky] = "550 5.1.1 no such mailbox (yet)"

    assert mail_server.post_event(project.ingest_token, crash("fan_out")).status == 200
    # One delivery per recipient: the refused one fails and waits to retry.
    def refused():
        items = deliveries(project)
        failed = [d for d in items if d["attempts"] >= 1 and picky in (d["last_error"] or "")]
        return items if failed else None
    items = wait_until(refused, "the refused recipient's failed attempt", mail_server)
    assert sorted(d["recipient"] for d in items) == sorted([project.email, picky, patient])
    del smtp.refuse[picky]

    settled_items = settled(project, 3)
    assert all(d["status"] == "sent" for d in settled_items), settled_items
    [retried] = [d for d in settled_items if d["recipient"] == picky]
    assert retried["attempts"] >= 2
    assert [len(smtp.to(a)) for a in (project.email, patient, picky)] == [1, 1, 1]


def test_the_cap_holds_back_what_is_over_it_and_one_digest_lists_it_when_the_period_ends(tmp_path, smtp):
    # Cap 2 per 20-second period (the documented --alert-email-period, an
    # hour by default), so the digest comes within the test; 20 s leaves the
    # five alerts ample time to fall in one period on a busy machine.
    env = {**ALERT_ENV, "BOOBOO_SMTP_URL": smtp.url, "BOOBOO_EMAIL_FROM": FROM,
           "BOOBOO_ALERT_EMAIL_CAP": "2", "BOOBOO_ALERT_EMAIL_PERIOD": "20"}
    server = Server(tmp_path / "data", extra_env=env).start()
    try:
        project = create_project(server)
        functions = [f"held_{n}" for n in range(5)]
        for function in functions:
            assert server.post_event(project.ingest_token, crash(function)).status == 200
        settled(project, 5)
        issues = {i["id"]: i for i in project.wait_for_issues(5)}
        urls = {f"{server.url}/issues/{i}" for i in issues}
        alerts = smtp.wait_for(project.email, 2)
        assert all("New issue in" in str(m.message["Subject"]) for m in alerts)

        # The digest, once the period is over: one e-mail listing the three
        # alerts held back, and nothing more.
        received = smtp.wait_for(project.email, 3, timeout=90)
        assert len(received) == 3, [str(m.message["Subject"]) for m in received]
        digest = received[2]
        assert str(digest.message["Subject"]) == "[booboo] 3 more alerts held back in the last 20 seconds"
        text = digest.part("text/plain")
        assert "at most 2 alert e-mails per 20 seconds" in text
        lines = text.splitlines()
        listed = {u for u in urls if any(line.startswith("- ") and line.endswith(" " + u) for line in lines)}
        mailed = {u for u in urls if any(re.search(re.escape(u) + r"\b", m.part("text/plain")) for m in alerts)}
        assert len(listed) == 3 and len(mailed) == 2 and listed | mailed == urls, (text, mailed)
    finally:
        server.stop()
