"""Where uncaught exceptions are picked up: the interpreter's hooks and the frameworks.

The hooks are process-wide and installed once; they look up the current client
each time, so a closed client stops reporting without anyone unhooking it, and
a hook that someone else has since wrapped keeps working.
"""

import os
import sys
import threading

from . import _client

_previous_excepthook = None
_previous_threading_excepthook = None
_django_installed = False
_stdlib_installed = set()


def install(app, client):
    integration = None
    if app is not None:
        integration = _integration_for(app)
    _install_interpreter_hooks()
    _install_stdlib_integrations(client)
    if integration is not None:
        integration.install(app)
    _install_django_if_used()


def uninstall(client):
    global _previous_excepthook, _previous_threading_excepthook, _django_installed
    if sys.excepthook is _excepthook:
        sys.excepthook = _previous_excepthook or sys.__excepthook__
        _previous_excepthook = None
    if threading.excepthook is _threading_excepthook:
        threading.excepthook = _previous_threading_excepthook or _default_threading_excepthook()
        _previous_threading_excepthook = None
    if _django_installed:
        from .integrations import django

        django.uninstall()
        _django_installed = False
    if "logging" in _stdlib_installed:
        from .integrations import logging

        logging.uninstall()
    if "http_client" in _stdlib_installed:
        from .integrations import http_client

        http_client.uninstall()
    _stdlib_installed.clear()


def _install_stdlib_integrations(client, deferred=False):
    """Wrap logging and http.client: now if the application imported them, else from the sender thread.

    Importing them costs tens of milliseconds (http.client pulls in the
    email package), which ``init()`` does not make the application wait
    for: the sender thread imports both anyway as it sends the handshake,
    and wraps them then.
    """
    if _client.current() is not client:
        return
    if client.logging and client.log_threshold != float("inf") and "logging" not in _stdlib_installed:
        if deferred or "logging" in sys.modules:
            from .integrations import logging

            logging.install()
            _stdlib_installed.add("logging")
    if client.http_breadcrumbs and client.max_breadcrumbs and "http_client" not in _stdlib_installed:
        if deferred or "http.client" in sys.modules:
            from .integrations import http_client

            http_client.install()
            _stdlib_installed.add("http_client")


def install_deferred(client):
    """The sender thread's half of install(): what was not imported at init() time."""
    try:
        _install_stdlib_integrations(client, deferred=True)
    except Exception:
        pass


def _install_interpreter_hooks():
    global _previous_excepthook, _previous_threading_excepthook
    if sys.excepthook is not _excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
    if threading.excepthook is not _threading_excepthook:
        _previous_threading_excepthook = threading.excepthook
        threading.excepthook = _threading_excepthook


def _excepthook(exc_type, exc_value, exc_tb):
    # KeyboardInterrupt and SystemExit are ways of stopping, not errors.
    if isinstance(exc_value, Exception):
        client = _client.current()
        if client is not None:
            client.capture_exception(exc_value, handled=False)
    (_previous_excepthook or sys.__excepthook__)(exc_type, exc_value, exc_tb)


def _threading_excepthook(args):
    if isinstance(args.exc_value, Exception):
        client = _client.current()
        if client is not None:
            client.capture_exception(args.exc_value, handled=False)
    (_previous_threading_excepthook or _default_threading_excepthook())(args)


def _default_threading_excepthook():
    # threading.__excepthook__ exists from Python 3.10 on.
    return getattr(threading, "__excepthook__", None) or threading.excepthook


def _integration_for(app):
    """The integration module for a Flask or Starlette/FastAPI app, by class, without importing either."""
    for cls in type(app).__mro__:
        where = (getattr(cls, "__module__", ""), getattr(cls, "__name__", ""))
        if where == ("flask.app", "Flask"):
            from .integrations import flask

            return flask
        if where == ("starlette.applications", "Starlette"):
            from .integrations import fastapi

            return fastapi
    raise TypeError(
        "booboo: app= must be a Flask or FastAPI application, not %s.%s; Django needs no "
        "app= (it is detected by itself)" % (type(app).__module__, type(app).__name__)
    )


def _install_django_if_used():
    """Connect to Django's signal when this process is a Django application.

    Importing Django's signals costs tens of milliseconds (they pull in
    asyncio), so a process that merely has Django installed does not pay it:
    Django must be imported already or DJANGO_SETTINGS_MODULE set, which is
    the case wherever a Django project calls ``init()`` (settings, wsgi, asgi).
    """
    global _django_installed
    if _django_installed:
        return
    if "django" not in sys.modules and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    try:
        from .integrations import django

        django.install()
    except ImportError:
        return
    except Exception as error:
        # A broken Django must not stop init(); the interpreter hooks still work.
        import logging

        logging.getLogger("booboo").warning(
            "booboo: could not connect to Django's got_request_exception signal: %r", error
        )
        return
    _django_installed = True
