"""Fixtures: a real ingestion server per test, and a clean SDK around every test."""

import pytest

import booboo
from ingest_server import IngestServer


@pytest.fixture
def server():
    srv = IngestServer()
    yield srv
    srv.close()


_SDK_FAILURES = ("failed building it", "flush() failed", "close() failed", "failed inside the SDK")


@pytest.fixture(autouse=True)
def no_client_left_behind(caplog):
    """Every test starts and ends without an active client, and fails on the SDK's own errors.

    The SDK never raises into the application, so its own bugs would pass
    unnoticed; it logs each one, and this turns those log lines into failures.
    """
    booboo.close(0)
    yield
    booboo.close(0)
    records = [r for phase in ("setup", "call", "teardown") for r in caplog.get_records(phase)]
    failures = [r.getMessage() for r in records
                if r.name == "booboo" and any(text in r.getMessage() for text in _SDK_FAILURES)]
    assert not failures, "the SDK swallowed its own errors: %s" % failures
