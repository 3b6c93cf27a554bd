"""Django: a scope per request, and crashes through the ``got_request_exception`` signal.

Django sends that signal only for exceptions that become a 500 response;
``Http404``, ``PermissionDenied``, ``SuspiciousOperation`` and bad requests
have their own responses and never reach it, so they are not reported. No
middleware and no ``INSTALLED_APPS`` entry is needed.

Each request runs in a scope of its own: ``BaseHandler.get_response`` (and
its async twin), which runs the middleware, the view and Django's exception
handling, is wrapped to open one, as sentry-python does. The scope knows the
request, so log records and ``capture_message`` from the view carry it, and
asks ``request.user`` for the signed-in user when an event is captured.
"""

import sys

from django.core.handlers.base import BaseHandler
from django.core.signals import got_request_exception

from .. import _client, _event, _scope

_DISPATCH_UID = "booboo-sdk"
_original_get_response = None
_original_get_response_async = None


def install():
    global _original_get_response, _original_get_response_async
    from . import logging as logging_integration

    # runserver's access log ("GET /x" 500) and the security log of the
    # requests Django answers with 400 are not crashes.
    logging_integration.ignore_logger("django.server")
    logging_integration.ignore_logger("django.security")
    got_request_exception.connect(_on_request_exception, weak=False, dispatch_uid=_DISPATCH_UID)
    if _original_get_response is None:
        _original_get_response = BaseHandler.get_response
        BaseHandler.get_response = _get_response
        original_async = getattr(BaseHandler, "get_response_async", None)
        if original_async is not None:
            _original_get_response_async = original_async
            BaseHandler.get_response_async = _get_response_async


def uninstall():
    global _original_get_response, _original_get_response_async
    got_request_exception.disconnect(dispatch_uid=_DISPATCH_UID)
    if _original_get_response is not None and BaseHandler.__dict__.get("get_response") is _get_response:
        BaseHandler.get_response = _original_get_response
        _original_get_response = None
        if _original_get_response_async is not None:
            BaseHandler.get_response_async = _original_get_response_async
            _original_get_response_async = None


def _request_scope(request):
    """A fresh scope for one request, from the process-wide one; None when not reporting."""
    client = _client.current()
    if client is None:
        return None
    try:
        scope = client.scope.fork(client.max_breadcrumbs, with_breadcrumbs=False)
        scope.request = lambda: _request_data(request)
        scope.request_user = lambda: _user_of(request)
        if client.max_breadcrumbs:
            scope.add_breadcrumb(_scope.breadcrumb(
                "%s %s" % (request.method, request.path), "request", "info", None, "http"))
        return scope
    except Exception:
        return None


def _get_response(self, request):
    scope = _request_scope(request)
    if scope is None:
        return _original_get_response(self, request)
    token = _scope.enter(scope)
    try:
        return _original_get_response(self, request)
    finally:
        _scope.leave(token)


async def _get_response_async(self, request):
    scope = _request_scope(request)
    if scope is None:
        return await _original_get_response_async(self, request)
    token = _scope.enter(scope)
    try:
        return await _original_get_response_async(self, request)
    finally:
        _scope.leave(token)


def _on_request_exception(sender, request=None, **kwargs):
    # Django calls receivers without catching what they raise: nothing here may.
    client = _client.current()
    exc = sys.exc_info()[1]
    if client is None or exc is None:
        return
    user = _user_of(request) if client.send_user else None
    client.capture_exception(exc, request=_request_data(request), handled=False, user=user)


def _request_data(request):
    if request is None:
        return None
    try:
        try:
            url = "%s://%s%s" % (request.scheme, request.get_host(), request.path)
        except Exception:  # DisallowedHost: the Host header is not in ALLOWED_HOSTS
            url = request.path
        return _event.request_data(
            request.method or "",
            url,
            list(request.headers.items()),
            request.META.get("QUERY_STRING", ""),
        )
    except Exception:
        return None


def _user_of(request):
    """``request.user``'s id, username and email when someone is signed in, else None.

    ``request.user`` exists only with Django's AuthenticationMiddleware (or a
    middleware of the application's own that sets it); reading it may query
    the session and user tables once, as the view itself would.
    """
    if request is None:
        return None
    try:
        user = request.__dict__.get("user")
        if user is None:
            user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        info = {}
        pk = getattr(user, "pk", None)
        if pk is not None:
            info["id"] = str(pk)
        get_username = getattr(user, "get_username", None)
        username = get_username() if callable(get_username) else getattr(user, "username", None)
        if username:
            info["username"] = str(username)
        email = getattr(user, "email", None)
        if email:
            info["email"] = str(email)
        return info or None
    except Exception:
        return None
