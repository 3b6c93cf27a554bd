"""FastAPI (and any Starlette application): ``booboo.init(dsn, app=app)``.

An ASGI middleware is added in front of the application's own middleware,
just inside Starlette's ``ServerErrorMiddleware``. It sees exactly the
exceptions that no exception handler of the application turned into a
response, reports them and raises them again, so ``ServerErrorMiddleware``
still produces the application's usual 500 response.
"""

from .. import _client, _event


class CaptureErrors:
    """Pure ASGI middleware (no BaseHTTPMiddleware, so streaming is untouched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            client = _client.current()
            if client is not None:
                client.capture_exception(exc, request=_request_data(scope))
            raise


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

