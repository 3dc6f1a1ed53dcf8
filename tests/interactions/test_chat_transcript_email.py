"""Chat transcript by email: requested on the chat, sent through the outbound SMTP path (a real SMTP
conversation with the sink) once the chat has ended, card numbers masked, exactly once."""

# Fixtures are imported from email_fixtures and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from interactions import chat
from interactions.chat_transcripts import run_mailer, send_due_transcripts
from interactions.feedback_models import ChatSession
from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from tests.factories import make_queue, walk_to
from tests.helpers import eventually
from tests.interactions.email_fixtures import settings, sink  # noqa: F401

PAN = "4111 1111 1111 1111"


async def _chat_with_transcript_request(client, db, email: str) -> tuple[uuid.UUID, str]:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    response = await client.post("/chat/start", json={"name": "Edith Moss", "contact": email})
    assert response.status_code == 201, response.text
    started = response.json()
    chat_id = uuid.UUID(started["interaction_id"])
    async with db.sessionmaker() as s:
        row = await chat.authorise(s, interaction_id=chat_id, token=started["token"])
        await chat.customer_message(s, chat=row, body=f"My card {PAN} was swallowed")
        await chat.request_transcript(s, chat=row, email=email)
        await s.commit()
    return chat_id, started["token"]


async def test_transcript_is_mailed_once_after_the_chat_ends(client, db, settings, sink, agent_user):
    chat_id, _ = await _chat_with_transcript_request(client, db, "Edith@Example.org")
    _, agent_headers, agent = await agent_user()
    async with db.sessionmaker() as s:
        await walk_to(s, await s.get(Interaction, chat_id), State.CONNECTED, agent_id=agent.id)
    reply = await client.post(
        f"/desktop/interactions/{chat_id}/messages",
        data={"body": "A new card is on its way"},
        headers=agent_headers,
    )
    assert reply.status_code == 200, reply.text

    # Still talking: nothing goes out yet.
    assert await send_due_transcripts(db, settings) == 0
    assert sink.messages == []

    async with db.sessionmaker() as s:
        await walk_to(s, await s.get(Interaction, chat_id), State.WRAP_UP, agent_id=agent.id)
    assert await send_due_transcripts(db, settings) == 1
    [sunk] = sink.messages
    mail = sunk.parsed()
    assert sunk.rcpt_tos == ("edith@example.org",)
    assert mail["From"] == "support@bank.example" and mail["Subject"] == "Your chat transcript"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    assert "You: My card ************1111 was swallowed" in body
    assert "Adviser: A new card is on its way" in body
    assert "4111" not in body.replace("************1111", "")

    # Sent once: another pass (or another mailer) finds nothing to do.
    assert await send_due_transcripts(db, settings) == 0
    assert len(sink.messages) == 1
    async with db.sessionmaker() as s:
        assert (await s.get(ChatSession, chat_id)).transcript_sent_at is not None
        event = await s.scalar(select(TimelineEvent).where(TimelineEvent.kind == "transcript_sent"))
        assert event.interaction_id == chat_id
        assert event.data == {"email": "edith@example.org", "message_id": mail["Message-ID"]}
        await s.commit()


async def test_customer_leaving_sends_it_and_a_refusing_relay_is_retried(client, db, settings, sink):
    chat_id, token = await _chat_with_transcript_request(client, db, "ann@example.com")
    async with db.sessionmaker() as s:
        row = await chat.authorise(s, interaction_id=chat_id, token=token)
        await chat.end_by_customer(s, chat=row)  # left while still waiting
        await s.commit()

    dead_relay = settings.model_copy(update={"smtp_out_port": 1})  # nothing listens there
    assert await send_due_transcripts(db, dead_relay) == 0
    async with db.sessionmaker() as s:
        assert (await s.get(ChatSession, chat_id)).transcript_sent_at is None  # claim given back
        await s.commit()

    # The mailer loop (as `switchboard smtp` runs it) picks it up on its next pass.
    mailer = asyncio.create_task(run_mailer(settings, interval=0.1))
    try:

        async def sent() -> bool:
            return bool(sink.messages)

        await eventually(sent, within=5, what="the transcript email")
    finally:
        mailer.cancel()
        await asyncio.gather(mailer, return_exceptions=True)
    [sunk] = sink.messages
    assert sunk.rcpt_tos == ("ann@example.com",)
    assert "************1111" in sunk.parsed().get_content()
