"""The client: options, scopes, hooks, and the one place where events are dropped.

Contract with the host application: after ``init()`` has returned, nothing
here raises into the application, blocks it on the network, or changes how
its own exceptions propagate and print.
"""

import os
import sys
import time

from . import _event, _scope

SDK_VERSION = "0.17.0"

_DROPS_THAT_ARE_CHOICES = frozenset({"sampled_out", "ignored_error", "before_send_dropped"})
"""Drops the application asked for: logged at debug level only."""

_DROP_EXPLANATIONS = {
    "sampled_out": "sampled out (sample_rate=%(sample_rate)s)",
    "ignored_error": "its exception type is in ignore_errors",
    "before_send_dropped": "before_send returned None",
    "before_send_failed": "before_send raised %(detail)s; the event is dropped rather than sent unscrubbed",
    "queue_full": "the send queue is full (max_queue=%(max_queue)s); the server is slow or unreachable",
    "too_large": "it is larger than %(limit)s bytes even with locals, source lines and middle frames removed",
    "unencodable": "it cannot be encoded as JSON: %(detail)s",
    "send_failed": "the server at %(endpoint)s could not be reached for %(budget)s s (%(detail)s); giving up on it",
    "rejected": "the server at %(endpoint)s rejected it: %(detail)s",
    "rate_limited": "the server at %(endpoint)s is rate limiting this project (%(detail)s)",
    "shutdown": "the SDK was shut down before it could be sent (shutdown_timeout=%(shutdown_timeout)s s)",
    "closed": "it was captured after the client was closed",
    "no_thread": "the sender thread could not be started",
    "internal_error": "the SDK failed building it: %(detail)s",
}

_WARNING_INTERVAL = 60.0
_HANDSHAKE = "handshake"
_PENDING = "pending"
_READY = "ready"

_current = None


def current():
    """The client that ``init()`` made, or None."""
    return _current


def _logger():
    import logging

    return logging.getLogger("booboo")


class Client:
    """Holds one ``init()``'s configuration and sends its events.

    Built by ``booboo.init()``; ``start()`` then sends the handshake and
    installs the hooks. ``booboo.testing`` builds one without starting it.
    """

    def __init__(self, target, environment, release, before_send, ignore_errors,
                 sample_rate, debug, max_queue, shutdown_timeout, max_breadcrumbs=100,
                 send_user=True, logging=True, logging_level=20, event_level=40,
                 http_breadcrumbs=True):
        import threading

        from . import _transport, _worker

        self.target = target
        self.environment = environment
        self.release = release
        self.before_send = before_send
        self.ignore_errors = ignore_errors
        self.sample_rate = sample_rate
        self.debug = debug
        self.max_queue = max_queue
        self.shutdown_timeout = shutdown_timeout
        self._random = None
        if sample_rate < 1.0:
            import random

            self._random = random.random
        self.max_breadcrumbs = max_breadcrumbs
        self.send_user = send_user
        self.logging = logging
        self.logging_level = logging_level
        self.event_level = event_level
        self.http_breadcrumbs = http_breadcrumbs
        never = float("inf")
        # The logging integration compares each record's level with these
        # two numbers and nothing else before it gives up on a record.
        self.log_event_threshold = event_level if logging and event_level is not None else never
        self.log_threshold = min(
            self.log_event_threshold,
            logging_level if logging and logging_level is not None and max_breadcrumbs else never,
        )
        self.scope = _scope.Scope(max_breadcrumbs)
        """The process-wide scope: used outside any request and any new_scope() block."""
        self._counts_lock = threading.Lock()
        self._sent = 0
        self._dropped = {}
        self._last_warning = {}
        self._recorder = None
        self.transport = _transport.Transport(
            target, "booboo-sdk/%s python/%s" % (SDK_VERSION, sys.version.split()[0])
        )
        # The transport belongs to the worker thread alone, which also closes
        # its connection when it stops.
        self.worker = _worker.Worker(max_queue, self._process, on_exit=self.transport.forget_connection)
        if debug:
            _enable_debug_logging()

    # --- lifecycle -------------------------------------------------------

    def start(self, app):
        """Install hooks and integrations and send the handshake; may raise (bad ``app``)."""
        from . import _hooks

        _hooks.install(app, self)
        self.worker.submit((_HANDSHAKE, {"handshake": True, "sdk": "python/" + SDK_VERSION}))
        if self.debug:
            _logger().debug(
                "booboo: started, sending to %s (environment=%r, release=%r)",
                self.target.endpoint, self.environment, self.release,
            )

    def flush(self, timeout=None):
        """Wait for queued events to be sent; True if all were, False on timeout."""
        try:
            return self.worker.flush(self._seconds(timeout, "flush"))
        except Exception as exc:
            self._warn("flush", "booboo: flush() failed: %r", exc)
            return False

    def close(self, timeout=None):
        """Flush for at most ``timeout`` (default shutdown_timeout), then stop sending."""
        global _current
        try:
            was_current = _current is self
            if was_current:
                _current = None
            if was_current or _current is None:
                from . import _hooks

                _hooks.uninstall(self)
            left = self.worker.close(self._seconds(timeout, "close"))
            events = [item for item in left if item[0] != _HANDSHAKE]
            if events:
                self.drop("shutdown", count=len(events))
        except Exception as exc:
            self._warn("close", "booboo: close() failed: %r", exc)

    def _seconds(self, timeout, caller):
        if timeout is None:
            return self.shutdown_timeout
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout == timeout:
            return min(max(0.0, float(timeout)), 1e9)
        self._warn(caller, "booboo: %s() takes a number of seconds or None, not %r; using "
                   "shutdown_timeout (%s s)", caller, timeout, self.shutdown_timeout)
        return self.shutdown_timeout

    def after_fork_in_child(self):
        self.worker.after_fork_in_child()
        self.transport.forget_connection()
        self.transport.paused_until = 0.0
        import threading

        self._counts_lock = threading.Lock()
        self._sent = 0
        self._dropped = {}

    # --- scopes -----------------------------------------------------------

    def set_user(self, user):
        if user is not None and not isinstance(user, dict):
            self._warn("set_user", "booboo: set_user() takes a dict or None, not %s; ignored",
                       type(user).__name__)
            return
        _scope.current(self).user = dict(user) if user else None

    def set_tag(self, key, value):
        if not isinstance(key, str) or not key:
            self._warn("set_tag", "booboo: set_tag() needs a non-empty string key; ignored")
            return
        scope = _scope.current(self)
        tags = dict(scope.tags)
        if value is None:
            tags.pop(key, None)
        else:
            try:
                tags[key] = value if isinstance(value, str) else str(value)
            except Exception as error:
                self._warn("set_tag", "booboo: set_tag(%r): str() of the value raised %r; ignored",
                           key, error)
                return
        scope.tags = tags

    def set_context(self, name, data):
        if not isinstance(name, str) or not name or name in ("sdk", "runtime", "user"):
            self._warn(
                "set_context",
                "booboo: set_context() needs a string name other than 'sdk', 'runtime' "
                "and 'user' (use set_user for users); ignored %r", name,
            )
            return
        if data is not None and not isinstance(data, dict):
            self._warn("set_context", "booboo: set_context() takes a dict or None, not %s; ignored",
                       type(data).__name__)
            return
        scope = _scope.current(self)
        contexts = dict(scope.contexts)
        if data is None:
            contexts.pop(name, None)
        else:
            contexts[name] = dict(data)
        scope.contexts = contexts

    def add_breadcrumb(self, message, category, level, data):
        if level not in _BREADCRUMB_LEVELS:
            self._warn("breadcrumb_level", "booboo: add_breadcrumb() level must be one of %s, not %r; "
                       "using 'info'", ", ".join(_BREADCRUMB_LEVELS), level)
            level = "info"
        if category is not None and not isinstance(category, str):
            category = str(category)
        if data is not None:
            if not isinstance(data, dict):
                self._warn("breadcrumb_data", "booboo: add_breadcrumb() data must be a dict or None, "
                           "not %s; ignored", type(data).__name__)
                data = None
            else:
                data = dict(data)  # later changes by the application do not reach it
        if not self.max_breadcrumbs:
            return
        _scope.current(self).add_breadcrumb(_scope.breadcrumb(message, category, level, data))

    # --- capturing (the application's threads) ----------------------------

    def capture_exception(self, exc, request=None, handled=True, user=None, log=None):
        """Capture ``exc``; return the event id, or None if it will not be sent.

        ``handled`` says whether the application caught it (False from the
        hooks and frameworks). ``request`` and ``user`` come from a framework
        integration that knows them better than the scope; a user the
        application set itself wins. ``log`` holds the fields of the log
        record that reported it.
        """
        try:
            if not _first_report(exc):
                self._already_reported(exc)
                return None
            if self.ignore_errors and isinstance(exc, self.ignore_errors):
                self.drop("ignored_error")
                return None
            if self._random is not None and self._random() >= self.sample_rate:
                self.drop("sampled_out")
                return None
            scope = self._scope_snapshot(user)
            pending = _event.snapshot_exception(exc, scope, request if request is not None else scope[4])
            pending.base["handled"] = handled
            if log is not None:
                pending.base.update(log)
        except Exception as error:
            self.drop("internal_error", detail=repr(error))
            return None
        return self._submit(pending)

    def capture_message(self, message, level):
        try:
            if level not in ("error", "warning", "info"):
                self._warn("level", "booboo: capture_message() level must be 'error', "
                           "'warning' or 'info', not %r; using 'info'", level)
                level = "info"
            if self._random is not None and self._random() >= self.sample_rate:
                self.drop("sampled_out")
                return None
            scope = self._scope_snapshot(None)
            pending = _event.snapshot_message(message, level, scope)
            if scope[4] is not None:
                pending.base["request"] = scope[4]
        except Exception as error:
            self.drop("internal_error", detail=repr(error))
            return None
        return self._submit(pending)

    def capture_log_record(self, record):
        """An event from a log record at ``event_level`` or above (the logging integration)."""
        try:
            exc_info = record.exc_info
            exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
            if isinstance(exc, BaseException):
                if not _not_reported_yet(exc):
                    # Django's and uvicorn's error logs repeat what an
                    # integration reported: the event is not built at all.
                    self._already_reported(exc)
                    return None
                return self.capture_exception(exc, handled=True, log=_event.log_fields(record))
            if self.worker.pending() >= self.max_queue and self._recorder is None:
                # A storm of error records: give up before walking the stack.
                self.drop("queue_full")
                return None
            if self._random is not None and self._random() >= self.sample_rate:
                self.drop("sampled_out")
                return None
            scope = self._scope_snapshot(None)
            pending = _event.snapshot_log_message(record, scope)
            if scope[4] is not None:
                pending.base["request"] = scope[4]
        except Exception as error:
            self.drop("internal_error", detail=repr(error))
            return None
        return self._submit(pending)

    def _already_reported(self, exc):
        # Not a lost event: the crash was captured once already, so it is
        # not counted among the drops either.
        if self.debug:
            _logger().debug("booboo: %s was reported already; not sending it again", type(exc).__name__)

    def _scope_snapshot(self, user):
        snapshot = _scope.current(self).snapshot(self.send_user)
        if user is not None and snapshot[0] is None and self.send_user:
            snapshot = (user,) + snapshot[1:]
        return snapshot

    def _submit(self, pending):
        try:
            recorder = self._recorder
            if recorder is not None:
                return self._record(pending, recorder)
            item = (_PENDING, pending)
            if self.before_send is not None:
                # The hook gets the finished event and may look at thread-local
                # state, so it runs here, on the thread that captured.
                event = self._run_before_send(self._complete(pending))
                if event is None:
                    return None
                item = (_READY, event)
            reason = self.worker.submit(item)
        except Exception as error:
            self.drop("internal_error", detail=repr(error))
            return None
        if reason is not None:
            self.drop(reason)
            return None
        return pending.event_id

    def _complete(self, pending):
        return _event.complete(pending, SDK_VERSION, self.environment, self.release)

    def _run_before_send(self, event):
        try:
            result = self.before_send(event)
        except Exception as error:
            self.drop("before_send_failed", detail="%s: %s" % (type(error).__name__, error))
            return None
        if result is None:
            self.drop("before_send_dropped")
            return None
        if not isinstance(result, dict):
            self.drop("before_send_failed",
                      detail="a %s instead of the event dict or None" % type(result).__name__)
            return None
        return result

    def _record(self, pending, recorder):
        """For booboo.testing: the whole pipeline except the network, right here."""
        event = self._complete(pending)
        if self.before_send is not None:
            event = self._run_before_send(event)
            if event is None:
                return None
        body = self._encode(event)
        if body is None:
            return None
        import json

        recorder.append(json.loads(body))
        with self._counts_lock:
            self._sent += 1
        return pending.event_id

    # --- sending (the worker thread) -------------------------------------

    def _process(self, item):
        _event.make_event_ids_ahead()
        kind, payload = item
        if kind == _HANDSHAKE:
            self._send_handshake(payload)
            return
        try:
            event = self._complete(payload) if kind == _PENDING else payload
            body = self._encode(event)
        except Exception as error:
            self.drop("internal_error", detail=repr(error))
            return
        if body is None:
            return
        try:
            outcome = self.transport.deliver(body, self.worker.stop)
        except Exception as error:
            self.drop("internal_error", detail=repr(error))
            return
        if outcome.result == "sent":
            with self._counts_lock:
                self._sent += 1
            if self.debug:
                _logger().debug("booboo: sent event %s (HTTP %s)", event.get("event_id"), outcome.status)
        else:
            detail = outcome.detail
            if outcome.status is not None and outcome.result == "rejected":
                detail = "HTTP %d %s" % (outcome.status, detail)
            self.drop(outcome.result, detail=detail.strip())

    def _encode(self, event):
        try:
            body, trimmed = _event.encode(event)
        except (TypeError, ValueError, RecursionError) as error:
            self.drop("unencodable", detail=str(error))
            return None
        if body is None:
            self.drop("too_large")
        elif trimmed and self.debug:
            _logger().debug("booboo: event %s trimmed to %d bytes", event.get("event_id"), len(body))
        return body

    def _send_handshake(self, handshake):
        import json

        from . import _hooks

        _hooks.install_deferred(self)

        try:
            outcome = self.transport.deliver(json.dumps(handshake).encode(), self.worker.stop)
        except Exception as error:
            self._warn("handshake", "booboo: the handshake failed inside the SDK: %r", error)
            return
        if outcome.result == "sent":
            if self.debug:
                _logger().debug("booboo: handshake accepted by %s", self.target.endpoint)
        elif outcome.result != "shutdown":
            # Not an event, so not a drop; but the first sign of a wrong DSN.
            detail = outcome.detail
            if outcome.status is not None:
                detail = "HTTP %d %s" % (outcome.status, detail)
            self._warn("handshake", "booboo: the handshake with %s failed (%s); events may not "
                       "arrive either", self.target.endpoint, detail.strip())

    # --- the one way an event is lost -------------------------------------

    def drop(self, reason, detail="", count=1):
        """Count a discarded event under ``reason`` and tell the log, rate-limited."""
        try:
            with self._counts_lock:
                self._dropped[reason] = self._dropped.get(reason, 0) + count
            if not self.debug:
                # A storm of drops (error records with the queue full) costs a
                # count each; the explanation is written only when it is logged.
                if reason in _DROPS_THAT_ARE_CHOICES:
                    return
                last = self._last_warning.get("drop:" + reason)
                if last is not None and time.monotonic() - last < _WARNING_INTERVAL:
                    return
            explanation = _DROP_EXPLANATIONS.get(reason, reason) % {
                "detail": detail or "no detail",
                "sample_rate": self.sample_rate,
                "max_queue": self.max_queue,
                "limit": _event.PROTOCOL_BODY_LIMIT,
                "endpoint": self.target.endpoint,
                "budget": round(self.transport.retry_budget),
                "shutdown_timeout": self.shutdown_timeout,
            }
            what = "an event was" if count == 1 else "%d events were" % count
            if reason in _DROPS_THAT_ARE_CHOICES:
                if self.debug:
                    _logger().debug("booboo: %s dropped: %s", what, explanation)
            else:
                self._warn("drop:" + reason, "booboo: %s dropped: %s", what, explanation)
        except Exception:
            pass

    def stats(self):
        with self._counts_lock:
            return {
                "sent": self._sent,
                "dropped": dict(self._dropped),
                "queued": self.worker.pending(),
            }

    def _warn(self, key, message, *args):
        """A warning on the ``booboo`` logger, at most once a minute per key (always when debugging)."""
        try:
            now = time.monotonic()
            last = self._last_warning.get(key)
            if self.debug or last is None or now - last >= _WARNING_INTERVAL:
                self._last_warning[key] = now
                if not self.debug and last is None:
                    message += " (repeats of this warning are held back for %d s)" % _WARNING_INTERVAL
                _logger().warning(message, *args)
        except Exception:
            pass


_BREADCRUMB_LEVELS = ("debug", "info", "warning", "error", "fatal")

_REPORTED = "__booboo_reported__"
_last_reported_without_dict = None


def _not_reported_yet(exc):
    """Whether ``exc`` has not been captured before; looks, changes nothing."""
    try:
        attributes = object.__getattribute__(exc, "__dict__")
    except Exception:
        return exc is not _last_reported_without_dict
    return _REPORTED not in attributes


def _first_report(exc):
    """True the first time an exception object is captured, False every later time.

    The mark is an entry in the exception's own ``__dict__`` (not an
    attribute lookup, so no ``__getattr__`` of the application runs); an
    exception without one is remembered as the last such one reported.
    """
    global _last_reported_without_dict
    try:
        attributes = object.__getattribute__(exc, "__dict__")
    except Exception:
        if exc is _last_reported_without_dict:
            return False
        _last_reported_without_dict = exc
        return True
    if _REPORTED in attributes:
        return False
    try:
        attributes[_REPORTED] = True
    except Exception:
        pass
    return True


def _enable_debug_logging():
    import logging

    logger = logging.getLogger("booboo")
    logger.setLevel(logging.DEBUG)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


# --- options ----------------------------------------------------------------

_OPTION_NAMES = (
    "release", "endpoint", "before_send", "ignore_errors", "sample_rate",
    "debug", "max_queue", "shutdown_timeout", "max_breadcrumbs", "send_user",
    "logging", "logging_level", "event_level", "http_breadcrumbs",
)

_LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50, "fatal": 50}


def build(dsn, environment, options):
    """A Client from ``init()``'s arguments; raises TypeError/ValueError naming the problem."""
    from . import _dsn

    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            "booboo.init() got unknown option%s %s; the options are %s"
            % ("s" if len(unknown) > 1 else "", ", ".join(map(repr, unknown)), ", ".join(_OPTION_NAMES))
        )
    if dsn is None:
        dsn = os.environ.get("BOOBOO_DSN", "")
    target = _dsn.parse(dsn, options.get("endpoint"))

    if not environment:
        environment = os.environ.get("BOOBOO_ENVIRONMENT", "")
    _require(isinstance(environment, str), "environment must be a string, not %s" % type(environment).__name__)

    release = options.get("release")
    if release is None:
        release = os.environ.get("BOOBOO_RELEASE", "")
    _require(isinstance(release, str), "release must be a string, not %s" % type(release).__name__)

    before_send = options.get("before_send")
    _require(before_send is None or callable(before_send),
             "before_send must be a function taking and returning the event dict")

    ignore_errors = options.get("ignore_errors") or ()
    if isinstance(ignore_errors, type):
        ignore_errors = (ignore_errors,)
    try:
        ignore_errors = tuple(ignore_errors)
    except TypeError:
        raise ValueError("booboo: ignore_errors must be a list of exception classes") from None
    for entry in ignore_errors:
        _require(isinstance(entry, type) and issubclass(entry, BaseException),
                 "ignore_errors must hold exception classes, and %r is not one" % (entry,))

    sample_rate = options.get("sample_rate", 1.0)
    _require(isinstance(sample_rate, (int, float)) and not isinstance(sample_rate, bool)
             and 0.0 <= sample_rate <= 1.0,
             "sample_rate must be a number from 0.0 to 1.0, not %r" % (sample_rate,))

    debug = options.get("debug")
    if debug is None:
        debug = _env_flag("BOOBOO_DEBUG")
    _require(isinstance(debug, bool), "debug must be True or False, not %r" % (debug,))

    max_queue = options.get("max_queue", 100)
    _require(isinstance(max_queue, int) and not isinstance(max_queue, bool) and max_queue >= 1,
             "max_queue must be a whole number of events, at least 1, not %r" % (max_queue,))

    shutdown_timeout = options.get("shutdown_timeout", 2.0)
    _require(isinstance(shutdown_timeout, (int, float)) and not isinstance(shutdown_timeout, bool)
             and 0.0 <= shutdown_timeout < float("inf"),
             "shutdown_timeout must be a number of seconds, 0 or more, not %r" % (shutdown_timeout,))

    max_breadcrumbs = options.get("max_breadcrumbs", 100)
    _require(isinstance(max_breadcrumbs, int) and not isinstance(max_breadcrumbs, bool) and max_breadcrumbs >= 0,
             "max_breadcrumbs must be a whole number, 0 or more, not %r" % (max_breadcrumbs,))

    flags = {}
    for name in ("send_user", "logging", "http_breadcrumbs"):
        flags[name] = options.get(name, True)
        _require(isinstance(flags[name], bool), "%s must be True or False, not %r" % (name, flags[name]))

    return Client(
        target,
        max_breadcrumbs=max_breadcrumbs,
        logging_level=_log_level(options, "logging_level", 20),
        event_level=_log_level(options, "event_level", 40),
        **flags,
        environment=environment,
        release=release,
        before_send=before_send,
        ignore_errors=ignore_errors,
        sample_rate=float(sample_rate),
        debug=debug,
        max_queue=max_queue,
        shutdown_timeout=float(shutdown_timeout),
    )


def _log_level(options, name, default):
    """A logging level given as a number (``logging.INFO``) or a name ("info"); None turns it off."""
    level = options.get(name, default)
    if level is None:
        return None
    if isinstance(level, str) and level.strip().lower() in _LOG_LEVELS:
        return _LOG_LEVELS[level.strip().lower()]
    _require(isinstance(level, int) and not isinstance(level, bool) and level >= 0,
             "%s must be a logging level such as logging.INFO or \"info\", or None to turn it off, "
             "not %r" % (name, level))
    return level


def _require(condition, message):
    if not condition:
        raise ValueError("booboo: " + message)


def _env_flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError("booboo: %s must be 1 or 0 (or true/false), not %r" % (name, value))


# --- the process-wide part --------------------------------------------------

_process_hooks_installed = False


def activate(client):
    """Make ``client`` the one the API functions use, closing any previous one."""
    global _current, _process_hooks_installed
    previous = _current
    if previous is not None and previous is not client:
        previous.close()
    _current = client
    if not _process_hooks_installed:
        import atexit

        atexit.register(_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _process_hooks_installed = True


def deactivate(client, restore=None):
    """For booboo.testing: put ``restore`` back as the current client if ``client`` still is."""
    global _current
    if _current is client:
        _current = restore


def _at_exit():
    client = _current
    if client is not None:
        client.close(client.shutdown_timeout)


def _after_fork_in_child():
    client = _current
    if client is not None:
        try:
            client.after_fork_in_child()
        except Exception:
            pass
