"""Scopes: the user, tags, contexts, breadcrumbs and request attached to events.

There is one process-wide scope per client. A request of Django, Flask or
FastAPI, and every ``with booboo.new_scope():`` block, gets a scope of its
own, found through a context variable: each thread has its own context, and
each asyncio task runs in a copy of the context it was created in, so the
user set by one request is never attached to another request's crash. Code
outside any request and any ``new_scope()`` uses the process-wide scope, as
before scopes existed.

A scope starts as a copy of the one around it. Its user, tags and contexts
are replaced, never changed in place, so a capture can keep them without
copying; its breadcrumbs are a bounded deque, copied when an event is captured.
"""

import contextvars
import time

_active = contextvars.ContextVar("booboo_scope", default=None)

MAX_BREADCRUMB_MESSAGE = 1024


class Scope:
    __slots__ = ("user", "tags", "contexts", "breadcrumbs", "request", "request_user")

    def __init__(self, max_breadcrumbs, user=None, tags=None, contexts=None, breadcrumbs=()):
        from collections import deque

        self.user = user
        self.tags = tags if tags is not None else {}
        self.contexts = contexts if contexts is not None else {}
        self.breadcrumbs = deque(breadcrumbs, maxlen=max_breadcrumbs)
        self.request = None
        """The request being served: a dict, or a function that builds it when an event needs it."""
        self.request_user = None
        """A function giving the framework's signed-in user (a dict or None), asked at capture time."""

    def fork(self, max_breadcrumbs, with_breadcrumbs=True):
        """A new scope that starts with what this one holds."""
        child = Scope(
            max_breadcrumbs,
            self.user,
            self.tags,
            self.contexts,
            _copy(self.breadcrumbs) if with_breadcrumbs else (),
        )
        child.request = self.request
        child.request_user = self.request_user
        return child

    def add_breadcrumb(self, crumb):
        # deque.append with a maxlen is atomic under the GIL: no lock needed.
        self.breadcrumbs.append(crumb)

    def snapshot(self, send_user):
        """What a capture keeps: ``(user, tags, contexts, breadcrumbs, request)``."""
        user = self.user
        if user is None and send_user and self.request_user is not None:
            try:
                user = self.request_user()
            except Exception:
                user = None
        request = self.request
        if request is not None and not isinstance(request, dict):
            try:
                request = self.request = request()
            except Exception:
                request = self.request = None
        breadcrumbs = self.breadcrumbs
        return (user, self.tags, self.contexts, _copy(breadcrumbs) if breadcrumbs else (), request)


def _copy(breadcrumbs):
    for _ in range(3):
        try:
            return tuple(breadcrumbs)
        except RuntimeError:  # appended to by another thread meanwhile (free-threaded builds)
            continue
    return ()


def current(client):
    """The scope that applies here: this request's or block's, else the client's process-wide one."""
    scope = _active.get()
    return scope if scope is not None else client.scope


def active():
    """The request's or block's own scope, or None outside any."""
    return _active.get()


def enter(scope):
    """Make ``scope`` the active one in this context; returns the token for ``leave``."""
    return _active.set(scope)


def leave(token):
    try:
        _active.reset(token)
    except ValueError:
        # Reset from another context than the one that set it (a framework
        # that finished the request elsewhere): the next request replaces it.
        _active.set(None)


def breadcrumb(message, category, level, data, kind="default", timestamp=None):
    """A breadcrumb as kept in a scope; turned into the protocol's dict on the sender thread."""
    if message is not None and type(message) is not str:
        try:
            message = str(message)
        except Exception:
            message = "<%s: str() raised>" % type(message).__name__
    if message is not None and len(message) > MAX_BREADCRUMB_MESSAGE:
        message = message[: MAX_BREADCRUMB_MESSAGE - 3] + "..."
    return (timestamp or time.time(), kind, category, message, level, data)


class NewScope:
    """``with booboo.new_scope():`` — what is set inside stays inside.

    Usable in threads, asyncio tasks, workers and scripts; nests. The scope
    starts as a copy of the one around it, breadcrumbs included.
    """

    __slots__ = ("_token", "scope")

    def __init__(self):
        self._token = None
        self.scope = None

    def __enter__(self):
        from . import _client

        client = _client.current()
        outer = _active.get()
        limit = client.max_breadcrumbs if client is not None else 100
        if outer is None and client is not None:
            outer = client.scope
        self.scope = outer.fork(limit) if outer is not None else Scope(limit)
        self._token = _active.set(self.scope)

    def __exit__(self, *exc_info):
        if self._token is not None:
            leave(self._token)
            self._token = None
        return False
