"""Flask: ``booboo.init(dsn, app=app)`` reports the errors that become server errors.

* An exception no error handler takes reaches Flask's ``handle_exception``,
  which sends the ``got_request_exception`` signal before it renders the 500
  page (or re-raises, when the app propagates exceptions). The signal reports
  it.
* An exception the application's own error handler answers with a 5xx
  response is reported too: that handler is the application's error page.
  Flask looks handlers up through ``_find_error_handler``; the handler it
  finds is wrapped to look at the status of what it returns.
* HTTP exceptions (``abort(404)``, routing errors) and exceptions the
  application answers with anything below 500 are responses, not crashes.

Nothing here sits on the path an exception travels, so the application's
responses, logs and tracebacks are what they would be without the SDK.

Each request runs in a scope of its own: ``app.wsgi_app`` is wrapped (the
way Flask documents for WSGI middleware) to open one, so ``set_user`` in a
view or a ``before_request`` belongs to that request alone, and log records
and ``capture_message`` carry the request.
"""

import inspect

from flask import got_request_exception, request
from werkzeug.exceptions import HTTPException

from .. import _client, _event, _scope


def install(app):
    if app.extensions.get("booboo"):
        return
    app.extensions["booboo"] = True
    app.wsgi_app = _ScopePerRequest(app.wsgi_app)
    got_request_exception.connect(_on_unhandled_exception, app, weak=False)
    find_error_handler = getattr(app, "_find_error_handler", None)
    if find_error_handler is not None:

        def find_reporting_error_handler(e, *args, **kwargs):
            handler = find_error_handler(e, *args, **kwargs)
            if handler is None or isinstance(e, HTTPException):
                return handler
            return _reporting_server_errors(handler)

        app._find_error_handler = find_reporting_error_handler


class _ScopePerRequest:
    """WSGI middleware: the request, and whatever the application sets meanwhile, in a scope of its own."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        client = _client.current()
        if client is None:
            return self.wsgi_app(environ, start_response)
        try:
            scope = client.scope.fork(client.max_breadcrumbs, with_breadcrumbs=False)
            scope.request = lambda: _event.wsgi_request_data(environ)
            if client.max_breadcrumbs:
                scope.add_breadcrumb(_scope.breadcrumb(
                    "%s %s" % (environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")),
                    "request", "info", None, "http"))
            token = _scope.enter(scope)
        except Exception:
            return self.wsgi_app(environ, start_response)
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            _scope.leave(token)


def _reporting_server_errors(handler):
    """The application's error handler, reporting the error when it answers with a 5xx."""
    if inspect.iscoroutinefunction(handler):

        async def report_server_errors(error):
            response = await handler(error)
            if _status_of(response) >= 500:
                _report(error)
            return response

    else:

        def report_server_errors(error):
            response = handler(error)
            if _status_of(response) >= 500:
                _report(error)
            return response

    return report_server_errors


def _on_unhandled_exception(sender, exception=None, **kwargs):
    if exception is not None and not isinstance(exception, HTTPException):
        _report(exception)


def _report(exc):
    client = _client.current()
    if client is not None:
        client.capture_exception(exc, request=_request_data(), handled=False)


def _request_data():
    try:
        return _event.request_data(
            request.method,
            request.base_url,
            list(request.headers.items()),
            request.query_string.decode("latin-1"),
        )
    except Exception:
        return None


def _status_of(response):
    """The status code a view-style return value will have, without building the response."""
    try:
        if isinstance(response, tuple):
            if len(response) >= 2 and not isinstance(response[1], (dict, list)):
                status = response[1]
                if isinstance(status, int):
                    return status
                return int(str(status).split()[0])
            response = response[0]
        status = getattr(response, "status_code", None)
        return status if isinstance(status, int) else 200
    except Exception:
        return 200
