"""Turn raw RFC 5322 bytes into what a ticket needs, with the stdlib email package.

Pure (no database): the SMTP handler calls it before opening a transaction, so a refused message
costs no SQL at all.
"""

from __future__ import annotations

import html as html_lib
import re
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import nh3

from switchboard.text import first_control

# Ammonia's defaults minus <img>: a remote image in a customer's email is a tracking pixel that
# would tell the sender when (and from where) an agent opened it; cid: images cannot load anyway.
_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"}
_URL_SCHEMES = {"http", "https", "mailto"}
_MSGID = re.compile(r"<[^<>\s]{1,250}>")
_BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(?:p|div|li|tr|h[1-6]|blockquote)>")
_BLANK_RUNS = re.compile(r"\n{3,}")
MAX_REFERENCES = 20


class EmailRejected(Exception):
    """The message is refused as a whole; ``reply`` is the full SMTP reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str
    from_address: str
    from_name: str | None
    subject: str
    text: str  # the text/plain part, or text derived from the sanitised HTML
    html: str | None  # sanitised HTML (nh3), not yet card-masked
    to_addresses: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attachments: tuple[ParsedAttachment, ...] = field(default=())
    size_bytes: int = 0

    @property
    def thread_candidates(self) -> list[str]:
        """Message-IDs this one answers, most recent first: In-Reply-To, then References backwards."""
        seen: list[str] = []
        for mid in ([self.in_reply_to] if self.in_reply_to else []) + list(reversed(self.references)):
            if mid not in seen:
                seen.append(mid)
        return seen


def sanitise_html(raw: str) -> str:
    """Safe to render: scripts/styles dropped with their content, event handlers and javascript: gone."""
    return nh3.clean(raw, tags=_ALLOWED_TAGS, url_schemes=_URL_SCHEMES)


def html_to_text(raw: str) -> str:
    with_breaks = _BLOCK_END.sub("\n", raw)
    text = html_lib.unescape(nh3.clean(with_breaks, tags=set()))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def parse_email(raw: bytes, *, attachment_max_bytes: int, id_domain: str) -> ParsedEmail:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    from_name, from_address = parseaddr(str(message.get("From", "")))
    if not from_address or "@" not in from_address:
        raise EmailRejected("550 5.1.7 The From header has no usable address")

    attachments = _attachments(message, attachment_max_bytes)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = _content(text_part) if text_part is not None else ""
    html = sanitise_html(_content(html_part)) if html_part is not None else None
    if not text.strip() and html:
        text = html_to_text(html)

    message_ids = _message_ids(str(message.get("Message-ID", "")))
    subject = " ".join(str(message.get("Subject", "")).split())
    # Refused as a whole, with a permanent reply: a retry carries the same bytes (and PostgreSQL
    # would refuse a NUL half-way through storing the message).
    bad = first_control(
        {
            "subject": subject,
            "from": from_name,
            "body": text,
            "html": html or "",
            "attachment filename": [a.filename for a in attachments],
        },
        "message",
    )
    if bad is not None:
        where = bad.split(".", 1)[1].split("[", 1)[0]
        raise EmailRejected(f"554 5.6.0 The message's {where} contains control characters (NUL or similar)")
    return ParsedEmail(
        # Without a Message-ID a retry cannot be recognised; we still need one to thread replies.
        message_id=message_ids[0] if message_ids else f"<{uuid.uuid4()}@{id_domain}>",
        from_address=from_address.strip(),
        from_name=from_name.strip() or None,
        subject=subject,
        text=text.strip(),
        html=html,
        to_addresses=tuple(addr for _, addr in getaddresses(message.get_all("To", [])) if addr),
        in_reply_to=next(iter(_message_ids(str(message.get("In-Reply-To", "")))), None),
        references=tuple(_message_ids(str(message.get("References", "")))[-MAX_REFERENCES:]),
        attachments=tuple(attachments),
        size_bytes=len(raw),
    )


def _attachments(message: EmailMessage, limit: int) -> list[ParsedAttachment]:
    found = []
    for part in message.iter_attachments():
        if part.is_multipart():
            continue  # e.g. a forwarded message/rfc822 container; its own parts are not ours to keep
        content = part.get_payload(decode=True) or b""
        filename = part.get_filename() or "attachment"
        if len(content) > limit:
            raise EmailRejected(
                f"552 5.3.4 Attachment {filename!r} is {len(content)} bytes; the limit is {limit} bytes"
            )
        found.append(ParsedAttachment(filename[:255], part.get_content_type()[:127], content))
    return found


def _content(part: object) -> str:
    assert isinstance(part, EmailMessage)
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset: keep what decodes
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)


def _message_ids(header: str) -> list[str]:
    return _MSGID.findall(header)
