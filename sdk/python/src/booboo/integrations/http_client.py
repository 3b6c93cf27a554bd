"""Outgoing HTTP as breadcrumbs: ``http.client``, and so urllib, urllib3 and requests.

``HTTPConnection.putrequest`` notes the method, URL and start;
``getresponse`` adds the breadcrumb with the status and the duration. The
URL loses its user and password, and query parameters whose names look
secret have their values filtered. The SDK's own connections are left out.
"""

import http.client
import time

from .. import _client, _event, _scope

_original_putrequest = None
_original_getresponse = None


def install():
    global _original_putrequest, _original_getresponse
    if _original_putrequest is None:
        _original_putrequest = http.client.HTTPConnection.putrequest
        _original_getresponse = http.client.HTTPConnection.getresponse
        http.client.HTTPConnection.putrequest = _putrequest
        http.client.HTTPConnection.getresponse = _getresponse


def uninstall():
    global _original_putrequest, _original_getresponse
    cls = http.client.HTTPConnection
    if _original_putrequest is not None and cls.__dict__.get("putrequest") is _putrequest \
            and cls.__dict__.get("getresponse") is _getresponse:
        cls.putrequest = _original_putrequest
        cls.getresponse = _original_getresponse
        _original_putrequest = _original_getresponse = None


def _putrequest(self, method, url, *args, **kwargs):
    try:
        client = _client._current
        if client is not None and client.http_breadcrumbs and client.max_breadcrumbs \
                and not getattr(self, "_booboo_own", False):
            self._booboo_request = (method, url, time.perf_counter())
    except Exception:
        pass
    return _original_putrequest(self, method, url, *args, **kwargs)


def _getresponse(self, *args, **kwargs):
    started = self.__dict__.pop("_booboo_request", None)
    if started is None:
        return _original_getresponse(self, *args, **kwargs)
    try:
        response = _original_getresponse(self, *args, **kwargs)
    except BaseException as error:
        _record(self, started, None, error)
        raise
    _record(self, started, response.status, None)
    return response


def _record(connection, started, status, error):
    try:
        client = _client._current
        if client is None:
            return
        method, target, began = started
        duration_ms = round((time.perf_counter() - began) * 1000, 1)
        url = _url(connection, target)
        data = {"method": method, "url": url, "duration_ms": duration_ms}
        if status is not None:
            data["status_code"] = status
            level = "error" if status >= 500 else "warning" if status >= 400 else "info"
            message = "%s %s [%d]" % (method, url, status)
        else:
            data["error"] = type(error).__name__
            level = "error"
            message = "%s %s failed: %s" % (method, url, type(error).__name__)
        scope = _scope._active.get() or client.scope
        scope.add_breadcrumb(_scope.breadcrumb(message, "http", level, data, "http"))
    except Exception:
        pass


def _url(connection, target):
    """The URL asked for, absolute, without credentials and with secret-looking query values filtered."""
    if "://" in target:  # a request through a proxy names the whole URL
        scheme, _, rest = target.partition("://")
        authority, slash, path = rest.partition("/")
        authority = authority.rpartition("@")[2]
        base, path = "%s://%s" % (scheme, authority), slash + path
    else:
        https = getattr(http.client, "HTTPSConnection", None)
        scheme = "https" if https is not None and isinstance(connection, https) else "http"
        default_port = 443 if scheme == "https" else 80
        host = connection.host
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host  # an IPv6 address
        port = "" if connection.port in (None, default_port) else ":%d" % connection.port
        base, path = "%s://%s%s" % (scheme, host, port), target
    path, _, fragment = path.partition("#")
    path, question, query = path.partition("?")
    if question:
        path += "?" + _event.scrub_query(query)
    return base + path
