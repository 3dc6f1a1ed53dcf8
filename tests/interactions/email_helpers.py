"""Helpers for the email tests: a real SMTP conversation (smtplib in a thread) and message builders."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

CUSTOMER = "Ann Lee <Ann.Lee@Example.com>"
SUPPORT = "support@bank.example"


def customer_email(
    *,
    subject: str = "My card is blocked",
    body: str = "Hello, my card was blocked in Lisbon yesterday.",
    sender: str = CUSTOMER,
    in_reply_to: str | None = None,
    references: str | None = None,
    html: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="mail.example.com")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _conversation(port: int, raw: bytes, sender: str, declare_size: bool) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        options = [f"SIZE={len(raw)}"] if declare_size else []
        code, reply = smtp.mail(sender, options)
        if code != 250:
            return code, reply.decode()
        code, reply = smtp.rcpt(SUPPORT)
        assert code == 250, reply
        code, reply = smtp.data(raw)
        return code, reply.decode()


async def smtp_send(
    port: int, message: EmailMessage | bytes, *, declare_size: bool = True
) -> tuple[int, str]:
    """One SMTP conversation with the listener; returns the final (code, text) it answered."""
    # SMTP lines end in CRLF (smtplib sends bytes unchanged); as_bytes() alone would give bare LF.
    raw = (
        message
        if isinstance(message, bytes)
        else message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    )
    # The listener runs on this event loop, so the blocking client must run on another thread.
    return await asyncio.to_thread(_conversation, port, raw, "ann.lee@example.com", declare_size)
