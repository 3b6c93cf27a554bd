"""Report the crashes of a Python application to a booboo server.

Call ``booboo.init(dsn)`` once at start-up; uncaught exceptions in the main
thread, in other threads and in Flask, FastAPI and Django requests are then
reported. See the README for everything else.

Importing this package imports nothing beyond a few standard-library modules:
the sender and the framework integrations load when ``init()`` needs them.
"""

import sys

from . import _client, _scope

__version__ = _client.SDK_VERSION

__all__ = [
    "__version__",
    "init",
    "capture_exception",
    "capture_message",
    "set_user",
    "set_tag",
    "set_context",
    "add_breadcrumb",
    "new_scope",
    "flush",
    "close",
    "stats",
]


def init(dsn=None, app=None, environment="", **options):
    """Start reporting. Call once, at start-up.

    ``dsn`` is the project's DSN, in URL form or as a bare token (which then
    needs ``endpoint=``); ``BOOBOO_DSN`` is used when it is None. ``app`` is a
    Flask or FastAPI application. ``environment`` defaults to
    ``BOOBOO_ENVIRONMENT``. Options: ``release`` (default ``BOOBOO_RELEASE``),
    ``endpoint``, ``before_send``, ``ignore_errors``, ``sample_rate``,
    ``debug`` (default ``BOOBOO_DEBUG``), ``max_queue`` (100),
    ``shutdown_timeout`` (2.0 seconds), ``max_breadcrumbs`` (100),
    ``send_user`` (True), ``logging`` (True), ``logging_level`` ("info"),
    ``event_level`` ("error") and ``http_breadcrumbs`` (True).

    Raises TypeError or ValueError, with the reason, for a bad DSN or option.
    Calling it again replaces the previous configuration.
    """
    client = _client.build(dsn, environment, options)
    _client.activate(client)
    try:
        client.start(app)
    except BaseException:
        client.close(0)
        raise


# sys.exception() (3.11+) gives the exception without building the exc_info() tuple.
_exception_being_handled = getattr(sys, "exception", None) or (lambda: sys.exc_info()[1])


def capture_exception(exc=None):
    """Report ``exc`` (by default the exception being handled); return the event id or None."""
    try:
        client = _client._current
        if client is None:
            return None
        if exc is None:
            exc = _exception_being_handled()  # an exception or None, nothing else
            if exc is None:
                return None
        else:
            if isinstance(exc, tuple) and len(exc) == 3:  # an exc_info() triple
                exc = exc[1]
            if not isinstance(exc, BaseException):
                client._warn("capture_exception", "booboo: capture_exception() takes an exception, not %s",
                             type(exc).__name__)
                return None
        return client.capture_exception(exc)
    except Exception:
        return None


def capture_message(message, level="info"):
    """Report a message (``level`` is "error", "warning" or "info"); return the event id or None."""
    try:
        client = _client.current()
        return client.capture_message(message, level) if client is not None else None
    except Exception:
        return None


def set_user(user):
    """Attach ``user`` (a dict: id, email, username, ip_address, ...) to later events of this scope; None forgets it."""
    try:
        client = _client.current()
        if client is not None:
            client.set_user(user)
    except Exception:
        pass


def set_tag(key, value):
    """Attach a string tag to later events of this scope; a value of None removes it."""
    try:
        client = _client.current()
        if client is not None:
            client.set_tag(key, value)
    except Exception:
        pass


def set_context(name, data):
    """Attach ``data`` (a dict) as ``context[name]`` of later events of this scope; None removes it."""
    try:
        client = _client.current()
        if client is not None:
            client.set_context(name, data)
    except Exception:
        pass


def add_breadcrumb(message=None, category=None, level="info", data=None):
    """Record a step that leads up to later events of this scope (the newest ``max_breadcrumbs`` are kept).

    ``level`` is "debug", "info", "warning", "error" or "fatal"; ``data`` a
    dict of details (keys that look secret have their values filtered).
    """
    try:
        client = _client.current()
        if client is not None:
            client.add_breadcrumb(message, category, level, data)
    except Exception:
        pass


def new_scope():
    """``with booboo.new_scope():`` — user, tags, contexts and breadcrumbs set inside stay inside.

    The scope starts as a copy of the one around it. Frameworks open one per
    request by themselves; use this for a job in a worker or a script, or for
    an asyncio task of your own.
    """
    return _scope.NewScope()


def flush(timeout=None):
    """Wait until queued events are sent, at most ``timeout`` seconds (default shutdown_timeout).

    Returns True when nothing is left to send, False when the time ran out.
    """
    try:
        client = _client.current()
        return client.flush(timeout) if client is not None else True
    except Exception:
        return False


def close(timeout=None):
    """Flush (at most ``timeout``, default shutdown_timeout), then stop reporting and unhook."""
    try:
        client = _client.current()
        if client is not None:
            client.close(timeout)
    except Exception:
        pass


def stats():
    """What happened to this process's events: ``{"sent": n, "queued": n, "dropped": {reason: n}}``."""
    try:
        client = _client.current()
        if client is not None:
            return client.stats()
    except Exception:
        pass
    return {"sent": 0, "queued": 0, "dropped": {}}
