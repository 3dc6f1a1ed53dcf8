"""Messages, notes and dispositions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from interactions import service
from interactions.models import ActorType, Message, MessageSender, TimelineEvent
from interactions.states import TERMINAL_STATES, State
from switchboard.auth.models import Role
from switchboard.errors import Conflict, Invalid
from switchboard.pii import mask_card_numbers
from tests.factories import count_rows, new_interaction, walk_to


async def test_message_writes_row_and_event_with_preview(session):
    interaction = await new_interaction(session, channel="chat", enqueue=True)
    body = "Hello, my card was declined in Lisbon. " * 10  # 390 chars: the preview is cut

    message = await service.post_message(
        session, interaction_id=interaction.id, sender="customer", author_id=None, body=body
    )
    await session.commit()

    assert message.id is not None and message.body == body and message.sender is MessageSender.CUSTOMER
    event = await session.scalar(
        select(TimelineEvent).where(
            TimelineEvent.kind == "message", TimelineEvent.interaction_id == interaction.id
        )
    )
    assert event is not None
    assert event.data["message_id"] == message.id and event.data["sender"] == "customer"
    assert len(event.data["preview"]) <= 200 and body.startswith(event.data["preview"].rstrip("…"))
    assert event.actor_type is ActorType.CUSTOMER


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES), ids=lambda s: s.value)
async def test_message_on_terminal_interaction_is_409_and_writes_nothing(session, terminal):
    interaction = await walk_to(session, await new_interaction(session, channel="chat"), terminal)
    iid = interaction.id
    before = await count_rows(session)
    with pytest.raises(Conflict):
        await service.post_message(session, interaction_id=iid, sender="customer", author_id=None, body="hi")
    await session.rollback()
    assert await count_rows(session) == before


@pytest.mark.parametrize("body", ["", "   ", "x" * 10_001])
async def test_message_body_bounds(session, body):
    interaction = await new_interaction(session, channel="chat", enqueue=True)
    with pytest.raises(Invalid) as exc:
        await service.post_message(
            session, interaction_id=interaction.id, sender="agent", author_id="a", body=body
        )
    assert exc.value.field == "body"


async def test_message_body_of_exactly_10000_is_accepted(session):
    interaction = await new_interaction(session, channel="chat", enqueue=True)
    message = await service.post_message(
        session, interaction_id=interaction.id, sender="agent", author_id="a", body="y" * 10_000
    )
    assert len(message.body) == 10_000


async def test_repeated_external_id_is_idempotent(session):
    interaction = await new_interaction(session, channel="email", kind="email", value="ann@example.com")
    first = await service.post_message(
        session,
        interaction_id=interaction.id,
        sender="customer",
        author_id=None,
        body="hi",
        external_id="<m1@x>",
    )
    again = await service.post_message(
        session,
        interaction_id=interaction.id,
        sender="customer",
        author_id=None,
        body="hi",
        external_id="<m1@x>",
    )
    await session.commit()
    assert again.id == first.id
    assert await session.scalar(select(func.count()).select_from(Message)) == 1


def test_card_numbers_are_masked_but_other_numbers_kept():
    text = "card 4111 1111 1111 1111, ref 1234567890123 (not Luhn), phone +447911123456"
    masked = mask_card_numbers(text)
    assert "************1111" in masked
    assert "4111" not in masked.split("************")[0]
    assert "1234567890123" in masked and "+447911123456" in masked


async def test_card_number_masked_in_stored_message(session):
    interaction = await new_interaction(session, channel="chat", enqueue=True)
    message = await service.post_message(
        session,
        interaction_id=interaction.id,
        sender="customer",
        author_id=None,
        body="it's 5555555555554444",
    )
    assert message.body == "it's ************4444"


async def test_api_post_and_list_messages(session, client, agent_user, make_user):
    _, headers, agent = await agent_user()
    interaction = await walk_to(
        session, await new_interaction(session, channel="chat"), State.OFFERED, agent_id=agent.id
    )
    # Offered is not enough to write: the agent must have accepted.
    early = await client.post(
        f"/api/interactions/{interaction.id}/messages", json={"body": "hi"}, headers=headers
    )
    assert early.status_code == 409
    await walk_to(session, interaction, State.CONNECTED)

    posted = await client.post(
        f"/api/interactions/{interaction.id}/messages", json={"body": "How can I help?"}, headers=headers
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["sender"] == "agent"
    listed = await client.get(f"/api/interactions/{interaction.id}/messages", headers=headers)
    assert [m["body"] for m in listed.json()] == ["How can I help?"]

    too_long = await client.post(
        f"/api/interactions/{interaction.id}/messages", json={"body": "z" * 10_001}, headers=headers
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["field"] == "body.body"


async def test_api_message_on_terminal_is_409_for_supervisor(session, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    interaction = await walk_to(session, await new_interaction(session, channel="chat"), State.COMPLETED)
    response = await client.post(
        f"/api/interactions/{interaction.id}/messages", json={"body": "hi"}, headers=headers
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["state"] == "completed"


async def test_agent_other_than_assignee_cannot_post(session, client, agent_user):
    _, _, owner = await agent_user()
    _, other_headers, _ = await agent_user()
    interaction = await walk_to(
        session, await new_interaction(session, channel="chat"), State.CONNECTED, agent_id=owner.id
    )
    response = await client.post(
        f"/api/interactions/{interaction.id}/messages", json={"body": "hi"}, headers=other_headers
    )
    assert response.status_code == 404


async def test_note_is_a_timeline_event(session, client, make_user):
    user, headers = await make_user(Role.SUPERVISOR)
    interaction = await new_interaction(session, enqueue=True)
    response = await client.post(
        f"/api/interactions/{interaction.id}/notes", json={"body": "Customer is travelling"}, headers=headers
    )
    assert response.status_code == 201, response.text
    note = response.json()
    assert note["kind"] == "note" and note["data"] == {"body": "Customer is travelling"}
    assert note["actor_type"] == "supervisor" and note["actor_id"] == str(user.id)
    timeline = await client.get(f"/api/interactions/{interaction.id}/timeline", headers=headers)
    assert timeline.json()["items"][0]["id"] == note["id"]


async def test_disposition_only_when_connected_or_wrap_up(session):
    iid = (await new_interaction(session, enqueue=True)).id
    actor = service.Actor(ActorType.AGENT, "a1")
    with pytest.raises(Conflict):
        await service.set_disposition(session, interaction_id=iid, disposition="resolved", actor=actor)
    await session.rollback()  # expires loaded objects: reload below
    interaction = await walk_to(session, await service.get_interaction(session, iid), State.WRAP_UP)
    version = interaction.version
    updated = await service.set_disposition(
        session, interaction_id=interaction.id, disposition="resolved", actor=actor
    )
    await session.commit()
    assert updated.disposition == "resolved" and updated.version == version + 1
    kinds = list(
        await session.scalars(
            select(TimelineEvent.kind)
            .where(TimelineEvent.interaction_id == interaction.id)
            .order_by(TimelineEvent.id)
        )
    )
    assert kinds[-1] == "disposition_set"


async def test_disposition_from_the_callers_read_is_refused_once_the_row_moved(db):
    """The desktop passes the row its ownership check just read (no second read); if anything
    wrote the interaction since, the compare-and-set refuses and nothing is written."""
    actor = service.Actor(ActorType.AGENT, "a1")
    async with db.sessionmaker() as s:
        interaction = await walk_to(s, await new_interaction(s, enqueue=True), State.WRAP_UP)
        iid, version = interaction.id, interaction.version
        await s.commit()
    async with db.sessionmaker() as s:
        read = await service.get_interaction(s, iid)
        await s.commit()
        async with db.sessionmaker() as other:  # another writer moves the row meanwhile
            await service.set_disposition(other, interaction_id=iid, disposition="first", actor=actor)
            await other.commit()
        with pytest.raises(Conflict):
            await service.set_disposition(s, interaction_id=iid, disposition="stale", actor=actor, read=read)
        await s.rollback()
        fresh = await service.get_interaction(s, iid)
        updated = await service.set_disposition(
            s, interaction_id=iid, disposition="second", actor=actor, read=fresh
        )
        await s.commit()
    assert updated.disposition == "second" and updated.version == version + 2
    async with db.sessionmaker() as s:
        stored = await service.get_interaction(s, iid)
        events = list(
            await s.scalars(
                select(TimelineEvent.data)
                .where(TimelineEvent.interaction_id == iid, TimelineEvent.kind == "disposition_set")
                .order_by(TimelineEvent.id)
            )
        )
        await s.commit()
    assert (stored.disposition, stored.version) == ("second", version + 2)
    assert [e["disposition"] for e in events] == ["first", "second"]
