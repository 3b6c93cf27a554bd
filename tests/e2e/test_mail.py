"""E-mail against a real SMTP server on loopback (aiosmtpd): password resets
and invitations (docs/security.md, "Accounts and links"), and the mail
settings (`--smtp-url`, `--email-from`, `booboo email test`).
"""

from __future__ import annotations

import html
import re
import ssl
import subprocess
import time

import pytest

from conftest import BIN, Server, create_project, free_port
from smtp_receiver import SmtpReceiver
from test_accounts import PASSWORD, Browser, csrf_of, new_user


def invitation_link_in(page: str) -> bool:
    """Whether a page shows an invitation's link (`/invitations/TOKEN`); the
    members page's own revoke form (`…/invitations/revoke`) is not one."""
    return re.search(r"/invitations/(?!revoke\b)[^\s\"'<]+", page) is not None

FROM = "booboo <booboo@example.com>"


def mail_server(tmp_path, smtp_url: str) -> Server:
    return Server(tmp_path / "data", extra_env={"BOOBOO_SMTP_URL": smtp_url, "BOOBOO_EMAIL_FROM": FROM}).start()


@pytest.fixture
def server(tmp_path, smtp):
    s = mail_server(tmp_path, smtp.url)
    yield s
    s.stop()


def wait_for_log(server: Server, text: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{server.log()[-3000:]}"
        time.sleep(0.05)


def link_in(text: str, server: Server, kind: str) -> str:
    # HTML parts and pages escape `/` as `&#x2f;`, as browsers and mail clients read.
    found = re.findall(re.escape(server.url) + rf"/{kind}/[0-9a-f]+", html.unescape(text))
    assert found, f"no /{kind}/ link in:\n{text}"
    return found[0][len(server.url):]


def ask_for_reset(browser: Browser, email: str):
    return browser.post("/forgot-password", {"csrf": browser.form_csrf("/forgot-password"), "email": email})


def test_a_forgotten_password_is_reset_through_an_emailed_link(server, smtp):
    email = new_user(server, "forgetful@example.com")
    old_session = Browser(server)
    assert old_session.sign_in(email).status == 303
    assert old_session.get("/settings").status == 200

    visitor = Browser(server)
    assert 'href="/forgot-password"' in visitor.get("/signin").body
    answer = ask_for_reset(visitor, email)
    assert answer.status == 200, answer
    assert "If an account uses forgetful@example.com" in answer.body

    [mail] = smtp.wait_for(email)
    assert mail.message["From"] == FROM and mail.message["To"] == email
    assert mail.message.get_content_type() == "multipart/alternative"
    path = link_in(mail.part("text/plain"), server, "password")
    assert path == link_in(mail.part("text/html"), server, "password"), "both parts carry the same link"

    page = visitor.get(path)
    assert page.status == 200 and email in page.body
    new_password = "a brand new password"
    answer = visitor.post(path, {"csrf": csrf_of(page.body), "password": new_password, "password_repeat": new_password})
    assert (answer.status, answer.location) == (303, "/projects"), answer

    assert old_session.get("/settings").status != 200, "the sessions from before the reset end"
    assert visitor.get(path).status == 404, "the link works once"
    assert Browser(server).sign_in(email).status == 401, "the old password no longer works"
    assert Browser(server).sign_in(email, new_password).status == 303


def test_the_answer_never_says_whether_an_account_exists(server, smtp):
    known = new_user(server, "known@example.com")
    unknown = "nobody-here@example.com"
    answers = [ask_for_reset(Browser(server), address) for address in (unknown, known)]
    assert answers[0].status == answers[1].status == 200
    assert answers[0].body.replace(unknown, "ADDRESS") == answers[1].body.replace(known, "ADDRESS")
    smtp.wait_for(known)
    # The unknown address's task logs once it has looked and sent nothing.
    wait_for_log(server, "password reset asked for an address without an account; nothing sent")
    assert smtp.to(unknown) == []


def test_reset_emails_are_limited_per_account_and_per_address(server, smtp):
    email = new_user(server, "popular@example.com")
    # From different addresses: three at once, then one every 20 minutes.
    for _ in range(4):
        assert ask_for_reset(Browser(server), email).status == 200
    smtp.wait_for(email, 4)
    answer = ask_for_reset(Browser(server), email)
    assert answer.status == 200 and "If an account uses popular@example.com" in answer.body, "the same answer"
    wait_for_log(server, "password-reset e-mail held back")
    assert len(smtp.to(email)) == 4

    # One address asking about many accounts is stopped after ten.
    visitor = Browser(server)
    for n in range(10):
        assert ask_for_reset(visitor, f"someone{n}@example.com").status == 200
    answer = ask_for_reset(visitor, "someone-else@example.com")
    assert answer.status == 429, answer
    assert int(answer.headers["retry-after"]) > 0
    assert "Too many password-reset requests" in answer.body


def test_an_org_admin_invites_by_email_without_seeing_the_link(server, smtp):
    project = create_project(server)
    admin = new_user(server, "org-admin@example.com")
    server.run_cli("member", "add", project.org, admin, "--role", "admin")
    browser = Browser(server)
    assert browser.sign_in(admin).status == 303
    members = f"/settings/orgs/{project.org}"
    page = browser.get(members)
    invited = "newcomer@example.com"
    answer = browser.post(members + "/members", {"csrf": csrf_of(page.body), "email": invited, "role": "member"})
    assert answer.status == 200, answer
    assert f"on its way to {invited}" in answer.body
    assert not invitation_link_in(answer.body), "an org admin never sees the link"

    [mail] = smtp.wait_for(invited)
    assert project.org in mail.message["Subject"]
    assert admin in mail.part("text/plain") and admin in mail.part("text/html")
    path = link_in(mail.part("text/plain"), server, "invitations")
    newcomer = Browser(server)
    page = newcomer.get(path)
    assert page.status == 200
    answer = newcomer.post(path, {"csrf": csrf_of(page.body), "password": PASSWORD, "password_repeat": PASSWORD})
    assert (answer.status, answer.location) == (303, "/projects"), answer
    assert project.org in newcomer.get("/projects").body
    assert Browser(server).sign_in(invited).status == 303


def test_an_instance_admin_gets_the_invitation_emailed_and_shown(server, smtp):
    project = create_project(server)
    admin = new_user(server, "root@example.com", admin=True)
    browser = Browser(server)
    assert browser.sign_in(admin).status == 303
    members = f"/settings/orgs/{project.org}"
    page = browser.get(members)
    invited = "shown@example.com"
    answer = browser.post(members + "/members", {"csrf": csrf_of(page.body), "email": invited, "role": "admin"})
    assert answer.status == 200 and f"was e-mailed to {invited}" in answer.body, answer
    shown = link_in(answer.body, server, "invitations")
    [mail] = smtp.wait_for(invited)
    assert link_in(mail.part("text/plain"), server, "invitations") == shown


def test_invitation_emails_are_limited_per_sender_and_per_recipient(server, smtp):
    project = create_project(server)
    admin = new_user(server, "busy-admin@example.com")
    server.run_cli("member", "add", project.org, admin, "--role", "admin")
    browser = Browser(server)
    assert browser.sign_in(admin).status == 303
    members = f"/settings/orgs/{project.org}"

    def invite(address: str):
        page = browser.get(members)
        return browser.post(members + "/members", {"csrf": csrf_of(page.body), "email": address, "role": "member"})

    # One address: three at once, then one every 20 minutes.
    for _ in range(4):
        assert invite("wanted@example.com").status == 200
    answer = invite("wanted@example.com")
    assert answer.status == 429 and "wanted@example.com was sent several invitations" in answer.body, answer
    assert len(smtp.wait_for("wanted@example.com", 4)) == 4
    # One sender: twenty an hour (four sent above), whoever they go to.
    for n in range(16):
        assert invite(f"guest{n}@example.com").status == 200
    answer = invite("one-too-many@example.com")
    assert answer.status == 429 and "You sent many invitations" in answer.body, answer
    assert smtp.to("one-too-many@example.com") == []


def test_a_refusing_mail_server_is_told_apart_from_a_busy_one(server, smtp):
    smtp.refuse["gone@example.com"] = "550 5.1.1 no such mailbox"
    smtp.refuse["later@example.com"] = "451 4.3.0 try again later"
    env = {"BOOBOO_EMAIL_FROM": FROM, "BOOBOO_SMTP_URL": smtp.url}
    gone = server.run_cli("email", "test", "--to", "gone@example.com", check=False, env=env)
    assert gone.returncode != 0 and "refused the message" in gone.stderr and "550" in gone.stderr, gone.stderr
    later = server.run_cli("email", "test", "--to", "later@example.com", check=False, env=env)
    assert later.returncode != 0 and "temporary failure" in later.stderr and "451" in later.stderr, later.stderr

    # In the dashboard: a refused invitation is the request's problem (422), a
    # busy server may take it later (503); neither shows the link.
    project = create_project(server)
    admin = new_user(server, "picky-admin@example.com")
    server.run_cli("member", "add", project.org, admin, "--role", "admin")
    browser = Browser(server)
    assert browser.sign_in(admin).status == 303
    members = f"/settings/orgs/{project.org}"
    for address, status in [("gone@example.com", 422), ("later@example.com", 503)]:
        page = browser.get(members)
        answer = browser.post(members + "/members", {"csrf": csrf_of(page.body), "email": address, "role": "member"})
        assert answer.status == status and "could not be e-mailed" in answer.body, answer
        assert not invitation_link_in(answer.body)
    assert smtp.messages == []


def test_an_unreachable_mail_server_never_breaks_the_pages(tmp_path):
    closed = free_port()  # nothing listens here
    server = mail_server(tmp_path, f"smtp://127.0.0.1:{closed}")
    try:
        email = new_user(server, "stranded@example.com")
        answer = ask_for_reset(Browser(server), email)
        assert answer.status == 200 and "If an account uses" in answer.body
        wait_for_log(server, "password-reset e-mail not sent")
        assert f"cannot send through the SMTP server 127.0.0.1:{closed}" in server.log()

        project = create_project(server)
        admin = new_user(server, "lonely-admin@example.com")
        server.run_cli("member", "add", project.org, admin, "--role", "admin")
        browser = Browser(server)
        assert browser.sign_in(admin).status == 303
        members = f"/settings/orgs/{project.org}"
        page = browser.get(members)
        answer = browser.post(members + "/members", {"csrf": csrf_of(page.body), "email": "x@example.com", "role": "member"})
        assert answer.status == 503, answer
        assert "could not be e-mailed" in answer.body and not invitation_link_in(answer.body)
        wait_for_log(server, "invitation e-mail not sent")
    finally:
        server.stop()


def test_starttls_required_refuses_a_server_without_it(tmp_path, smtp):
    server = Server(tmp_path / "data")  # for its environment and CLI; not started
    env = {"BOOBOO_EMAIL_FROM": FROM}
    required = server.run_cli(
        "email", "test", "--to", "ops@example.com", check=False, env={**env, "BOOBOO_SMTP_URL": smtp.url + "?starttls=required"}
    )
    assert required.returncode != 0
    assert "does not offer STARTTLS" in required.stderr and "?starttls=required" in required.stderr, required.stderr
    assert smtp.to("ops@example.com") == []

    # Without the demand, the same server gets the message in plain text.
    sent = server.run_cli("email", "test", "--to", "ops@example.com", env={**env, "BOOBOO_SMTP_URL": smtp.url})
    assert "Sent a test e-mail to ops@example.com" in sent.stdout
    [mail] = smtp.wait_for("ops@example.com")
    assert mail.message["Subject"] == "booboo test e-mail"


def test_starttls_with_a_certificate_nobody_vouches_for_is_refused(tmp_path):
    # A server that offers STARTTLS with a self-signed certificate: booboo
    # upgrades (asked to or not) and refuses the certificate rather than
    # send in plain text or to an impostor.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Server(tmp_path / "data")  # for its environment and CLI; not started
    with SmtpReceiver(tls_context=context) as smtp:
        for query in ("?starttls=required", ""):
            result = server.run_cli(
                "email", "test", "--to", "ops@example.com", check=False,
                env={"BOOBOO_EMAIL_FROM": FROM, "BOOBOO_SMTP_URL": smtp.url + query},
            )
            assert result.returncode != 0, result.stdout
            assert f"TLS with the SMTP server 127.0.0.1:{smtp.port} failed" in result.stderr, result.stderr
            assert "certificate" in result.stderr.lower(), result.stderr
        assert smtp.messages == []


def test_bad_mail_settings_stop_the_start_and_the_password_is_never_shown(tmp_path):
    env = {"BOOBOO_DATA_DIR": str(tmp_path / "data"), "BOOBOO_EMAIL_FROM": FROM}
    for smtp_url, expected in [
        ("mail.example.com:587", "--smtp-url"),
        ("smtp://u:hunter22@mail.example.com?starttls=maybe", "--smtp-url"),
    ]:
        result = subprocess.run(
            [str(BIN), "--bind", f"127.0.0.1:{free_port()}", "serve"],
            env={**env, "BOOBOO_SMTP_URL": smtp_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and expected in result.stderr, result.stderr
        assert "hunter22" not in result.stderr
    shown = subprocess.run(
        [str(BIN), "config", "show"],
        env={**env, "BOOBOO_SMTP_URL": "smtp://mailer:hunter22@mail.example.com:587"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "smtp_url = smtp://mailer:[redacted]@mail.example.com:587" in shown.stdout
    assert "hunter22" not in shown.stdout


def test_without_mail_there_is_no_reset_link(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        new_user(server, "someone@example.com")
        visitor = Browser(server)
        assert "/forgot-password" not in visitor.get("/signin").body
        answer = visitor.get("/forgot-password")
        assert answer.status == 404 and "booboo user reset-link" in answer.body
    finally:
        server.stop()
