"""Flask: ``booboo.init(dsn, app=app)`` reports the errors that become server errors.

Flask passes a failing request through two methods of the application: first
``handle_user_exception`` (which runs the application's own error handlers),
then, if no handler took the error, ``handle_exception`` (which renders the
500 page). Both are wrapped on this one application object:

* an exception that reaches ``handle_exception`` is reported before the 500
  page is rendered;
* an exception the application's own handler turns into a 5xx response is
  reported too, since that handler is the application's error page;
* HTTP exceptions (``abort(404)``, routing errors) and exceptions the
  application answers with anything below 500 are responses, not crashes.

The wrappers return exactly what Flask's methods return and re-raise exactly
what they raise, so the application's responses do not change.
"""

from flask import request
from werkzeug.exceptions import HTTPException

from .. import _client, _event


def install(app):
    if app.extensions.get("booboo"):
        return
    app.extensions["booboo"] = True
    handle_user_exception = app.handle_user_exception
    handle_exception = app.handle_exception

    def handle_user_exception_and_report(e):
        response = handle_user_exception(e)
        if not isinstance(e, HTTPException) and _status_of(response) >= 500:
            _report(e)
        return response

    def report_and_handle_exception(e):
        if not isinstance(e, HTTPException):
            _report(e)
        return handle_exception(e)

    app.handle_user_exception = handle_user_exception_and_report
    app.handle_exception = report_and_handle_exception


def _report(exc):
    client = _client.current()
    if client is not None:
        client.capture_exception(exc, request=_request_data())


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
