"""Agent replies by SMTP: a proper reply (Message-ID, In-Reply-To, References) to a relay.

smtplib runs in a worker thread so the event loop keeps serving while a slow relay answers; the
caller must not hold a database transaction across ``send`` (SQLite would hold its write lock).
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from interactions.email.inbound import id_domain
from interactions.email.service import ReplyDraft
from interactions.service import mask_card_numbers
from switchboard.errors import ServiceUnavailable

SEND_TIMEOUT_SECONDS = 10.0


def new_message_id(from_address: str) -> str:
    return make_msgid(domain=id_domain(from_address))


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


async def send(message: EmailMessage, *, host: str, port: int) -> None:
    """Hand the message to the relay; ServiceUnavailable (503) when it is down or refuses."""
    try:
        await asyncio.to_thread(_send_sync, message, host, port, SEND_TIMEOUT_SECONDS)
    except (smtplib.SMTPException, OSError) as exc:
        raise ServiceUnavailable(
            f"The mail relay did not accept the reply ({exc}); nothing was sent"
        ) from exc


def _send_sync(message: EmailMessage, host: str, port: int, timeout: float) -> None:
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.send_message(message)
