"""Flask, through its own test client: what is captured, and that responses do not change."""

import flask
from werkzeug.exceptions import InternalServerError

import booboo
from booboo.testing import capture_events


class PaymentDeclined(Exception):
    pass


class Unexpected(Exception):
    pass


def make_app():
    app = flask.Flask("shop")

    @app.route("/ok")
    def ok():
        return "fine"

    @app.route("/crash")
    def crash():
        basket = ["apple", "pear"]  # noqa: F841
        session_token = "abc"  # noqa: F841
        return str(1 / 0)

    @app.route("/missing")
    def missing():
        flask.abort(404)

    @app.route("/declined")
    def declined():
        raise PaymentDeclined("card 4242")

    @app.route("/unexpected")
    def unexpected():
        raise Unexpected("handled by a catch-all 500 handler")

    @app.errorhandler(PaymentDeclined)
    def payment_declined(error):
        return {"error": str(error)}, 402

    @app.errorhandler(Unexpected)
    def unexpected_page(error):
        return "our own sorry page", 503

    @app.errorhandler(InternalServerError)
    def server_error(error):
        return "custom 500 page for %s" % type(error.original_exception).__name__, 500

    return app


PATHS = ["/ok", "/crash", "/missing", "/nowhere", "/declined", "/unexpected", "/crash?q=1&token=t0k"]


def responses(app):
    client = app.test_client()
    result = {}
    for path in PATHS:
        response = client.get(path, headers={"Authorization": "Bearer xyz", "X-Trace": "t-1"})
        result[path] = (response.status_code, response.get_data(as_text=True), sorted(response.headers.items()))
    return result


def test_responses_are_unchanged(server):
    plain = responses(make_app())
    app = make_app()
    booboo.init(server.dsn, app=app)
    with capture_events():
        assert responses(app) == plain
    assert plain["/crash"][:2] == (500, "custom 500 page for ZeroDivisionError")
    assert plain["/missing"][0] == 404 and plain["/nowhere"][0] == 404
    assert plain["/declined"][0] == 402 and plain["/unexpected"][0] == 503


def test_server_errors_are_captured_with_the_request(server):
    app = make_app()
    booboo.init(server.dsn, app=app)
    with capture_events() as events:
        responses(app)
    assert [e["exception_type"] for e in events] == ["ZeroDivisionError", "Unexpected", "ZeroDivisionError"]
    crash = events[0]
    assert crash["request"] == {
        "method": "GET",
        "url": "http://localhost/crash",
        "headers": {
            "User-Agent": crash["request"]["headers"]["User-Agent"],
            "Host": "localhost",
            "Authorization": "[filtered]",
            "X-Trace": "t-1",
        },
        "query_string": "",
    }
    assert crash["stacktrace"][-1]["function"] == "crash"
    assert crash["stacktrace"][-1]["vars"] == {"basket": "['apple', 'pear']", "session_token": "[filtered]"}
    assert events[2]["request"]["query_string"] == "q=1&token=[filtered]"


def test_propagating_apps_still_raise_and_are_captured(server):
    app = make_app()
    app.testing = True  # Flask re-raises instead of rendering the 500 page
    booboo.init(server.dsn, app=app)
    with capture_events() as events:
        try:
            app.test_client().get("/crash")
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("the exception should have propagated")
    assert [e["exception_type"] for e in events] == ["ZeroDivisionError"]


def test_error_handler_that_fails_is_reported_once_with_its_cause(server):
    app = flask.Flask("fragile")

    @app.route("/")
    def index():
        raise KeyError("first")

    @app.errorhandler(KeyError)
    def broken_handler(error):
        raise RuntimeError("the handler broke")

    plain = app.test_client().get("/")
    booboo.init(server.dsn, app=app)
    with capture_events() as events:
        response = app.test_client().get("/")
    assert (response.status_code, response.data) == (plain.status_code, plain.data) == (500, plain.data)
    assert [(e["type"], e["chain_type"]) for e in events[0]["exceptions"]] == [
        ("RuntimeError", None), ("KeyError", "context"),
    ]
    assert len(events) == 1


def test_init_twice_with_the_same_app_reports_once(server):
    app = make_app()
    booboo.init(server.dsn, app=app)
    booboo.init(server.dsn, app=app)
    with capture_events() as events:
        app.test_client().get("/crash")
    assert len(events) == 1


def test_after_close_nothing_is_reported(server):
    app = make_app()
    booboo.init(server.dsn, app=app)
    booboo.close()
    assert app.test_client().get("/crash").status_code == 500
    booboo.init(server.dsn)  # a new client, which must not hear of the old app's crash
    assert booboo.flush(10)
    assert server.events() == []


def test_a_user_set_in_one_request_stays_with_that_request(server):
    app = flask.Flask("scoped")

    @app.before_request
    def identify():
        if "X-User" in flask.request.headers:
            booboo.set_user({"id": flask.request.headers["X-User"]})

    @app.route("/crash")
    def crash():
        flask.current_app.logger.info("about to fail")
        raise RuntimeError("boom")

    booboo.init(server.dsn, app=app)
    client = app.test_client()
    with capture_events() as events:
        client.get("/crash", headers={"X-User": "ada"})
        client.get("/crash?token=t")  # nobody signed in
    assert [e.get("context", {}).get("user") for e in events] == [{"id": "ada"}, None]
    assert [b["category"] for b in events[1]["breadcrumbs"]] == ["request"]
    assert events[1]["breadcrumbs"][0]["message"] == "GET /crash"
    assert events[1]["handled"] is False
