"""FastAPI (and any Starlette application): ``booboo.init(dsn, app=app)``.

An ASGI middleware is added in front of the application's own middleware,
just inside Starlette's ``ServerErrorMiddleware``. It sees exactly the
exceptions that no exception handler of the application turned into a
response, reports them and raises them again, so ``ServerErrorMiddleware``
still produces the application's usual 500 response.

Each HTTP or websocket connection runs in a scope of its own, set in a
context variable for the duration of the call: the request's asyncio task,
and the worker threads Starlette runs sync endpoints in, see it, and no
other request does. With Starlette's ``AuthenticationMiddleware``, the
signed-in user (``scope["user"]``) is attached to events.
"""

from .. import _client, _event, _scope


class CaptureErrors:
    """Pure ASGI middleware (no BaseHTTPMiddleware, so streaming is untouched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _enter_request_scope(scope)
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            client = _client.current()
            if client is not None:
                client.capture_exception(exc, request=_request_data(scope), handled=False)
            raise
        finally:
            if token is not None:
                _scope.leave(token)


def _enter_request_scope(asgi_scope):
    client = _client.current()
    if client is None:
        return None
    try:
        scope = client.scope.fork(client.max_breadcrumbs, with_breadcrumbs=False)
        scope.request = lambda: _request_data(asgi_scope)
        scope.request_user = lambda: _user_of(asgi_scope)
        if client.max_breadcrumbs:
            scope.add_breadcrumb(_scope.breadcrumb(
                "%s %s" % (asgi_scope.get("method") or "WEBSOCKET", asgi_scope.get("path", "")),
                "request", "info", None, "http"))
        return _scope.enter(scope)
    except Exception:
        return None


def _user_of(asgi_scope):
    """Starlette's ``scope["user"]`` (AuthenticationMiddleware), when someone is signed in."""
    try:
        if "user" not in asgi_scope:
            return None
        user = asgi_scope["user"]
        if not getattr(user, "is_authenticated", False):
            return None
        info = {}
        for key, attribute in (("id", "identity"), ("username", "display_name"), ("email", "email")):
            try:
                value = getattr(user, attribute, None)
            except Exception:  # BaseUser.identity raises NotImplementedError unless overridden
                value = None
            if value:
                info[key] = str(value)
        return info or None
    except Exception:
        return None


def install(app):
    if any(getattr(entry, "cls", None) is CaptureErrors for entry in app.user_middleware):
        return
    try:
        app.add_middleware(CaptureErrors)
    except RuntimeError as error:
        raise ValueError(
            "booboo: could not add the error-capturing middleware to the app (%s); call "
            "booboo.init(dsn, app=app) before the application starts serving" % error
        ) from None


def _request_data(scope):
    try:
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope.get("headers") or ()
        ]
        host = next((value for name, value in headers if name.lower() == "host"), "")
        if not host and scope.get("server"):
            host = "%s:%s" % tuple(scope["server"][:2])
        path = scope.get("root_path", "") + scope.get("path", "")
        scheme = scope.get("scheme") or ("ws" if scope.get("type") == "websocket" else "http")
        return _event.request_data(
            scope.get("method") or "GET",
            "%s://%s%s" % (scheme, host, path),
            headers,
            (scope.get("query_string") or b"").decode("latin-1"),
        )
    except Exception:
        return None

