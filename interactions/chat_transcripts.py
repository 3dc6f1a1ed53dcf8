"""Chat transcripts by email: sent through the outbound SMTP path once the chat has ended.

The customer asks on the chat page (``chat.request_transcript`` records the address). A mailer
pass (``send_due_transcripts``, run every few seconds by the email process, ``switchboard smtp``)
finds requested-and-unsent transcripts whose chat is over and sends each one:

1. claim: compare-and-set ``transcript_sent_at`` from NULL in a short transaction, commit;
2. read the conversation (every interaction of the chat, across transfers; messages are stored
   card-masked, and the body is masked again on the way out), commit;
3. send through smtplib in a thread, with no transaction open (SQLite would hold its write lock);
4. record a ``transcript_sent`` timeline event; if the relay refused, clear the claim instead so a
   later pass retries.

Two mailers never both send (the claim decides). A mailer that dies between 1 and 4 leaves the
transcript claimed and unsent: a lost copy of a conversation the customer already saw is the
cheaper failure than mailing it twice, and the log says so.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy import select, update

from customers.timeline import append_event
from interactions import chat
from interactions.email import outbound
from interactions.feedback_models import ChatSession
from interactions.models import ActorType, Interaction
from interactions.states import State
from switchboard.db import Database, utcnow
from switchboard.errors import ServiceUnavailable
from switchboard.pii import mask_card_numbers
from switchboard.settings import Settings

log = logging.getLogger(__name__)

ENDED_STATES = frozenset({State.WRAP_UP, State.COMPLETED, State.ABANDONED, State.FAILED})
BATCH = 50
MAILER_INTERVAL_SECONDS = 2.0
WHO = {"customer": "You", "agent": "Adviser"}


@dataclass(frozen=True)
class Transcript:
    chat_id: uuid.UUID
    to_address: str
    text: str
    customer_id: uuid.UUID
    last_interaction_id: uuid.UUID


async def _due(db: Database) -> list[uuid.UUID]:
    """Chats with a transcript requested, not yet sent, whose conversation is over."""
    async with db.sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(ChatSession)
                .where(ChatSession.transcript_email.is_not(None), ChatSession.transcript_sent_at.is_(None))
                .limit(BATCH)
            )
        )
        due = []
        for row in rows:
            live = await chat.live_interaction(session, chat=row)
            if row.ended_by_customer_at is not None or live.state in ENDED_STATES:
                due.append(row.interaction_id)
        await session.commit()
    return due


async def _claim(db: Database, chat_id: uuid.UUID, now: datetime) -> bool:
    async with db.sessionmaker() as session:
        result = await session.execute(
            update(ChatSession)
            .where(ChatSession.interaction_id == chat_id, ChatSession.transcript_sent_at.is_(None))
            .values(transcript_sent_at=now)
        )
        await session.commit()
    return result.rowcount == 1


async def _read(db: Database, chat_id: uuid.UUID) -> Transcript:
    async with db.sessionmaker() as session:
        row = await session.get(ChatSession, chat_id)
        first = await session.get(Interaction, chat_id)
        assert row is not None and row.transcript_email is not None and first is not None
        messages = await chat.chat_messages(session, chat=row)
        live = await chat.live_interaction(session, chat=row)
        await session.commit()
    lines = [f"Your chat with us on {first.created_at:%d %B %Y}", ""]
    lines += [f"[{m.at:%H:%M}] {WHO.get(m.sender.value, 'Bank')}: {m.body}" for m in messages]
    if not messages:
        lines.append("(No messages were written in this chat.)")
    return Transcript(chat_id, row.transcript_email, "\n".join(lines) + "\n", first.customer_id, live.id)


def build_message(transcript: Transcript, *, from_address: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = transcript.to_address
    message["Subject"] = "Your chat transcript"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = outbound.new_message_id(from_address)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer it
    # Stored messages are masked already; mask again so nothing else in the text can leak a card.
    message.set_content(mask_card_numbers(transcript.text))
    return message


async def _record(db: Database, transcript: Transcript, *, sent: bool, message_id: str | None) -> None:
    async with db.sessionmaker() as session:
        if sent:
            append_event(
                session,
                customer_id=transcript.customer_id,
                interaction_id=transcript.last_interaction_id,
                kind="transcript_sent",
                channel="chat",
                actor_type=ActorType.SYSTEM,
                actor_id="transcript-mailer",
                data={"email": transcript.to_address, "message_id": message_id},
            )
        else:  # give the claim back: the next pass retries
            await session.execute(
                update(ChatSession)
                .where(ChatSession.interaction_id == transcript.chat_id)
                .values(transcript_sent_at=None)
            )
        await session.commit()


async def send_due_transcripts(db: Database, settings: Settings) -> int:
    """One mailer pass; returns how many transcripts were sent."""
    sent = 0
    relay = outbound.Relay.from_settings(settings)
    for chat_id in await _due(db):
        if not await _claim(db, chat_id, utcnow()):
            continue  # another mailer has it
        try:
            transcript = await _read(db, chat_id)
            message = build_message(transcript, from_address=settings.smtp_from)
        except Exception:
            log.exception("could not build the transcript of chat %s; it stays claimed, not sent", chat_id)
            continue
        try:
            await outbound.send(message, relay)
        except ServiceUnavailable as exc:
            log.warning("transcript of chat %s not sent, will retry: %s", chat_id, exc.detail)
            await _record(db, transcript, sent=False, message_id=None)
            continue
        await _record(db, transcript, sent=True, message_id=str(message["Message-ID"]))
        sent += 1
        log.info("sent the transcript of chat %s", chat_id)
    return sent


async def run_mailer(settings: Settings, *, interval: float = MAILER_INTERVAL_SECONDS) -> None:
    """The mailer loop (until cancelled), next to the inbound listener in ``switchboard smtp``."""
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        while True:
            try:
                await send_due_transcripts(db, settings)
            except Exception:  # a database blip must not end the loop
                log.exception("transcript mailer pass failed")
            await asyncio.sleep(interval)
    finally:
        await db.dispose()
