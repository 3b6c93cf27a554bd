"""Sending over real HTTP to a local server: handshake, gzip, retries, 429, queue limits."""

import gzip
import json
import logging
import os
import threading
import time

import pytest

import booboo
from booboo._client import current as current_client
from ingest_server import TOKEN, free_port_nobody_listens_on


def test_handshake_then_events_gzipped_with_the_token(server):
    booboo.init(server.dsn, environment="prod", release="abc123")
    requests = server.wait_for(lambda rs: len(rs) >= 1)
    assert requests[0].body == {"handshake": True, "sdk": "python/0.17.0"}

    started = time.perf_counter()
    event_id = booboo.capture_message("hello")
    assert time.perf_counter() - started < 2  # generous, for a loaded machine
    assert booboo.flush(10) is True
    (event,) = server.wait_for_events(1)
    assert event["event_id"] == event_id and event["message"] == "hello"
    request = server.requests[-1]
    assert request.headers["X-Booboo-DSN"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(request.raw)) == event
    assert booboo.stats() == {"sent": 1, "queued": 0, "dropped": {}}


def test_bare_token_with_endpoint(server):
    booboo.init(TOKEN, endpoint=server.url)
    booboo.capture_message("via endpoint")
    booboo.flush(10)
    server.wait_for_events(1)
    assert server.requests[-1].headers["X-Booboo-DSN"] == TOKEN


def test_retries_after_5xx_with_the_same_event_id(server):
    booboo.init(server.dsn)
    server.wait_for(lambda rs: len(rs) >= 1)  # the handshake
    server.responses = [(500, {}), (503, {})]
    event_id = booboo.capture_message("try again")
    events = server.wait_for_events(3)
    assert [e["event_id"] for e in events] == [event_id] * 3
    booboo.flush(10)
    assert booboo.stats()["sent"] == 1 and booboo.stats()["dropped"] == {}


def test_honours_429_retry_after(server):
    booboo.init(server.dsn)
    server.wait_for(lambda rs: len(rs) >= 1)
    server.responses = [(429, {"Retry-After": "1"})]
    booboo.capture_message("later")
    server.wait_for_events(1)
    first_at = time.monotonic()
    server.wait_for_events(2)
    assert time.monotonic() - first_at >= 0.9
    assert booboo.flush(10)
    assert booboo.stats()["sent"] == 1


def test_long_rate_limit_drops_instead_of_holding_the_queue(server, caplog):
    booboo.init(server.dsn)
    server.wait_for(lambda rs: len(rs) >= 1)
    server.responses = [(429, {"Retry-After": "3600"})]
    booboo.capture_message("first")
    booboo.capture_message("second")
    assert booboo.flush(10)
    assert booboo.stats()["dropped"] == {"rate_limited": 2}
    assert len(server.events()) == 1  # the second was not even tried
    assert "rate limiting this project" in caplog.text


def test_4xx_is_not_retried_and_says_why(server, caplog):
    booboo.init(server.dsn)
    server.wait_for(lambda rs: len(rs) >= 1)
    server.responses = [(400, {})]
    booboo.capture_message("bad")
    assert booboo.flush(10)
    assert len(server.events()) == 1
    assert booboo.stats()["dropped"] == {"rejected": 1}
    assert "rejected it: HTTP 400 scripted answer 400" in caplog.text


def test_gives_up_on_a_server_that_is_down_and_says_so_once(caplog):
    port = free_port_nobody_listens_on()
    booboo.init("http://%s@127.0.0.1:%d/a/b" % (TOKEN, port))
    client = current_client()
    client.transport.retry_budget = 1.0
    client.transport.first_backoff = 0.1
    started = time.perf_counter()
    for _ in range(3):
        booboo.capture_message("nobody listens")
    assert time.perf_counter() - started < 2  # waiting out the retries would take longer
    assert booboo.flush(20)
    assert booboo.stats()["dropped"] == {"send_failed": 3}
    gave_up = [r for r in caplog.records if "could not be reached" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.WARNING
    assert "ConnectionRefusedError" in gave_up[0].getMessage()
    assert "handshake" in caplog.text


def test_slow_server_does_not_slow_the_caller(server):
    server.delay = 0.3
    booboo.init(server.dsn)
    started = time.perf_counter()
    for i in range(5):
        booboo.capture_message("m%d" % i)
    assert time.perf_counter() - started < 1  # five sends would take 1.5 s
    assert booboo.flush(30)
    assert len(server.events()) == 5


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux only")
def test_the_sender_never_preempts_the_application_and_the_application_keeps_its_policy(server):
    policy_before = os.sched_getscheduler(0)
    booboo.init(server.dsn)
    booboo.capture_message("wakes the sender")
    assert booboo.flush(10)
    sender = current_client().worker._thread
    assert os.sched_getscheduler(sender.native_id) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) == policy_before
    assert len(server.events()) == 1


def test_full_queue_drops_newest_counts_and_warns_once(server, caplog):
    server.default = "hang"
    booboo.init(server.dsn, max_queue=3, shutdown_timeout=0.5)
    server.wait_for_arrivals(1)  # the handshake now holds the sender
    started = time.perf_counter()
    ids = [booboo.capture_message("m%d" % i) for i in range(10)]
    assert time.perf_counter() - started < 2  # a hanging server answers after the 5 s timeout
    assert [i is not None for i in ids] == [True] * 3 + [False] * 7
    assert booboo.stats()["dropped"] == {"queue_full": 7}
    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1
    booboo.close()
    assert booboo.stats()["dropped"] == {}  # closed: no client any more


def test_close_counts_what_it_could_not_send(server, caplog):
    server.default = "hang"
    booboo.init(server.dsn, shutdown_timeout=0.3)
    client = current_client()
    booboo.capture_message("stuck")
    started = time.perf_counter()
    booboo.close()
    assert time.perf_counter() - started < 3
    assert client.stats()["dropped"] == {"shutdown": 1}
    assert "shut down before it could be sent" in caplog.text


def test_server_without_gzip_gets_plain_json(server):
    booboo.init(server.dsn)
    server.wait_for(lambda rs: len(rs) >= 1)
    server.responses = [(415, {})]
    booboo.capture_message("plain please")
    events = server.wait_for_events(2)
    assert events[1]["message"] == "plain please"
    assert "Content-Encoding" not in server.requests[-1].headers
    assert booboo.flush(10)


def test_oversized_event_is_trimmed_and_sent(server):
    booboo.init(server.dsn)

    def level(n):
        payload = ["x" * 190] * 100  # noqa: F841
        more = {"key%d" % i: "y" * 190 for i in range(49)}  # noqa: F841
        if n:
            level(n - 1)
        raise RuntimeError("deep")

    try:
        level(150)
    except RuntimeError:
        booboo.capture_exception()
    assert booboo.flush(10)
    (event,) = server.wait_for_events(1)
    assert len(server.requests[-1].raw) < 102_400  # gzip makes it smaller still
    assert len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()) <= 102_400
    assert event["stacktrace"][-1]["function"] == "level"


def test_threads_capture_concurrently(server):
    booboo.init(server.dsn, max_queue=1000)

    def worker(n):
        for i in range(20):
            booboo.capture_message("t%d-%d" % (n, i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert booboo.flush(30)
    assert len({e["event_id"] for e in server.events()}) == 100


def test_debug_logs_every_send(server, caplog, monkeypatch):
    logger = logging.getLogger("booboo")
    monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
    monkeypatch.setenv("BOOBOO_DEBUG", "1")
    booboo.init(server.dsn)
    event_id = booboo.capture_message("visible")
    assert booboo.flush(10)
    messages = [r.getMessage() for r in caplog.records if r.name == "booboo"]
    assert any(m.startswith("booboo: started, sending to " + server.url) for m in messages)
    assert any(m == "booboo: sent event %s (HTTP 200)" % event_id for m in messages)
    assert not any(TOKEN in m for m in messages)
    monkeypatch.setenv("BOOBOO_DEBUG", "maybe")
    try:
        booboo.init(server.dsn)
    except ValueError as error:
        assert "BOOBOO_DEBUG must be 1 or 0" in str(error)
    else:
        raise AssertionError("a bad BOOBOO_DEBUG should be refused")


def test_locals_show_their_state_at_the_crash_not_when_sent(server):
    server.delay = 0.2  # the sender is still busy when the application moves on
    booboo.init(server.dsn)

    class Before:
        pass

    class After:
        pass

    def crash(flat, nested, mapping, plain):
        raise RuntimeError("x")

    flat, nested, mapping, plain = [1, 2], [[1], [2]], {"k": "before"}, Before()
    plain_repr = repr(plain)
    try:
        crash(flat, nested, mapping, plain)
    except RuntimeError:
        booboo.capture_exception()
    flat.append(3)
    nested[0].append(99)
    mapping["k"] = "after"
    plain.__class__ = After  # object.__repr__ shows the class: the one it had at the crash
    assert booboo.flush(10)
    (event,) = server.wait_for_events(1)
    assert event["stacktrace"][-1]["vars"] == {
        "flat": "[1, 2]", "nested": "[[1], [2]]", "mapping": "{'k': 'before'}", "plain": plain_repr,
    }
