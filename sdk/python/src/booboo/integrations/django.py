"""Django: crashes arrive through the ``got_request_exception`` signal.

Django sends that signal only for exceptions that become a 500 response;
``Http404``, ``PermissionDenied``, ``SuspiciousOperation`` and bad requests
have their own responses and never reach it, so they are not reported. No
middleware and no ``INSTALLED_APPS`` entry is needed.
"""

import sys

from django.core.signals import got_request_exception

from .. import _client, _event

_DISPATCH_UID = "booboo-sdk"


def install():
    got_request_exception.connect(_on_request_exception, weak=False, dispatch_uid=_DISPATCH_UID)


def uninstall():
    got_request_exception.disconnect(dispatch_uid=_DISPATCH_UID)


def _on_request_exception(sender, request=None, **kwargs):
    # Django calls receivers without catching what they raise: nothing here may.
    client = _client.current()
    exc = sys.exc_info()[1]
    if client is None or exc is None:
        return
    client.capture_exception(exc, request=_request_data(request))


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
