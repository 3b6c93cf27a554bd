"""HTTP delivery of one body to the ingestion endpoint, with retries.

Runs only on the sender's thread. Standard library only: ``http.client`` on
a kept-alive connection, ``zlib`` for gzip. A delivery ends in one of the
outcomes below; the client turns every outcome but SENT into a named drop.
"""

import os
import time

# http.client, json and zlib are imported on first use, on the sender's
# thread, so that init() on the application's thread stays quick.

SENT = "sent"
REJECTED = "rejected"  # a 4xx the server will answer the same way next time
GAVE_UP = "send_failed"  # connection errors or 5xx for longer than the retry budget
RATE_LIMITED = "rate_limited"  # a 429 whose Retry-After outlasts the retry budget
STOPPED = "shutdown"  # the client was closed while waiting to retry

class Outcome:
    __slots__ = ("result", "status", "detail")

    def __init__(self, result, status=None, detail=""):
        self.result = result
        self.status = status
        self.detail = detail

    def __repr__(self):
        return "Outcome(%r, status=%r, detail=%r)" % (self.result, self.status, self.detail)


class Transport:
    """POSTs bodies to one endpoint; one instance per client, used by one thread."""

    def __init__(self, target, user_agent, timeout=5.0, retry_budget=30.0):
        self.target = target
        self.timeout = timeout
        self.retry_budget = retry_budget
        """Seconds from the first attempt after which a failing body is given up."""
        self.first_backoff = 0.5
        self.max_backoff = 8.0
        self.default_retry_after = 60.0
        self.max_retry_after = 3600.0
        self.compress = True
        self.paused_until = 0.0
        """monotonic() time before which the server asked us (429) not to send."""
        self._user_agent = user_agent
        self._connection = None

    def deliver(self, body, stop):
        """Send ``body`` (JSON bytes), retrying as needed; return an Outcome.

        ``stop`` is a threading.Event: once set, waits between attempts end
        and the delivery gives up with STOPPED.
        """
        import http.client

        retryable_errors = (OSError, http.client.HTTPException)
        clock = time.monotonic
        give_up_at = clock() + self.retry_budget
        compressed = _gzip(body) if self.compress else None
        failures = 0
        last_problem = ""
        while True:
            pause = self.paused_until - clock()
            if pause > 0:
                if clock() + pause > give_up_at:
                    return Outcome(
                        RATE_LIMITED,
                        429,
                        "the server asked for a pause of %d s more" % round(pause),
                    )
                if stop.wait(pause):
                    return Outcome(STOPPED, None, "closed while rate limited")
            try:
                status, retry_after, detail = self._post(
                    compressed if compressed is not None else body, compressed is not None
                )
            except retryable_errors as exc:
                status, retry_after, detail = None, None, ""
                last_problem = _describe(exc)
            else:
                if 200 <= status < 300:
                    return Outcome(SENT, status)
                if status == 415 and compressed is not None:
                    # A server (or proxy) that cannot read gzip gets plain
                    # JSON from now on rather than losing every event.
                    self.compress = False
                    compressed = None
                    continue
                if status == 429:
                    self.paused_until = clock() + _retry_after_seconds(
                        retry_after, self.default_retry_after, self.max_retry_after
                    )
                    continue
                if status < 500:
                    return Outcome(REJECTED, status, detail)
                last_problem = "HTTP %d %s" % (status, detail)
            failures += 1
            delay = min(self.max_backoff, self.first_backoff * (2 ** (failures - 1)))
            delay *= 0.8 + os.urandom(1)[0] / 637.5  # jitter within [0.8, 1.2]
            if clock() + delay > give_up_at:
                return Outcome(GAVE_UP, status, last_problem.strip())
            if stop.wait(delay):
                return Outcome(STOPPED, status, last_problem.strip())

    def _post(self, payload, compressed):
        import http.client

        headers = {
            "Content-Type": "application/json",
            "X-Booboo-DSN": self.target.token,
            "User-Agent": self._user_agent,
        }
        if compressed:
            headers["Content-Encoding"] = "gzip"
        for attempt in (1, 2):
            connection = self._connection
            reused = connection is not None
            if not reused:
                connection = self._connection = self._connect()
            try:
                connection.request("POST", "/", body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read(65536)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                self.forget_connection()
                # A kept-alive connection the server has closed meanwhile
                # fails at once; one fresh connection is not a retry.
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self.forget_connection()
                raise
            if response.will_close or not response.isclosed():
                self.forget_connection()
            return response.status, response.getheader("Retry-After"), _detail(data)
        raise AssertionError("unreachable")

    def _connect(self):
        import http.client

        target = self.target
        if target.scheme == "https":
            connection = http.client.HTTPSConnection(target.host, target.port, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection(target.host, target.port, timeout=self.timeout)
        # The SDK's own sends are not the application's HTTP calls: no breadcrumbs.
        connection._booboo_own = True
        return connection

    def forget_connection(self):
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass


def _gzip(body):
    import zlib

    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    return compressor.compress(body) + compressor.flush()


def _detail(data):
    """The server's ``{"detail": ...}`` text, or the start of whatever it sent."""
    if not data:
        return ""
    import json

    try:
        detail = json.loads(data.decode("utf-8", "replace")).get("detail")
        if isinstance(detail, str):
            return detail[:300]
    except (ValueError, AttributeError):
        pass
    return data[:300].decode("utf-8", "replace")


def _retry_after_seconds(value, default, ceiling):
    if value:
        value = value.strip()
        if value.isdigit():
            return min(float(value), ceiling)
        try:
            from email.utils import parsedate_to_datetime

            when = parsedate_to_datetime(value).timestamp()
            return max(0.0, min(when - time.time(), ceiling))
        except (TypeError, ValueError, OverflowError, IndexError):
            pass
    return default


def _describe(exc):
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout":
        return "no answer within the timeout"
    text = str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
