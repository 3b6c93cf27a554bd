"""Our Python SDK inside real web servers, against the real booboo binary.

Django (its threaded development server), Flask (werkzeug's threaded
server) and FastAPI (uvicorn) each serve 50 concurrent requests, every one
signed in as a different user and failing: every stored event must carry its
own request's user. One more request logs, calls a loopback HTTP service,
logs an error template with three values and logs an exception: the
breadcrumbs arrive in order on the stored event, the template is one issue,
and no crash is stored twice although each framework logs it again.
"""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import run_script

PYTHON = Path(sys.executable)
USERS = 50

# What every application does, whatever its framework: the views' bodies.
COMMON = textwrap.dedent(
    """
    import json, logging, os, random, sys, threading, time, urllib.request
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import booboo

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    log = logging.getLogger("shop")

    class Rates(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"1.08")

        def log_message(self, *args):
            pass

    rates = ThreadingHTTPServer(("127.0.0.1", 0), Rates)
    threading.Thread(target=rates.serve_forever, daemon=True).start()
    RATES_URL = "http://127.0.0.1:%d/eur?api_key=k" % rates.server_address[1]

    def fail(user):
        booboo.set_tag("request_user", user)
        log.info("signed in as %s", user)
        time.sleep(random.uniform(0, 0.05))   # let the other requests run meanwhile
        raise RuntimeError("failed for %s" % user)

    def story():
        log.info("asking the rates service")
        rate = urllib.request.urlopen(RATES_URL, timeout=10).read().decode()
        log.info("rates answered %s", rate)
        for seconds in (5, 30, 120):
            log.error("timed out after %ss", seconds)
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("could not convert the basket")
        return "told"

    def drive(base):
        def get(path, user=None):
            request = urllib.request.Request(base + path, headers={"X-User": user} if user else {})
            try:
                return urllib.request.urlopen(request, timeout=60).status
            except urllib.error.HTTPError as error:
                return error.code

        with ThreadPoolExecutor(max_workers=USERS) as pool:
            statuses = list(pool.map(lambda n: get("/fail", "u%d" % n), range(USERS)))
        story_status = get("/story")
        delivered = booboo.flush(30)
        print(json.dumps({"statuses": statuses, "story": story_status, "delivered": delivered,
                          "stats": booboo.stats()}), flush=True)
    """
).replace("USERS", str(USERS))

DJANGO = COMMON + textwrap.dedent(
    """
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__, SECRET_KEY="e2e",
        MIDDLEWARE=["__main__.sign_in"], INSTALLED_APPS=[],
    )
    django.setup()
    booboo.init(os.environ["DSN"], environment="e2e")

    from django.core.servers.basehttp import WSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpResponse
    from django.urls import path
    import socketserver

    class User:
        # What django.contrib.auth's AuthenticationMiddleware would put on the request.
        is_authenticated = True

        def __init__(self, name):
            self.pk, self.username, self.email = name, name, name + "@example.com"

        def get_username(self):
            return self.username

    def sign_in(get_response):
        def middleware(request):
            if "X-User" in request.headers:
                request.user = User(request.headers["X-User"])
            return get_response(request)
        return middleware

    def fail_view(request):
        fail(request.user.username)

    def story_view(request):
        return HttpResponse(story())

    urlpatterns = [path("fail", fail_view), path("story", story_view)]

    class ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadedServer(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(get_wsgi_application())
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    drive("http://127.0.0.1:%d" % httpd.server_address[1])
    """
)

FLASK = COMMON + textwrap.dedent(
    """
    import flask
    from werkzeug.serving import make_server

    app = flask.Flask("shop")
    booboo.init(os.environ["DSN"], app=app, environment="e2e")

    @app.before_request
    def sign_in():
        user = flask.request.headers.get("X-User")
        if user:
            booboo.set_user({"id": user, "email": user + "@example.com"})

    @app.route("/fail")
    def fail_view():
        fail(flask.request.headers["X-User"])

    @app.route("/story")
    def story_view():
        return story()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    drive("http://127.0.0.1:%d" % server.server_port)
    """
)

FASTAPI = COMMON + textwrap.dedent(
    """
    import asyncio
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
    from starlette.middleware.authentication import AuthenticationMiddleware

    class User(BaseUser):
        def __init__(self, name):
            self.name = name

        is_authenticated = True

        @property
        def display_name(self):
            return self.name

        @property
        def identity(self):
            return self.name

    class HeaderAuth(AuthenticationBackend):
        async def authenticate(self, conn):
            name = conn.headers.get("X-User")
            return (AuthCredentials(["authenticated"]), User(name)) if name else None

    app = FastAPI()
    app.add_middleware(AuthenticationMiddleware, backend=HeaderAuth())
    booboo.init(os.environ["DSN"], app=app, environment="e2e")

    @app.get("/fail")
    async def fail_view(request: Request):
        await asyncio.sleep(random.uniform(0, 0.05))   # tasks interleave on the one event loop
        fail(request.user.display_name)

    @app.get("/story")
    def story_view():                                   # a sync view: Starlette's thread pool
        return story()

    config = uvicorn.Config(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="info",
                            limit_concurrency=1000, backlog=256)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    drive("http://127.0.0.1:%s" % os.environ["PORT"])
    server.should_exit = True
    """
)

APPS = {"django": DJANGO, "flask": FLASK, "fastapi": FASTAPI}


def by_title(issues, prefix):
    matches = [i for i in issues if i["title"].startswith(prefix)]
    assert len(matches) == 1, f"expected one issue titled {prefix!r}: {[i['title'] for i in issues]}"
    return matches[0]


@pytest.mark.parametrize("framework", sorted(APPS))
def test_every_event_carries_its_own_requests_user_and_its_breadcrumbs(project, framework):
    from conftest import free_port

    result = run_script(PYTHON, APPS[framework], {"DSN": project.dsn, "PORT": str(free_port())}, timeout=180)
    assert result.returncode == 0, result.stderr[-5000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [500] * USERS and report["story"] == 200, report
    assert report["delivered"] is True, report
    # 50 crashes + 3 timeouts + 1 logged exception; every framework's own
    # error log of the 50 crashes was recognised as already reported.
    assert report["stats"] == {"sent": USERS + 4, "queued": 0, "dropped": {}}, report

    issues = project.wait_for_issues(3)
    assert len(issues) == 3, [i["title"] for i in issues]

    crashes = by_title(issues, "RuntimeError: failed for u")
    events = project.events(crashes["id"])
    assert len(events) == USERS
    mismatches = []
    for event in events:
        user = event["message"].rsplit(" ", 1)[1]
        seen = (event.get("user", {}).get("id"), event["tags"].get("request_user"),
                [b["message"] for b in event["breadcrumbs"] if b.get("category") == "shop"])
        if seen != (user, user, ["signed in as " + user]):
            mismatches.append((user, seen))
    assert mismatches == [], f"{len(mismatches)} events carry another request's scope: {mismatches[:5]}"
    event = events[0]
    assert event["exceptions"][0]["handled"] is False
    assert event["request"]["method"] == "GET" and event["request"]["url"].endswith("/fail")
    assert event["request"]["headers"].get("X-User") or event["request"]["headers"].get("x-user")
    assert event["breadcrumbs"][0]["message"] == "GET /fail" and event["breadcrumbs"][0]["category"] == "request"
    if framework == "django":
        assert event["user"]["username"] == event["user"]["id"]  # from request.user, no set_user

    timeouts = by_title(issues, "timed out after ")
    logged = project.events(timeouts["id"])
    assert sorted(e["logentry"]["params"][0] for e in logged) == ["120", "30", "5"]
    assert all(e["logger"] == "shop" and e["logentry"]["message"] == "timed out after %ss" for e in logged)
    assert all(e["level"] == "error" and e["exceptions"] == [] for e in logged)
    assert logged[0]["stacktrace"][-1]["function"] == "story"
    assert logged[0]["request"]["url"].endswith("/story")

    [converted] = project.events(by_title(issues, "ZeroDivisionError")["id"])
    assert converted["logger"] == "shop"
    assert converted["logentry"]["formatted"] == "could not convert the basket"
    assert converted["exceptions"][0]["handled"] is True
    [rates] = [b for b in converted["breadcrumbs"] if b.get("category") == "http"]
    assert rates["data"]["url"].startswith("http://127.0.0.1:")
    assert rates["data"]["url"].endswith("/eur?api_key=[filtered]")
    assert rates["data"]["status_code"] == 200 and rates["data"]["method"] == "GET"
    assert [(b["category"], b["message"]) for b in converted["breadcrumbs"]] == [
        ("request", "GET /story"),
        ("shop", "asking the rates service"),
        ("http", "GET %s [200]" % rates["data"]["url"]),
        ("shop", "rates answered 1.08"),
    ]
    stamps = [b["timestamp"] for b in converted["breadcrumbs"]]
    assert stamps == sorted(stamps)
