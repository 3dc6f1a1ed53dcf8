"""Agent replies by SMTP: a proper reply (Message-ID, In-Reply-To, References) to a relay.

smtplib runs in a worker thread so the event loop keeps serving while a slow relay answers; the
caller must not hold a database transaction across ``send`` (SQLite would hold its write lock).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from interactions.email.inbound import id_domain
from interactions.email.service import ReplyDraft
from switchboard.errors import ServiceUnavailable
from switchboard.pii import mask_card_numbers
from switchboard.settings import Settings

SEND_TIMEOUT_SECONDS = 10.0


def new_message_id(from_address: str) -> str:
    """A globally unique Message-ID made of letters and the digits 2-7 (base32).

    ``email.utils.make_msgid`` is a run of decimal digits (time, pid, random), which now and
    then reads as a Luhn-valid card number, so the id recorded in the timeline came back masked.
    """
    token = base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=").lower()
    return f"<{token}@{id_domain(from_address)}>"


def build_reply(*, draft: ReplyDraft, body: str, from_address: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = draft.to_address
    message["Subject"] = draft.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    if draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        message["References"] = " ".join(draft.references)
    message["Auto-Submitted"] = "no"  # a person wrote it; auto-responders may answer
    # An agent pasting a card number must not send it out in clear either.
    message.set_content(mask_card_numbers(body))
    return message


@dataclass(frozen=True)
class Relay:
    """Where and how outgoing mail is handed over (from settings; tests build one directly)."""

    host: str
    port: int
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        password = settings.smtp_out_password
        return cls(
            host=settings.smtp_out_host,
            port=settings.smtp_out_port,
            starttls=settings.smtp_out_starttls,
            username=settings.smtp_out_username,
            password=password.get_secret_value() if password is not None else None,
            ca_file=settings.smtp_out_ca_file,
        )


async def send(message: EmailMessage, relay: Relay) -> None:
    """Hand the message to the relay; ServiceUnavailable (503) when it is down or refuses."""
    try:
        await asyncio.to_thread(_send_sync, message, relay, SEND_TIMEOUT_SECONDS)
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        raise ServiceUnavailable(
            f"The mail relay did not accept the message ({exc}); nothing was sent"
        ) from exc


def _send_sync(message: EmailMessage, relay: Relay, timeout: float) -> None:
    with smtplib.SMTP(relay.host, relay.port, timeout=timeout) as smtp:
        if relay.starttls:
            # Verified TLS (hostname and chain): a relay we cannot authenticate must not get the
            # customer's mail or our password. starttls() raises if the relay does not offer it.
            context = ssl.create_default_context(cafile=str(relay.ca_file) if relay.ca_file else None)
            smtp.starttls(context=context)
        if relay.username:
            if not relay.starttls:
                raise smtplib.SMTPException("refusing to send relay credentials without STARTTLS")
            smtp.login(relay.username, relay.password or "")
        smtp.send_message(message)
