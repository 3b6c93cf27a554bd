"""Accounts, links, sign-in limits and redirects against the real binary
(docs/security.md, "Accounts and links" and "Sign-in and redirects").

Requests carry `X-Forwarded-For` (the server trusts 127.0.0.1 as a proxy by
default), so each test signs in from addresses of its own and the
per-address limits of one test never touch another's.
"""

from __future__ import annotations

import http.client
import itertools
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlencode, urlsplit

import pytest

from conftest import Server, create_project, http as plain_http


def invitation_link_in(page: str) -> bool:
    """Whether a page shows an invitation's link (`/invitations/TOKEN`); the
    members page's own revoke form (`…/invitations/revoke`) is not one."""
    return re.search(r"/invitations/(?!revoke\b)[^\s\"'<]+", page) is not None

PASSWORD = "correct horse battery"
_addresses = itertools.count(1)


def new_address() -> str:
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


@dataclass
class Answer:
    status: int
    headers: dict
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


class Browser:
    """Cookies and a client address; never follows redirects, so every
    `Location` is seen as the server sent it."""

    def __init__(self, server: Server, address: str | None = None):
        self.server = server
        self.address = address or new_address()
        self.cookies: dict[str, str] = {}
        self.lock = threading.Lock()

    def request(self, method: str, path: str, fields: dict | None = None) -> Answer:
        headers = {"X-Forwarded-For": self.address}
        with self.lock:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            data = response.read().decode(errors="replace")
            pairs = response.getheaders()
        finally:
            connection.close()
        with self.lock:
            for name, value in pairs:
                if name.lower() == "set-cookie":
                    key, _, val = value.split(";", 1)[0].partition("=")
                    if val:
                        self.cookies[key] = val
                    else:
                        self.cookies.pop(key, None)
        return Answer(response.status, {k.lower(): v for k, v in pairs}, data)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, fields: dict) -> Answer:
        return self.request("POST", path, fields)

    def form_csrf(self, path: str = "/signin") -> str:
        return csrf_of(self.get(path).body)

    def sign_in(self, email: str, password: str = PASSWORD, next_path: str | None = None, csrf: str | None = None) -> Answer:
        fields = {"csrf": csrf or self.form_csrf(), "email": email, "password": password}
        if next_path is not None:
            fields["next"] = next_path
        return self.post("/signin", fields)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, f"no CSRF field in:\n{page[:2000]}"
    return found.group(1)


def metric(server: Server, line_start: str) -> int:
    text = plain_http("GET", server.url + "/metrics").body.decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith(line_start))


def new_user(server: Server, email: str, admin: bool = False) -> str:
    server.run_cli("user", "create", "--email", email, *(["--admin"] if admin else []), input=PASSWORD + "\n")
    return email


# --- Sign-in and redirects ------------------------------------------------------

OFF_SITE = ["/%09/evil.example/", "//evil.example/", "/%5C/evil.example/", "/%0d%0a/evil.example/", "https://evil.example/", "/%E2%80%8B/x"]


def test_sign_in_and_issue_actions_only_redirect_to_this_server(server):
    project = create_project(server)
    for next_path in OFF_SITE:
        # The sign-in form carries `next` decoded, as the browser posts it.
        visitor = Browser(server)
        answer = visitor.sign_in(project.email, next_path=unquote(next_path))
        assert (answer.status, answer.location) == (303, "/projects"), (next_path, answer)
        # Signed in already, the sign-in page redirects at once.
        answer = visitor.get(f"/signin?next={next_path}")
        assert (answer.status, answer.location) == (303, "/projects"), (next_path, answer)
    visitor = Browser(server)
    assert visitor.sign_in(project.email, next_path="/settings").location == "/settings", "a path here is followed"

    assert server.post_event(project.ingest_token, {"message": "boom", "exception_type": "ValueError"}).status == 200
    issue = project.wait_for_issues(1)[0]["id"]
    page = visitor.get(f"/issues/{issue}")
    for back in ["/\t/evil.example/", "//evil.example/", "/\\evil.example/", "/\r\n/evil.example/"]:
        answer = visitor.post(f"/issues/{issue}/status", {"csrf": csrf_of(page.body), "status": "resolved", "back": back})
        assert (answer.status, answer.location) == (303, f"/issues/{issue}"), (back, answer)


def guess_in_parallel(server: Server, attempts: list[tuple[str, str, str]]) -> list[Answer]:
    """(address, email, password) sign-ins, all at once."""
    browsers = {}
    for address, _, _ in attempts:
        if address not in browsers:
            browsers[address] = Browser(server, address)
            browsers[address].csrf = browsers[address].form_csrf()
    barrier = threading.Barrier(len(attempts))

    def attempt(a):
        address, email, password = a
        barrier.wait()
        b = browsers[address]
        return b.post("/signin", {"csrf": b.csrf, "email": email, "password": password})

    with ThreadPoolExecutor(len(attempts)) as pool:
        return list(pool.map(attempt, attempts))


def assert_at_most_ten_checks_per_address(server: Server):
    address = new_address()
    refused_before = metric(server, 'booboo_sign_ins_refused_total{limit="address"}')
    answers = guess_in_parallel(server, [(address, f"guess{n}@example.com", "wrong password") for n in range(60)])
    statuses = sorted(a.status for a in answers)
    checked = statuses.count(401)
    assert 1 <= checked <= 10, statuses
    assert statuses.count(429) == 60 - checked, statuses
    for answer in answers:
        if answer.status == 429:
            assert 1 <= int(answer.headers["retry-after"]) <= 900, answer.headers
            assert "Too many failed sign-ins from your network address" in answer.body
    assert metric(server, 'booboo_sign_ins_refused_total{limit="address"}') - refused_before == 60 - checked
    # The address stays limited, even for a right password…
    user = new_user(server, f"addr{next(_addresses)}@example.com")
    assert Browser(server, address).sign_in(user).status == 429
    # …while anyone elsewhere signs in as usual.
    assert Browser(server).sign_in(user).status == 303


def test_sixty_parallel_guesses_from_one_address_get_at_most_ten_checks(server):
    assert_at_most_ten_checks_per_address(server)


def test_sixty_parallel_guesses_get_at_most_ten_checks_on_postgres(tmp_path, pg_database_url):
    pg = Server(tmp_path / "data", extra_env={"BOOBOO_DATABASE_URL": pg_database_url}).start()
    try:
        assert_at_most_ten_checks_per_address(pg)
    finally:
        pg.stop()


def test_a_slowed_account_still_lets_its_owner_in(server):
    email = new_user(server, f"owner{next(_addresses)}@example.com")
    attacker = Browser(server)
    for _ in range(5):
        assert attacker.sign_in(email, "wrong password").status == 401
    # Slowed now: from many addresses at once, about one check a second.
    started = time.monotonic()
    answers = guess_in_parallel(server, [(new_address(), email, "wrong password") for _ in range(12)])
    elapsed = time.monotonic() - started
    checked = sum(a.status == 401 for a in answers)
    assert checked <= 1 + int(elapsed), f"{checked} checks in {elapsed:.1f} s"
    for answer in answers:
        if answer.status != 401:
            # One second, or two when its `now` was read just before another
            # request's took the lock and moved the next check on.
            assert answer.status == 429 and answer.headers["retry-after"] in ("1", "2"), answer
            assert "one attempt per second" in answer.body
    # No lockout: the owner, from another address, waits as told and gets in.
    owner = Browser(server)
    csrf = owner.form_csrf()
    for _ in range(5):
        answer = owner.sign_in(email, csrf=csrf)
        if answer.status == 303:
            break
        assert answer.status == 429, answer
        time.sleep(int(answer.headers["retry-after"]))
    assert answer.status == 303 and "booboo_session" in owner.cookies, answer


# --- Accounts and links ------------------------------------------------------------


def test_organisation_admins_cannot_create_accounts_or_see_links(server):
    project = create_project(server)
    server.run_cli("member", "add", project.org, project.email, "--role", "admin")
    admin = Browser(server)
    assert admin.sign_in(project.email).status == 303
    members = f"/settings/orgs/{project.org}/members"
    victim = f"victim{next(_addresses)}@example.com"
    csrf = csrf_of(admin.get(f"/settings/orgs/{project.org}").body)
    for extra in [{"method": "password", "password": "attacker's pick", "password_repeat": "attacker's pick"}, {"method": "invite"}]:
        answer = admin.post(members, {"csrf": csrf, "email": victim, "role": "member", **extra})
        assert answer.status == 422, answer
        assert "only instance administrators create accounts" in answer.body.replace("&#x2f;", "/")
        assert not invitation_link_in(answer.body)
    # No account came of it: the attacker's password opens nothing.
    assert Browser(server).sign_in(victim, "attacker's pick").status == 401
    refused = server.run_cli("member", "add", project.org, victim, check=False)
    assert refused.returncode != 0 and "no user with the email" in refused.stderr

    # An instance administrator may: the link is theirs to pass on, and
    # the invited person chooses the password, once.
    root = new_user(server, f"root{next(_addresses)}@example.com", admin=True)
    operator = Browser(server)
    assert operator.sign_in(root).status == 303
    csrf = csrf_of(operator.get(f"/settings/orgs/{project.org}").body)
    answer = operator.post(members, {"csrf": csrf, "email": victim, "role": "member"})
    text = answer.body.replace("&#x2f;", "/")
    link = re.search(r"/invitations/[0-9a-f]{64}", text).group(0)
    invited = Browser(server)
    form = invited.get(link)
    assert form.status == 200 and victim in form.body
    joined = invited.post(link, {"csrf": csrf_of(form.body), "password": "their own choice", "password_repeat": "their own choice"})
    assert (joined.status, joined.location) == (303, "/projects")
    assert Browser(server).get(link).status == 404, "used once"
    assert Browser(server).sign_in(victim, "their own choice").status == 303


def test_the_operator_sets_a_password_and_makes_one_time_reset_links(server):
    email = new_user(server, f"reset{next(_addresses)}@example.com")
    signed_in = Browser(server)
    assert signed_in.sign_in(email).status == 303
    done = server.run_cli("user", "set-password", "--email", email, input="a brand new password\n")
    assert "signed out" in done.stdout
    assert signed_in.get("/settings").status == 303, "their sessions ended"
    assert Browser(server).sign_in(email).status == 401
    assert Browser(server).sign_in(email, "a brand new password").status == 303
    short = server.run_cli("user", "set-password", "--email", email, input="short\n", check=False)
    assert short.returncode != 0 and "at least 8 characters" in short.stderr

    lines = server.run_cli("user", "reset-link", "--email", email).stdout.strip().splitlines()
    assert "works once, for 7 days" in lines[0]
    link = urlsplit(lines[-1]).path
    assert re.fullmatch(r"/password/[0-9a-f]{64}", link), lines
    owner = Browser(server)
    form = owner.get(link)
    assert form.status == 200 and email in form.body
    csrf = csrf_of(form.body)
    differ = owner.post(link, {"csrf": csrf, "password": "chosen by me", "password_repeat": "chosen by mee"})
    assert differ.status == 422 and "differ" in differ.body
    chosen = owner.post(link, {"csrf": csrf, "password": "chosen by me", "password_repeat": "chosen by me"})
    assert (chosen.status, chosen.location) == (303, "/projects")
    assert owner.get("/settings").status == 200, "signed in by the link"
    again = Browser(server).get(link)
    assert again.status == 404 and "no longer valid" in again.body
    assert Browser(server).sign_in(email, "a brand new password").status == 401
    assert Browser(server).sign_in(email, "chosen by me").status == 303

    unknown = server.run_cli("user", "reset-link", "--email", "nobody@example.com", check=False)
    assert unknown.returncode != 0 and "no user with the email" in unknown.stderr


def test_expired_links_are_refused_and_pruned(fresh_server):
    server = fresh_server.start()
    setup = re.findall(r"http://\S+/setup/[0-9a-f]{64}", server.log())[-1]
    assert "24 hours" in server.log()
    database = server.data_dir / "booboo.db"

    def sql(statement: str):
        with sqlite3.connect(database, timeout=30) as db:
            return db.execute(statement).fetchall()

    # The start's own pruning pass runs beside the listener: let it finish
    # first, or it (not the restart below) may prune what expires next.
    deadline = time.monotonic() + 30
    while "pruned expired" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    sql("UPDATE setup_tokens SET expires_at = 1")
    assert plain_http("GET", setup).status == 404
    email = new_user(server, "expiring@example.com")
    link = server.run_cli("user", "reset-link", "--email", email).stdout.strip().splitlines()[-1]
    assert plain_http("GET", link).status == 200
    sql("UPDATE password_links SET expires_at = 1")
    visitor = Browser(server)
    form = visitor.get(urlsplit(link).path)
    assert form.status == 404
    refused = visitor.post(urlsplit(link).path, {"csrf": visitor.form_csrf(), "password": "too late now", "password_repeat": "too late now"})
    assert refused.status == 404
    # A restart prunes at once (then every ten minutes).
    server.stop()
    server.start()
    deadline = time.monotonic() + 30
    while metric(server, 'booboo_pruned_total{kind="links"}') < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(server, 'booboo_pruned_total{kind="links"}') == 2, server.log()[-2000:]
    assert sql("SELECT COUNT(*) FROM setup_tokens") == [(0,)]
    assert sql("SELECT COUNT(*) FROM password_links") == [(0,)]
