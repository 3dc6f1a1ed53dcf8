"""Agent replies by SMTP: threading headers at the sink, stored in the thread, and the customer's
answer to that reply threads back into the same interaction."""

# Fixtures are imported from email_fixtures and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

from sqlalchemy import select

from interactions.email.models import EmailDetail
from interactions.email.outbound import new_message_id
from interactions.models import Interaction, Message
from interactions.states import State
from switchboard.pii import mask_card_numbers
from tests.factories import count_rows, new_interaction, walk_to
from tests.interactions.email_fixtures import listener, settings, sink  # noqa: F401
from tests.interactions.email_helpers import customer_email, smtp_send

PAN = "4111-1111-1111-1111"


async def _connected_email_ticket(listener, session, agent):
    first = customer_email(subject="Card blocked")
    assert (await smtp_send(listener.port, first))[0] == 250
    interaction = await session.scalar(select(Interaction))
    await session.commit()
    interaction = await walk_to(session, interaction, State.CONNECTED, agent_id=agent.id)
    return interaction, first


async def test_agent_reply_reaches_the_sink_with_threading_headers_and_is_stored(
    listener, sink, session, client, agent_user
):
    _, headers, agent = await agent_user()
    interaction, first = await _connected_email_ticket(listener, session, agent)

    response = await client.post(
        f"/api/interactions/{interaction.id}/reply",
        json={"body": f"We unblocked it. Never send your card number ({PAN}) by email."},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    [sunk] = sink.messages
    sent = sunk.parsed()
    assert sunk.rcpt_tos == ("ann.lee@example.com",)
    assert sent["In-Reply-To"] == first["Message-ID"]
    assert sent["References"] == first["Message-ID"]
    assert sent["Subject"] == f"Re: Card blocked [SB-{interaction.id.hex[:8].upper()}]"
    assert sent["From"] == "support@bank.example"
    text = sent.get_content()
    assert PAN not in text and "************1111" in text
    stored = await session.get(Message, response.json()["id"])
    assert stored is not None and stored.external_id == sent["Message-ID"]
    assert stored.sender.value == "agent" and PAN not in stored.body
    detail = await session.get(EmailDetail, stored.id)
    assert detail is not None and detail.in_reply_to == first["Message-ID"]
    await session.commit()

    # The customer answers the agent's email: it joins the same interaction.
    answer = customer_email(
        subject=sent["Subject"],
        body="Thank you!",
        in_reply_to=sent["Message-ID"],
        references=f"{first['Message-ID']} {sent['Message-ID']}",
    )
    assert (await smtp_send(listener.port, answer))[0] == 250
    bodies = list(
        await session.scalars(
            select(Message.body).where(Message.interaction_id == interaction.id).order_by(Message.id)
        )
    )
    await session.commit()  # end the read (SQLite transactions hold the write lock)
    assert len(bodies) == 3 and bodies[-1] == "Thank you!"
    # The next reply carries the whole chain in References.
    await client.post(
        f"/api/interactions/{interaction.id}/reply", json={"body": "You're welcome."}, headers=headers
    )
    second = sink.messages[-1].parsed()
    assert second["In-Reply-To"] == answer["Message-ID"]
    assert second["References"].split() == [first["Message-ID"], sent["Message-ID"], answer["Message-ID"]]


async def test_relay_down_is_503_and_nothing_stored(listener, sink, session, client, agent_user):
    _, headers, agent = await agent_user()
    interaction, _ = await _connected_email_ticket(listener, session, agent)
    await sink.stop()
    before = await count_rows(session)

    response = await client.post(
        f"/api/interactions/{interaction.id}/reply", json={"body": "hi"}, headers=headers
    )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert await count_rows(session) == before


async def test_only_the_holding_agent_replies(listener, sink, session, client, agent_user):
    _, _, holder = await agent_user()
    _, other_headers, _ = await agent_user()
    interaction, _ = await _connected_email_ticket(listener, session, holder)

    response = await client.post(
        f"/api/interactions/{interaction.id}/reply", json={"body": "hi"}, headers=other_headers
    )

    assert response.status_code == 404  # never offered to them: out of sight
    assert sink.messages == []


async def test_reply_to_a_chat_interaction_is_refused(sink, session, client, agent_user):
    _, headers, agent = await agent_user()
    chat = await new_interaction(session, channel="chat", kind="email", value="ann@example.com", enqueue=True)
    await walk_to(session, chat, State.CONNECTED, agent_id=agent.id)

    response = await client.post(f"/api/interactions/{chat.id}/reply", json={"body": "hi"}, headers=headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "interaction_id"
    assert sink.messages == []


def test_our_message_ids_are_unique_and_never_read_as_card_numbers():
    # The timeline masks card numbers in every string; make_msgid's digit runs were sometimes
    # Luhn-valid, and the Message-ID recorded for a sent transcript came back as asterisks.
    ids = {new_message_id("Bank <noreply@bank.example>") for _ in range(5000)}
    assert len(ids) == 5000
    for message_id in ids:
        assert message_id.startswith("<") and message_id.endswith("@bank.example>")
        assert mask_card_numbers(message_id) == message_id
