"""Django, through its own test client: detected without app=, middleware or INSTALLED_APPS."""

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        SECRET_KEY="only-for-these-tests",
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.exceptions import PermissionDenied, SuspiciousOperation  # noqa: E402
from django.http import Http404, HttpResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402

import booboo  # noqa: E402
from booboo.testing import capture_events  # noqa: E402


def ok(request):
    return HttpResponse("fine")


def crash(request):
    order = {"id": 7}  # noqa: F841
    raise LookupError("no such order")


def missing(request):
    raise Http404("nothing here")


def forbidden(request):
    raise PermissionDenied("not yours")


def suspicious(request):
    raise SuspiciousOperation("odd input")


urlpatterns = [
    path("ok", ok),
    path("crash", crash),
    path("missing", missing),
    path("forbidden", forbidden),
    path("suspicious", suspicious),
]

PATHS = ["/ok", "/crash", "/missing", "/forbidden", "/suspicious", "/nowhere", "/crash?page=2&api_key=k"]


def responses():
    client = Client(raise_request_exception=False)
    result = {}
    for url in PATHS:
        response = client.get(url, HTTP_AUTHORIZATION="Token abc", HTTP_COOKIE="sessionid=s", HTTP_X_TRACE="t-1")
        result[url] = (response.status_code, response.content, sorted(response.headers.items()))
    return result


def test_only_real_crashes_are_captured_and_responses_are_unchanged(server):
    plain = responses()
    booboo.init(server.dsn)  # no app=: Django is detected
    with capture_events() as events:
        assert responses() == plain
    assert [plain[p][0] for p in PATHS] == [200, 500, 404, 403, 400, 404, 500]
    assert [e["exception_type"] for e in events] == ["LookupError", "LookupError"]
    event = events[0]
    assert event["message"] == "no such order"
    assert event["stacktrace"][-1]["function"] == "crash"
    assert event["stacktrace"][-1]["vars"] == {"request": event["stacktrace"][-1]["vars"]["request"], "order": "{'id': 7}"}
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"] == "http://testserver/crash"
    headers = event["request"]["headers"]
    assert headers["Authorization"] == "[filtered]" and headers["Cookie"] == "[filtered]"
    assert headers["X-Trace"] == "t-1"
    assert events[1]["request"]["query_string"] == "page=2&api_key=[filtered]"


def test_the_test_client_still_raises_the_original_exception(server):
    booboo.init(server.dsn)
    with capture_events() as events:
        try:
            Client().get("/crash")
        except LookupError as exc:
            assert str(exc) == "no such order"
        else:
            raise AssertionError("the view's exception should reach the test client")
    assert len(events) == 1


def test_close_disconnects_the_signal(server):
    booboo.init(server.dsn)
    booboo.close()
    from django.core.signals import got_request_exception

    assert not any("booboo" in repr(receiver) for receiver in got_request_exception.receivers)


class SignedIn:
    is_authenticated = True
    pk = 42
    email = "ada@example.com"

    def get_username(self):
        return "ada"


def test_the_signed_in_user_and_the_request_reach_every_event_of_the_request(server):
    import logging

    from django.test import RequestFactory
    from django.core.handlers.base import BaseHandler

    booboo.init(server.dsn)
    handler = BaseHandler()
    handler.load_middleware()
    with capture_events() as events:
        request = RequestFactory().get("/crash")
        request.user = SignedIn()
        handler.get_response(request)
        logging.getLogger("shop").error("outside any request")
    crash, outside = events
    assert crash["context"]["user"] == {"id": "42", "username": "ada", "email": "ada@example.com"}
    assert crash["request"]["url"] == "http://testserver/crash"
    # Django's own "Internal Server Error" log of the same crash was not sent again.
    assert outside["message"] == "outside any request" and "user" not in outside["context"]
    assert "request" not in outside

    booboo.init(server.dsn, send_user=False)
    with capture_events() as events:
        request = RequestFactory().get("/crash")
        request.user = SignedIn()
        handler.get_response(request)
    assert "user" not in events[0]["context"]
