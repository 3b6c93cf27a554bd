"""Logging: records become breadcrumbs, and records at ``event_level`` become events.

``logging.Logger.callHandlers`` is wrapped, as sentry-python does, so every
record that a logger lets through is seen whatever handlers and propagation
the application configured (uvicorn's loggers do not propagate to the root).
A record below its logger's level is never created, so an INFO breadcrumb
needs a logger that lets INFO through (``logging.basicConfig(level=INFO)``).

The wrapper costs a record that is neither a breadcrumb nor an event two
comparisons; the logging call itself goes on exactly as before.
"""

import contextvars
import logging

from .. import _client, _event, _scope

_original_call_handlers = None
_capturing = contextvars.ContextVar("booboo_capturing_a_record", default=False)
"""True while a record is being turned into an event, in this thread or task."""
_LEVEL_NAMES = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "fatal"}
_MAX_MESSAGE = _scope.MAX_BREADCRUMB_MESSAGE
_ignored = {"booboo"}
"""Loggers whose records (and their children's) are neither breadcrumbs nor events."""
_is_ignored = {}
"""Each logger name's verdict, worked out once."""


def ignore_logger(name):
    """Leave out the records of logger ``name`` and of its children.

    The SDK's own logger is always left out; framework integrations add
    loggers that repeat what they report or log deliberate answers (Django's
    ``django.server`` access log, ``django.security`` for 400s).
    """
    _ignored.add(name)
    _is_ignored.clear()


def _ignored_name(name):
    verdict = _is_ignored.get(name)
    if verdict is None:
        text = name if type(name) is str else str(name)
        verdict = any(text == ignored or text.startswith(ignored + ".") for ignored in _ignored)
        if len(_is_ignored) < 4096:
            _is_ignored[name] = verdict
    return verdict


def install():
    global _original_call_handlers
    if _original_call_handlers is None:
        _original_call_handlers = logging.Logger.callHandlers
        logging.Logger.callHandlers = _call_handlers


def uninstall():
    global _original_call_handlers
    # Put the original back only if nobody wrapped ours meanwhile; otherwise
    # ours stays, and does nothing without an active client.
    if _original_call_handlers is not None and logging.Logger.__dict__.get("callHandlers") is _call_handlers:
        logging.Logger.callHandlers = _original_call_handlers
        _original_call_handlers = None


def _call_handlers(self, record):
    client = _client._current
    if client is not None:
        try:
            if record.levelno >= client.log_threshold:
                _observe(client, record)
        except Exception:
            pass
    return _original_call_handlers(self, record)


def _observe(client, record):
    # This runs for every record at logging_level and above, so it is kept
    # to a handful of C calls: a storm of 10,000 records a second must not
    # slow the application noticeably (scripts/bench-sdk-logging).
    name = record.name
    # The SDK's own records never come back as events or breadcrumbs.
    if _is_ignored.get(name) or _ignored_name(name):
        return
    if _capturing.get():
        return  # a record logged while a record is being captured (a __repr__ that logs)
    levelno = record.levelno
    if levelno >= client.log_event_threshold:
        token = _capturing.set(True)
        try:
            client.capture_log_record(record)
        finally:
            _capturing.reset(token)
        return
    try:
        message = record.getMessage()
    except Exception:
        message = _scope.breadcrumb(record.msg, None, None, None)[3]  # str() of it, safely
    if type(message) is not str:
        message = _scope.breadcrumb(message, None, None, None)[3]
    elif len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    (_scope._active.get() or client.scope).breadcrumbs.append(
        (record.created, "log", name, message, _LEVEL_NAMES.get(levelno) or _event.level_name(levelno), None)
    )
