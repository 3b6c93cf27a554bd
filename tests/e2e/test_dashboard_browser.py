"""The dashboard in a real browser: Debian's Chromium, driven headless by
Playwright, against the real `booboo` binary, with crashes sent by our own
SDK from real Python processes.

Without Chromium or Playwright these tests skip with the reason; with
BOOBOO_REQUIRE_BROWSER=1 (CI sets it) they fail instead. Screenshots of the
issue list and an issue page land in tests/e2e/artifacts/ (not committed).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import Server, create_project, http, run_script

CHROMIUM = Path(os.environ.get("BOOBOO_CHROMIUM") or "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("BOOBOO_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Flags that keep a headless Chromium quiet and self-contained on a server.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"


def browser_missing(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}; BOOBOO_REQUIRE_BROWSER=1 demands the browser tests")
    pytest.skip(f"browser tests skipped: {reason} (scripts/test installs Chromium when it runs as root)")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_missing("the playwright package is not installed (pip install -r tests/requirements.txt)")
    if not CHROMIUM.exists():
        browser_missing(f"{CHROMIUM} does not exist (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile; fails the test on any page error or dialog."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)

    def on_dialog(dialog):
        # Confirmations of our own forms are accepted; anything else (an
        # alert from an event's text) is a failure.
        if dialog.type != "confirm":
            problems.append(f"unexpected {dialog.type}: {dialog.message}")
        dialog.accept()

    page.on("dialog", on_dialog)
    page.problems = problems
    yield page
    context.close()
    assert not problems, "\n".join(problems)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def setup_link(server: Server, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(r"http://\S+/setup/[0-9a-f]{64}", server.log())
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"booboo serve printed no setup link:\n{server.log()}")


def sign_in(page, server: Server, email: str, password: str = PASSWORD) -> None:
    page.goto(server.url + "/signin")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r".*/projects$"))


CRASH = '''
import booboo

booboo.init({dsn!r}, environment={environment!r}, release={release!r})
booboo.set_tag("shop_region", "eu-west")


def read_price(catalogue, sku):
    lookup_key = sku.upper()
    return catalogue[lookup_key]


def checkout(cart, coupon):
    basket_total = 0
    for sku in cart:
        try:
            basket_total += read_price({{"APPLE": 3}}, sku)
        except KeyError as exc:
            raise RuntimeError("no price for " + sku) from exc
    return basket_total


try:
    checkout(["apple", "durian"], coupon=None)
except RuntimeError:
    booboo.capture_exception()
assert booboo.flush(10), "the event was not sent within 10 s"
'''

OTHER_CRASH = '''
import booboo

booboo.init({dsn!r}, environment={environment!r}, release={release!r})


def ship(parcels):
    per_parcel = 100 / len(parcels)
    return per_parcel


try:
    ship([])
except ZeroDivisionError:
    booboo.capture_exception()
assert booboo.flush(10), "the event was not sent within 10 s"
'''


def run_crash(source: str, dsn: str, environment: str, release: str = "2.4.0") -> None:
    # The test virtualenv has our SDK installed (scripts/test does that).
    result = run_script(Path(sys.executable), source.format(dsn=dsn, environment=environment, release=release), env={}, name="shop.py")
    assert result.returncode == 0, f"the crashing script failed:\n{result.stdout}\n{result.stderr}"


def test_first_run_to_a_resolved_issue_that_comes_back(fresh_server, page):
    from playwright.sync_api import expect

    pytest.importorskip("booboo", reason="our SDK (sdk/python) is not installed in this virtualenv")
    server = fresh_server.start()

    # First run: only the printed link creates the administrator.
    page.goto(setup_link(server))
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_repeat]", PASSWORD)
    page.click("button:has-text('Create administrator')")
    page.wait_for_url(re.compile(r".*/projects$"))

    # A project, its setup page waiting for the first event.
    page.fill("input[name=organisation]", "acme")
    page.fill("input[name=project]", "shop")
    page.click("button:has-text('Create project')")
    page.wait_for_url(re.compile(r".*/projects/acme/shop/setup$"))
    assert "Waiting for the first event" in page.inner_text(".status-box")

    # Copy the DSN with the page's button, as a person would.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    shown = page.input_value("#dsn")
    page.click("button[data-copy=dsn]")
    expect(page.locator("button[data-copy=dsn]")).to_have_text("Copied")
    dsn = page.evaluate("navigator.clipboard.readText()")
    assert dsn == shown and dsn.startswith("http://") and dsn.endswith("@127.0.0.1:%d/acme/shop" % server.port), dsn
    assert dsn in page.inner_text("#snippet-python")

    # A real crash from our SDK; the setup page notices by itself.
    run_crash(CRASH, dsn, "production")
    expect(page.locator(".status-box [data-field=headline]")).to_have_text(re.compile(r"^Last event"), timeout=15_000)
    run_crash(OTHER_CRASH, dsn, "staging")

    # It appears in the issue list.
    page.click("nav.tabs >> text=Issues")
    page.wait_for_url(re.compile(r".*/projects/acme/shop$"))
    for _ in range(100):
        if page.locator("a.issue-title").count() >= 2:
            break
        time.sleep(0.1)
        page.reload()
    titles = page.locator("a.issue-title").all_inner_texts()
    assert "RuntimeError: no price for durian" in titles and "ZeroDivisionError: division by zero" in titles, titles
    assert page.locator("svg.chart.spark").count() == 2
    screenshot(page, "issue-list.png")

    # Filter by environment: the selector lists the project's environments
    # and applies on change; the filter lives in the URL.
    options = page.locator("select[name=environment] option").all_inner_texts()
    assert options == ["All environments", "production", "staging"], options
    page.select_option("select[name=environment]", "staging")
    page.wait_for_url(re.compile(r".*environment=staging.*"))
    assert page.locator("a.issue-title").all_inner_texts() == ["ZeroDivisionError: division by zero"]
    page.goto(page.url)  # a bookmarked filter shows the same
    assert page.locator("a.issue-title").all_inner_texts() == ["ZeroDivisionError: division by zero"]
    page.select_option("select[name=environment]", "production")
    page.wait_for_url(re.compile(r".*environment=production.*"))

    # Open it: the chain as Python prints it, frames with source and locals.
    page.click("a.issue-title >> text=RuntimeError: no price for durian")
    page.wait_for_url(re.compile(r".*/issues/\d+$"))
    traceback = page.inner_text(".traceback")
    assert traceback.index("KeyError: 'DURIAN'") < traceback.index(
        "The above exception was the direct cause of the following exception:"
    ) < traceback.index("RuntimeError: no price for durian")
    frame = page.locator("details.frame.in-app", has_text="in read_price").first
    assert frame.get_attribute("open") is not None, "application frames are open"
    assert "return catalogue[lookup_key]" in frame.locator("li.error-line").inner_text()
    locals_table = frame.locator("table.vars").inner_text()
    assert "lookup_key" in locals_table and "'DURIAN'" in locals_table, locals_table
    checkout_frame = page.locator("details.frame.in-app", has_text="in checkout").first
    assert "basket_total" in checkout_frame.locator("table.vars").inner_text()
    side = page.inner_text(".issue-side")
    assert "production" in side and "2.4.0" in side and "shop_region" in side
    assert "in release 2.4.0" in page.inner_text(".stats")
    screenshot(page, "issue-page.png")

    # Resolve it; the same crash again reopens it as a regression.
    issue_url = page.url
    page.click("button:has-text('Resolve')")
    page.wait_for_url(issue_url)
    assert page.inner_text(".status-badge") == "resolved"
    run_crash(CRASH, dsn, "production")
    for _ in range(100):
        page.reload()
        if page.locator(".issue-head .badge.regression").count():
            break
        time.sleep(0.1)
    assert page.inner_text(".status-badge") == "unresolved"
    assert page.locator(".issue-head .badge.regression").count() == 1
    # The newer event is shown first; the older one is a click away.
    page.click("a:has-text('← Older')")
    page.wait_for_url(re.compile(r".*/events/[0-9a-f]{32}#event$"))
    assert page.locator("a:has-text('Newer →')").count() == 1


HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    '"><img src=x onerror="window.__pwned=\'img\'">',
    "javascript:window.__pwned='link'",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
]


def hostile_event() -> dict:
    a, b, c, d = HOSTILE
    return {
        "message": f"{a} {b}",
        "exception_type": "ValueError",
        "level": "error",
        "stacktrace": [{
            "filename": f"/srv/{b}.py", "function": a, "lineno": 3, "context_line": d,
            "pre_context": [b], "post_context": [c], "vars": {a: b, "link": c}, "in_app": True,
        }],
        "exceptions": [],
        "context": {"user": {"email": b, "id": a}},
        "tags": {a: b, "next": c},
        "environment": b,
        "release": a,
        "request": {"method": "GET", "url": c, "headers": {"X-Evil": a}, "query_string": b},
        "breadcrumbs": [{"category": a, "message": b, "level": "info", "data": {"url": c}}],
    }


def test_nothing_an_event_carries_runs_in_the_browser(server, page):
    project = create_project(server)
    r = server.post_event(project.ingest_token, hostile_event())
    assert r.status == 200, r.body
    issue = project.wait_for_issues(1)[0]
    sign_in(page, server, project.email)
    for path in [
        f"/projects/{project.org}/{project.slug}",
        f"/projects/{project.org}/{project.slug}?status=all&environment={quote(HOSTILE[1])}",
        f"/issues/{issue['id']}",
    ]:
        response = page.goto(server.url + path)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("load")
        # Open every folded part, so any injected markup would be live.
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.mouse.move(10, 10)
        page.wait_for_timeout(200)
        assert page.evaluate("window.__pwned === undefined"), f"{path}: an event's text ran as code"
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("a[href^='javascript:']").count() == 0
    # The text itself is there, shown as text.
    assert HOSTILE[0] in page.inner_text(".event-body")


def test_another_organisations_pages_answer_404_in_the_browser(server, page):
    mine = create_project(server)
    theirs = create_project(server)
    server.post_event(theirs.ingest_token, hostile_event())
    their_issue = theirs.wait_for_issues(1)[0]["id"]
    sign_in(page, server, mine.email)
    for path in [f"/issues/{their_issue}", f"/projects/{theirs.org}/{theirs.slug}", f"/projects/{theirs.org}/{theirs.slug}/setup"]:
        response = page.goto(server.url + path)
        assert response.status == 404, path
        assert "No such" in page.inner_text("h1")
    # Those 404 answers are what this test wants; Chromium logs each one.
    page.problems[:] = [p for p in page.problems if "status of 404" not in p]
    # Signed out, the same URL asks for a sign-in rather than saying anything.
    anonymous = http("GET", f"{server.url}/issues/{their_issue}")
    assert anonymous.status == 200 and b"Sign in" in anonymous.body  # urllib followed the redirect


def test_a_sign_in_link_cannot_send_the_browser_to_another_site(server, page):
    # Chromium drops the tab of `Location: /\t/evil.example/` and follows
    # `//evil.example/`, a name that does not resolve: had the server sent
    # it, the navigation would fail (or, after the form, be blocked by the
    # page's form-action policy) instead of ending on /projects.
    project = create_project(server)
    page.goto(server.url + "/signin?next=/%09/evil.example/")
    page.fill("input[name=email]", project.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r".*/projects$"))
    assert page.url == server.url + "/projects", page.url
    # Signed in, the same link redirects at once, outside any form.
    page.goto(server.url + "/signin?next=/%09/evil.example/")
    assert page.url == server.url + "/projects", page.url
