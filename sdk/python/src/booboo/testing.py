"""Helpers for testing code that reports to booboo, without a server or mocks.

    from booboo.testing import capture_events

    def test_checkout_reports_the_crash():
        with capture_events() as events:
            checkout(cart=None)          # calls booboo.capture_exception()
        assert events[0]["exception_type"] == "TypeError"
"""

import contextlib

from . import _client

__all__ = ["capture_events"]


@contextlib.contextmanager
def capture_events(**options):
    """Record events in a list instead of sending them, for the duration of the block.

    Each event is a dict, exactly the JSON body that would have been sent
    (after ``before_send`` and trimming). With ``booboo.init()`` already
    called, the active configuration is used and nothing is sent meanwhile;
    otherwise a temporary client is made from ``options`` (the options of
    ``booboo.init()``, plus ``environment``) and removed afterwards.
    """
    client = _client.current()
    temporary = client is None
    if temporary:
        environment = options.pop("environment", "")
        options.setdefault("endpoint", "http://localhost/")
        client = _client.build("capture-events", environment, options)
        _client.activate(client)
    elif options:
        raise TypeError(
            "capture_events() takes options only when booboo.init() has not been called; "
            "the active client's configuration is used as it is"
        )
    previous = client._recorder
    events = []
    client._recorder = events
    try:
        yield events
    finally:
        client._recorder = previous
        if temporary:
            _client.deactivate(client)
            client.close(0)
