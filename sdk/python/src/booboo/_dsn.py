"""Turning a DSN (and an optional endpoint override) into where and how to send.

A DSN is either the URL form ``SCHEME://TOKEN@HOST[:PORT]/ORG/PROJECT`` or a
bare token. Only the scheme, host and port of the URL form matter for sending;
the path is informational. The token is a secret, so no message built here
ever contains it.
"""

_TOKEN_ALPHABET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


class Target:
    """The token to send in ``X-Booboo-DSN`` and the endpoint URL to POST to."""

    __slots__ = ("token", "endpoint", "scheme", "host", "port")

    def __init__(self, token, scheme, host, port):
        self.token = token
        self.scheme = scheme
        self.host = host
        self.port = port
        default_port = 443 if scheme == "https" else 80
        netloc = host if port == default_port else "%s:%d" % (host, port)
        if ":" in host:  # an IPv6 literal needs its brackets back in a URL
            netloc = "[%s]" % host if port == default_port else "[%s]:%d" % (host, port)
        self.endpoint = "%s://%s/" % (scheme, netloc)

    def __repr__(self):
        # The token stays out of reprs, tracebacks and logs.
        return "Target(endpoint=%r, token=<redacted>)" % self.endpoint


def parse(dsn, endpoint=None):
    """Return a Target, or raise ValueError saying what is wrong with the input."""
    if not isinstance(dsn, str):
        raise ValueError(
            "booboo: the DSN must be a string, got %s" % type(dsn).__name__
        )
    if dsn != dsn.strip():
        raise ValueError(
            "booboo: the DSN has leading or trailing whitespace; copy it again "
            "from the project's settings page"
        )
    if not dsn:
        raise ValueError(
            "booboo: no DSN given; pass dsn= to booboo.init() or set BOOBOO_DSN"
        )

    if "://" in dsn:
        token, scheme, host, port = _split_url(dsn, what="DSN", with_token=True)
    else:
        token, scheme, host, port = dsn, None, None, None
    _check_token(token)

    if endpoint is not None:
        if not isinstance(endpoint, str) or not endpoint:
            raise ValueError("booboo: endpoint= must be a non-empty URL string")
        _, scheme, host, port = _split_url(endpoint, what="endpoint", with_token=False)
    elif scheme is None:
        raise ValueError(
            "booboo: the DSN is a bare token, so the SDK does not know where to "
            "send events; pass endpoint='https://your-booboo-host/' as well, or "
            "use the URL form of the DSN shown on the project's settings page"
        )
    return Target(token, scheme, host, port)


def _split_url(url, what, with_token):
    scheme, sep, rest = url.partition("://")
    shown = _redacted(url)
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            "booboo: the %s %s must start with http:// or https://" % (what, shown)
        )
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    token = None
    if "@" in authority:
        if not with_token:
            raise ValueError(
                "booboo: the endpoint %s must not contain credentials; the token "
                "belongs in the DSN" % shown
            )
        token, _, hostport = authority.rpartition("@")
        if not token:
            raise ValueError("booboo: the DSN %s has nothing before '@'" % shown)
    elif with_token:
        raise ValueError(
            "booboo: the DSN %s has no token; it should look like "
            "https://TOKEN@host/org/project" % shown
        )
    else:
        hostport = authority

    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("booboo: the %s %s has a malformed IPv6 host" % (what, shown))
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise ValueError("booboo: the %s %s has no host name" % (what, shown))
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(
                "booboo: the %s %s has an invalid port %r" % (what, shown, port_text)
            )
        port = int(port_text)
    else:
        port = 443 if scheme == "https" else 80
    return token, scheme, host.lower(), port


def _check_token(token):
    bad = sorted(set(token) - _TOKEN_ALPHABET)
    if bad:
        raise ValueError(
            "booboo: the DSN token contains characters a token never has (%s); "
            "copy the DSN again from the project's settings page"
            % ", ".join(repr(c) for c in bad[:5])
        )


def _redacted(url):
    """The URL with any user part replaced, so error messages can show it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<redacted>"
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return "'%s://%s%s%s'" % (scheme, authority, slash, path)
