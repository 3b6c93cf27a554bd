"""The logging integration and HTTP breadcrumbs, with the standard library's own logging and http.client."""

import http.client
import logging
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import booboo
from booboo.testing import capture_events

log = logging.getLogger("shop.payments")


@pytest.fixture(autouse=True)
def info_records_are_created():
    # Breadcrumbs come from records a logger lets through; the root's default is WARNING.
    previous = log.level
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(previous)


def charge(seconds):
    log.error("timed out after %ss", seconds)


def test_error_records_become_events_with_template_params_logger_and_stack(server):
    booboo.init(server.dsn)
    with capture_events() as events:
        for seconds in (5, 30, 120):
            charge(seconds)
    assert len(events) == 3
    event = events[1]
    assert event["message"] == "timed out after 30s"
    assert event["exception_type"] == "" and event["exceptions"] == []
    assert event["level"] == "error" and event["logger"] == "shop.payments"
    assert event["logentry"] == {"message": "timed out after %ss", "params": ["30"],
                                 "formatted": "timed out after 30s"}
    # The stack it was logged from, without logging's or the SDK's frames, and without locals.
    functions = [f["function"] for f in event["stacktrace"]]
    assert functions[-2:] == ["test_error_records_become_events_with_template_params_logger_and_stack", "charge"]
    assert event["stacktrace"][-1]["context_line"] == '    log.error("timed out after %ss", seconds)'
    assert all(f["vars"] == {} for f in event["stacktrace"])
    assert not any(f["filename"] == logging.__file__ or "/booboo/" in f["filename"] for f in event["stacktrace"])


def test_logger_exception_sends_the_exception_once(server):
    booboo.init(server.dsn)
    with capture_events() as events:
        try:
            {}["missing"]
        except KeyError as exc:
            log.exception("lookup of %r failed", "missing")
            booboo.capture_exception(exc)  # already reported: not again
            log.error("again", exc_info=True)  # nor here
    [event] = events
    assert event["exception_type"] == "KeyError" and event["handled"] is True
    assert event["logger"] == "shop.payments" and event["level"] == "error"
    assert event["logentry"]["formatted"] == "lookup of 'missing' failed"
    assert event["stacktrace"][-1]["function"] == "test_logger_exception_sends_the_exception_once"
    assert booboo.flush(10)  # the handshake from init() may still be queued on a busy machine
    assert booboo.stats() == {"sent": 1, "queued": 0, "dropped": {}}


def test_lower_records_become_breadcrumbs_in_order(server):
    booboo.init(server.dsn)
    log.debug("not kept: below logging_level")
    log.info("cart has %d items", 3)
    log.warning("slow payment provider")
    with capture_events() as events:
        charge(5)
    crumbs = events[0]["breadcrumbs"]
    assert [(c["message"], c["level"], c["category"], c["type"]) for c in crumbs] == [
        ("cart has 3 items", "info", "shop.payments", "log"),
        ("slow payment provider", "warning", "shop.payments", "log"),
    ]


def test_levels_are_configurable_and_logging_can_be_turned_off(server):
    booboo.init(server.dsn, logging_level="debug", event_level=logging.CRITICAL)
    log.debug("now kept")
    with capture_events() as events:
        log.error("only a breadcrumb now")
        log.critical("disk %s is gone", "/dev/sda")
    [event] = events
    assert event["level"] == "fatal"
    assert [c["message"] for c in event["breadcrumbs"]] == ["now kept", "only a breadcrumb now"]

    booboo.init(server.dsn, logging=False)
    log.warning("not a breadcrumb")
    with capture_events() as events:
        log.critical("not an event")
        booboo.capture_message("explicit")
    [event] = events
    assert "breadcrumbs" not in event


def test_the_sdks_own_records_never_come_back(server):
    booboo.init(server.dsn)
    with capture_events() as events:
        logging.getLogger("booboo").error("booboo: something about sending")
        logging.getLogger("booboo.sub").error("also ours")
        booboo.capture_message("x")
    assert len(events) == 1 and "breadcrumbs" not in events[0]


def test_a_record_whose_arguments_do_not_fit_is_still_reported(server):
    # Outside pytest's capturing handler, which fails a test on such a record.
    lonely = logging.getLogger("lonely")
    lonely.propagate = False
    booboo.init(server.dsn)
    with capture_events() as events:
        lonely.error("needs two %s %s", "one")  # logging prints its own complaint to stderr
    assert events[0]["message"] == "needs two %s %s"
    assert events[0]["logentry"]["params"] == ["'one'"]


def test_close_restores_logging_and_http_client(server):
    original_call_handlers = logging.Logger.callHandlers
    original_putrequest = http.client.HTTPConnection.putrequest
    booboo.init(server.dsn)
    assert logging.Logger.callHandlers is not original_call_handlers
    booboo.close()
    assert logging.Logger.callHandlers is original_call_handlers
    assert http.client.HTTPConnection.putrequest is original_putrequest


class Upstream:
    """A loopback HTTP server the application calls."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status = 503 if self.path.startswith("/down") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_outgoing_http_becomes_breadcrumbs_in_order_with_logs(server):
    upstream = Upstream()
    try:
        booboo.init(server.dsn)
        log.info("asking the rates service")
        urllib.request.urlopen("http://127.0.0.1:%d/rates?currency=EUR&api_key=k" % upstream.port).read()
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/down" % upstream.port)
        except urllib.error.HTTPError:
            pass
        with capture_events() as events:
            charge(5)
    finally:
        upstream.close()
    crumbs = events[0]["breadcrumbs"]
    assert [c["type"] for c in crumbs] == ["log", "http", "http"]
    rates, down = crumbs[1], crumbs[2]
    url = "http://127.0.0.1:%d/rates?currency=EUR&api_key=[filtered]" % upstream.port
    assert rates["data"]["url"] == url and rates["data"]["method"] == "GET"
    assert rates["data"]["status_code"] == 200 and rates["level"] == "info"
    assert isinstance(rates["data"]["duration_ms"], float)
    assert down["data"]["status_code"] == 503 and down["level"] == "error"
    # The SDK's own sends to the server are not breadcrumbs.
    booboo.capture_message("after")
    assert booboo.flush(10)
    assert not any(c["data"]["url"].startswith(server.url) for c in crumbs if c["type"] == "http")


def test_a_request_without_an_answer_is_a_breadcrumb_too(server):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def hang_up():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()  # no status line: http.client raises RemoteDisconnected

    threading.Thread(target=hang_up, daemon=True).start()
    booboo.init(server.dsn)
    connection = http.client.HTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=5)
    connection.request("POST", "/orders")
    with pytest.raises(http.client.RemoteDisconnected):
        connection.getresponse()
    listener.close()
    with capture_events() as events:
        booboo.capture_message("after")
    [crumb] = events[0]["breadcrumbs"]
    assert crumb["level"] == "error" and crumb["data"]["error"] == "RemoteDisconnected"
    assert crumb["data"]["method"] == "POST" and crumb["data"]["url"].endswith("/orders")


def test_logging_imported_after_init_is_wrapped_by_the_sender_thread(server):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        import booboo
        assert "logging" not in sys.modules and "http.client" not in sys.modules
        booboo.init(%r)
        booboo.flush(10)          # the handshake has gone: the sender wrapped logging
        import logging
        logging.getLogger("late").error("logged after init")
        print(booboo.flush(10))
        """ % server.dsn
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr
    [event] = server.wait_for_events(1)
    assert event["logger"] == "late" and event["message"] == "logged after init"
