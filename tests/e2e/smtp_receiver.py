"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives,
for tests of booboo's e-mail: password resets, invitations, alerts.

Each message is parsed with the standard library's `email` package, so a
test reads headers and parts as any mail client would.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, content_type: str) -> str:
        """The text of the part with this content type (text/plain, text/html)."""
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return part.get_content()
        raise AssertionError(f"no {content_type} part in:\n{self.message.as_string()[:3000]}")


class _Handler:
    def __init__(self, receiver: "SmtpReceiver"):
        self.receiver = receiver

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.receiver.refuse.get(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.receiver.changed:
            self.receiver.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self.receiver.changed.notify_all()
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """`with SmtpReceiver() as smtp:` listens on a free loopback port; `smtp.url`
    is what `--smtp-url` takes. It offers STARTTLS (and demands it) only when
    given an `ssl.SSLContext`."""

    def __init__(self, tls_context=None):
        self.messages: list[Received] = []
        # Recipient → the reply RCPT TO gets instead of 250, such as
        # "550 5.1.1 no such mailbox" or "451 4.3.0 try again later".
        self.refuse: dict[str, str] = {}
        self.changed = threading.Condition()
        # Port 0 is not allowed by Controller's readiness check, so ask the
        # system for a free port first.
        from conftest import free_port

        self.port = free_port()
        tls = {"tls_context": tls_context, "require_starttls": True} if tls_context else {}
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True, **tls)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> "SmtpReceiver":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Received]:
        with self.changed:
            return [m for m in self.messages if address in m.rcpt_tos]

    def wait_for(self, address: str, count: int = 1, timeout: float = 20) -> list[Received]:
        """Waits until `address` has received at least `count` messages."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [m for m in self.messages if address in m.rcpt_tos]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                assert left > 0, f"{address} received {len(found)} of {count} e-mails within {timeout} s"
                self.changed.wait(left)
