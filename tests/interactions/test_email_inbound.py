"""Inbound email over real SMTP conversations: tickets, threading, limits, sanitising, masking."""

# Fixtures are imported from email_fixtures and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy import func, select

from customers.models import Identity
from interactions.email.inbound import EmailListener
from interactions.email.models import Attachment, EmailDetail
from interactions.email.parsing import sanitise_html
from interactions.email.schemas import ticket_reference
from interactions.models import Interaction, Message
from interactions.states import Channel, State
from switchboard.commands import stream_key
from tests.factories import count_rows, make_customer, make_interaction, walk_to
from tests.interactions.email_fixtures import ATTACHMENT_MAX_BYTES, MAX_BYTES, listener, settings, sink  # noqa: F401
from tests.interactions.email_helpers import CUSTOMER, customer_email, smtp_send

PAN = "4111 1111 1111 1111"
MASKED = "************1111"


async def _interactions(session) -> list[Interaction]:
    rows = list(await session.scalars(select(Interaction).order_by(Interaction.created_at)))
    await session.commit()
    return rows


async def _messages(session, interaction_id) -> list[Message]:
    rows = list(
        await session.scalars(
            select(Message).where(Message.interaction_id == interaction_id).order_by(Message.id)
        )
    )
    await session.commit()
    return rows


async def test_smtp_conversation_creates_a_queued_email_ticket(listener, session, redis_sync):
    email = customer_email()
    code, reply = await smtp_send(listener.port, email)

    assert code == 250 and "SB-" in reply
    [interaction] = await _interactions(session)
    assert interaction.channel is Channel.EMAIL and interaction.state is State.QUEUED
    assert interaction.subject == "My card is blocked"
    assert interaction.contact_identity == {"kind": "email", "value": "ann.lee@example.com"}
    assert "SB-" + interaction.id.hex[:8].upper() in reply
    identity = await session.scalar(select(Identity).where(Identity.value == "ann.lee@example.com"))
    assert identity is not None and identity.customer_id == interaction.customer_id
    [message] = await _messages(session, interaction.id)
    assert message.sender.value == "customer" and message.external_id == email["Message-ID"]
    assert message.body == "Hello, my card was blocked in Lisbon yesterday."
    detail = await session.get(EmailDetail, message.id)
    assert detail is not None and detail.from_address == "ann.lee@example.com"
    # Routing heard of it after the commit.
    commands = [json.loads(fields[b"c"]) for _, fields in redis_sync.xrange(stream_key())]
    assert {"type": "enqueue", "interaction_id": str(interaction.id)}.items() <= commands[-1].items()


async def test_reply_threads_into_the_same_interaction(listener, session):
    first = customer_email()
    await smtp_send(listener.port, first)
    by_in_reply_to = customer_email(
        subject="Re: My card is blocked", body="Any news?", in_reply_to=first["Message-ID"]
    )
    code, _ = await smtp_send(listener.port, by_in_reply_to)
    assert code == 250
    # Some clients send only References (oldest first); the newest known id wins.
    by_references = customer_email(
        body="Still waiting.",
        references=f"<unknown@elsewhere> {first['Message-ID']} {by_in_reply_to['Message-ID']}",
    )
    code, _ = await smtp_send(listener.port, by_references)
    assert code == 250

    [interaction] = await _interactions(session)
    bodies = [m.body for m in await _messages(session, interaction.id)]
    assert bodies == ["Hello, my card was blocked in Lisbon yesterday.", "Any news?", "Still waiting."]


async def test_reply_after_completion_opens_a_queued_follow_up(listener, session):
    first = customer_email()
    await smtp_send(listener.port, first)
    [original] = await _interactions(session)
    await walk_to(session, original, State.COMPLETED)

    code, _ = await smtp_send(
        listener.port, customer_email(body="It happened again.", in_reply_to=first["Message-ID"])
    )

    assert code == 250
    original_row, follow_up = await _interactions(session)
    assert original_row.id == original.id and original_row.state is State.COMPLETED
    assert follow_up.follow_up_of_id == original.id and follow_up.state is State.QUEUED
    assert follow_up.customer_id == original.customer_id
    assert [m.body for m in await _messages(session, follow_up.id)] == ["It happened again."]
    # A further reply to the old thread joins the open follow-up rather than opening a third.
    await smtp_send(listener.port, customer_email(body="Any news?", in_reply_to=first["Message-ID"]))
    assert len(await _interactions(session)) == 2
    assert len(await _messages(session, follow_up.id)) == 2


async def test_someone_elses_message_id_does_not_thread(listener, session):
    first = customer_email()
    await smtp_send(listener.port, first)
    stranger = customer_email(
        sender="eve@attacker.example", body="Send me her statements.", in_reply_to=first["Message-ID"]
    )
    code, _ = await smtp_send(listener.port, stranger)

    assert code == 250
    ann, eve = await _interactions(session)
    assert ann.customer_id != eve.customer_id and eve.follow_up_of_id is None
    assert [m.body for m in await _messages(session, ann.id)] == [
        "Hello, my card was blocked in Lisbon yesterday."
    ]


async def test_a_retried_message_is_stored_once(listener, session):
    email = customer_email()
    assert (await smtp_send(listener.port, email))[0] == 250
    assert (await smtp_send(listener.port, email))[0] == 250

    [interaction] = await _interactions(session)
    assert len(await _messages(session, interaction.id)) == 1


async def test_someone_elses_message_id_is_not_a_retry_and_reveals_nothing(listener, session):
    """A Message-ID is the sender's word: reusing another customer's must neither drop the new
    message as a "retry" nor answer with that customer's ticket reference (issue #9)."""
    first = customer_email()
    _, ann_reply = await smtp_send(listener.port, first)
    stranger = customer_email(sender="eve@attacker.example", body="Please call me back.")
    stranger.replace_header("Message-ID", first["Message-ID"])
    code, eve_reply = await smtp_send(listener.port, stranger)

    assert code == 250
    ann, eve = await _interactions(session)
    assert ann.customer_id != eve.customer_id
    assert [m.body for m in await _messages(session, eve.id)] == ["Please call me back."]
    assert ticket_reference(ann.id) not in eve_reply and ticket_reference(eve.id) in eve_reply
    assert ticket_reference(ann.id) in ann_reply
    # Eve's own retry is still recognised as hers, and stored once.
    assert (await smtp_send(listener.port, stranger))[0] == 250
    assert len(await _interactions(session)) == 2
    assert len(await _messages(session, eve.id)) == 1


async def test_a_sender_over_its_rate_is_deferred_with_450_and_others_are_not(
    db, settings, redis_handle, redis_sync, session
):
    client = redis_handle.async_client()
    limited = settings.model_copy(update={"throttle_email_per_sender": "2/hour"})
    server = EmailListener(db=db, settings=limited, redis=client, host="127.0.0.1", port=0)
    await server.start()
    try:
        assert (await smtp_send(server.port, customer_email(body="one")))[0] == 250
        assert (await smtp_send(server.port, customer_email(body="two")))[0] == 250
        code, reply = await smtp_send(server.port, customer_email(body="three"))
        assert code == 450 and "try again" in reply
        other = customer_email(sender="bob.kay@example.com", body="hello")
        assert (await smtp_send(server.port, other))[0] == 250
    finally:
        await server.stop()
        await client.aclose()
    bodies = {m.body for m in (await session.scalars(select(Message))).all()}
    assert bodies == {"one", "two", "hello"}  # the deferred one is the sender's to retry, not ours


async def test_oversize_email_is_refused_with_552_and_nothing_stored(listener, session):
    before = await count_rows(session)
    big = customer_email(body="x" * 70 + "\n" * 1 + ("y" * 70 + "\n") * (MAX_BYTES // 70))

    # A client that declares SIZE is refused at MAIL FROM; one that does not, after DATA.
    declared = await smtp_send(listener.port, big, declare_size=True)
    undeclared = await smtp_send(listener.port, big, declare_size=False)

    for code, reply in (declared, undeclared):
        assert code == 552, reply
        assert f"limit is {MAX_BYTES} bytes" in reply
    assert await count_rows(session) == before


async def test_html_is_sanitised_and_the_text_part_kept(listener, session):
    html = (
        '<p onclick="steal()">Hello <b>team</b></p><script>alert("x")</script>'
        '<a href="javascript:alert(1)">click</a><img src="https://tracker.example/p.gif">'
    )
    await smtp_send(listener.port, customer_email(body="Hello team (plain)", html=html))

    [interaction] = await _interactions(session)
    [message] = await _messages(session, interaction.id)
    assert message.body == "Hello team (plain)"
    detail = await session.get(EmailDetail, message.id)
    assert detail is not None and detail.html is not None
    assert "<b>team</b>" in detail.html
    for forbidden in ("<script", "alert", "onclick", "javascript:", "<img", "tracker.example"):
        assert forbidden not in detail.html


async def test_html_only_email_gets_its_text_from_the_sanitised_html(listener, session):
    email = customer_email()
    email.set_content("<p>Line one</p><p>Line &amp; two<script>evil()</script></p>", subtype="html")
    await smtp_send(listener.port, email)

    [interaction] = await _interactions(session)
    [message] = await _messages(session, interaction.id)
    assert message.body == "Line one\nLine & two"


def test_sanitiser_keeps_safe_links():
    assert sanitise_html('<a href="https://bank.example/help">help</a>') == (
        '<a href="https://bank.example/help" rel="noopener noreferrer">help</a>'
    )


async def test_attachment_within_the_limit_is_stored(listener, session):
    email = customer_email()
    content = b"%PDF-1.4 statement" * 100
    email.add_attachment(content, maintype="application", subtype="pdf", filename="statement.pdf")
    assert (await smtp_send(listener.port, email))[0] == 250

    [attachment] = list(await session.scalars(select(Attachment)))
    assert attachment.filename == "statement.pdf" and attachment.content_type == "application/pdf"
    assert attachment.content == content and attachment.size_bytes == len(content)
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()


async def test_attachment_over_the_limit_is_refused_and_nothing_stored(listener, session):
    before = await count_rows(session)
    email = customer_email()
    email.add_attachment(
        b"z" * (ATTACHMENT_MAX_BYTES + 1), maintype="image", subtype="png", filename="scan.png"
    )

    code, reply = await smtp_send(listener.port, email)

    assert code == 552
    assert "scan.png" in reply and f"limit is {ATTACHMENT_MAX_BYTES} bytes" in reply
    assert await count_rows(session) == before
    assert await session.scalar(select(func.count()).select_from(Attachment)) == 0


async def test_card_number_is_masked_in_storage_and_in_logs(listener, session, caplog):
    caplog.set_level(logging.DEBUG)
    html = f"<p>My card {PAN} was declined</p>"
    email = customer_email(subject=f"Card {PAN} declined", body=f"My card {PAN} was declined", html=html)

    assert (await smtp_send(listener.port, email))[0] == 250

    [interaction] = await _interactions(session)
    [message] = await _messages(session, interaction.id)
    detail = await session.get(EmailDetail, message.id)
    assert detail is not None and detail.html is not None
    stored = [message.body, detail.html, detail.subject, interaction.subject or ""]
    assert all(PAN not in text and "4111111111111111" not in text for text in stored)
    assert MASKED in message.body and MASKED in detail.html and MASKED in detail.subject
    # No log handler here carries the masking filter: the email code itself logs only masked text.
    assert "email " in caplog.text and MASKED in caplog.text
    assert PAN not in caplog.text and "4111111111111111" not in caplog.text


async def test_unusable_sender_is_refused_with_550(listener, session):
    before = await count_rows(session)
    code, reply = await smtp_send(listener.port, customer_email(sender="not an address"))
    assert code == 550 and "From" in reply
    assert await count_rows(session) == before


async def test_an_email_soon_after_a_call_continues_its_thread(listener, session):
    """Channel switch: a customer who called this morning and now emails (no reply headers) gets
    one conversation; a call from two days ago is not linked."""
    from datetime import timedelta
    from email.utils import parseaddr

    from switchboard.db import utcnow

    customer = await make_customer(
        session, bare=True, email=parseaddr(CUSTOMER)[1].lower(), display_name="Ann Caller"
    )
    await make_interaction(
        session,
        customer=customer,
        channel=Channel.VOICE,
        state=State.COMPLETED,
        created_at=utcnow() - timedelta(days=2),
        event=False,
    )
    code, _ = await smtp_send(listener.port, customer_email(subject="About my old call"))
    assert code == 250
    [unlinked] = [i for i in await _interactions(session) if i.channel is Channel.EMAIL]
    assert unlinked.follow_up_of_id is None
    await walk_to(session, unlinked, State.COMPLETED)

    call = await make_interaction(
        session, customer=customer, channel=Channel.VOICE, state=State.COMPLETED, event=False
    )
    code, _ = await smtp_send(listener.port, customer_email(subject="As discussed on the phone"))
    assert code == 250
    emails = [i for i in await _interactions(session) if i.channel is Channel.EMAIL]
    assert len(emails) == 2
    [linked] = [i for i in emails if i.id != unlinked.id]
    assert linked.customer_id == customer.id and linked.follow_up_of_id == call.id
