"""Web chat service and public routes: start, recognition, app tokens, queue position and ETA,
per-chat token authorisation, transcripts, feedback, the agent's reply route, and refusals
that name the field and leave no half-written rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from customers.models import Customer
from interactions import chat, chat_waiting
from interactions.feedback_models import ChatSession, CustomerFeedback
from interactions.models import Interaction, Message, TimelineEvent
from interactions.states import State
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from switchboard.security import app_token_key, issue_token
from tests.factories import count_rows, make_agent, make_interaction, make_queue, walk_to
from workforce.models import Presence

PROBLEM_JSON = "application/problem+json"
PHONE = "+44 7911 123456"


async def _start(client, **body):
    response = await client.post("/chat/start", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _fields(response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM_JSON
    return [e["field"] for e in response.json()["errors"]]


async def test_start_queues_a_chat_and_never_says_whose_contact_it_is(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    first = await _start(client, name="Edith Moss", contact=PHONE)
    again = await _start(client, contact="07911 123456")  # same number, national format
    for started in (first, again):  # who the number belongs to is not the visitor's to learn
        assert "customer_name" not in started and "returning" not in started
        assert started["identity"] == "unverified"
    async with db.sessionmaker() as s:
        one = await s.get(Interaction, uuid.UUID(first["interaction_id"]))
        two = await s.get(Interaction, uuid.UUID(again["interaction_id"]))
        assert one.customer_id != two.customer_id  # each an anonymous visitor until verified
        assert one.attributes["claimed_contact"] == two.attributes["claimed_contact"]
        assert one.attributes["claimed_contact"] == {"kind": "phone", "value": "+447911123456"}
        assert one.state is State.QUEUED and one.channel.value == "chat"
        assert one.attributes["source"] == "web_chat"
        stored = await s.get(ChatSession, one.id)
        # Only the hash is kept: the token itself is not in the database.
        assert stored.token_sha256 != first["token"] and len(stored.token_sha256) == 64
        await s.commit()


async def test_senior_talk_to_a_person_sets_intent_and_topic(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    started = await _start(client, senior=True, talk_to_person=True, topic="card_fraud")
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, uuid.UUID(started["interaction_id"]))
        assert it.attributes["intent"] == "human" and it.attributes["senior_mode"] is True
        assert it.topic == "card_fraud" and it.subject == "Talk to a person: Lost card or fraud"
        assert (await s.get(ChatSession, it.id)).senior_mode is True
        await s.commit()


async def test_app_token_needs_the_chat_audience(client, db, settings):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    good = issue_token(
        subject="app-user-42",
        role="customer",
        secret=app_token_key(settings),
        issuer=settings.jwt_issuer,
        audience=chat.APP_TOKEN_AUDIENCE,
        ttl=timedelta(minutes=5),
    )
    started = await _start(client, app_token=good)
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, uuid.UUID(started["interaction_id"]))
        assert it.contact_identity == {"kind": "app", "value": "app-user-42"}
        await s.commit()
    # A staff session token (audience "switchboard") is not a chat login.
    staff = issue_token(
        subject="app-user-42",
        role="customer",
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=timedelta(minutes=5),
    )
    refused = await client.post("/chat/start", json={"app_token": staff})
    assert refused.status_code == 422 and _fields(refused) == ["app_token"]


async def test_bad_input_names_the_field_and_writes_nothing(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
        before = await count_rows(s)
    bad_phone = await client.post("/chat/start", json={"name": "Ann", "contact": "call me maybe"})
    assert bad_phone.status_code == 422 and _fields(bad_phone) == ["contact"]
    bad_email = await client.post("/chat/start", json={"contact": "ann@"})
    assert bad_email.status_code == 422 and _fields(bad_email) == ["contact"]
    unknown = await client.post("/chat/start", json={"topic": "lottery"})
    assert unknown.status_code == 422 and _fields(unknown) == ["body.topic"]
    extra = await client.post("/chat/start", json={"queue": "private-banking"})
    assert extra.status_code == 422 and _fields(extra) == ["body.queue"]
    foreign = await client.post("/chat/start", json={}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and _fields(foreign) == ["Origin"]
    async with db.sessionmaker() as s:
        assert await count_rows(s) == before
        assert await s.scalar(select(func.count()).select_from(ChatSession)) == 0
        await s.commit()


async def test_no_chat_queue_is_a_conflict_not_a_stray_customer(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "voice-only", display_name="Voice", channels=["voice"])
        before = await count_rows(s)
    response = await client.post("/chat/start", json={"contact": PHONE})
    assert response.status_code == 409 and _fields(response) == ["queue"]
    async with db.sessionmaker() as s:
        assert await count_rows(s) == before


async def test_position_and_eta_from_sql(client, db):
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "cards")
    ids = [uuid.UUID((await _start(client))["interaction_id"]) for _ in range(3)]
    async with db.sessionmaker() as s:
        # Nobody online: no made-up figure, and the ways out are offered at once.
        alone = await chat_waiting.queue_status(s, interaction_id=ids[2])
        assert (alone.position, alone.eta_seconds, alone.nobody_online, alone.alternatives) == (
            3,
            None,
            True,
            True,
        )
        await make_agent(s, presence=Presence.AVAILABLE, channel_max={"chat": 1}, queues=[queue])
        statuses = [await chat_waiting.queue_status(s, interaction_id=i) for i in ids]
        assert [st.position for st in statuses] == [1, 2, 3]
        aht = chat_waiting.DEFAULT_HANDLE_SECONDS
        assert [st.eta_seconds for st in statuses] == [aht * n for n in (1, 2, 3)]
        assert not any(st.agent_joined or st.nobody_online for st in statuses)
        # Past the queue's threshold (its settings; 5 minutes by default) the ways out are offered.
        assert [st.alternatives for st in statuses] == [False, True, True]
        # Completed chats of the queue give the average handle time: 100 s and 200 s -> 150 s.
        now = utcnow()
        done = await s.get(Interaction, ids[0])
        customer = await s.get(Customer, done.customer_id)
        for span in (100, 200):
            await make_interaction(
                s,
                customer=customer,
                channel=done.channel,
                state=State.COMPLETED,
                queue=queue,
                connected_at=now - timedelta(seconds=span),
                ended_at=now,
                event=False,
            )
        # Higher priority waiting work is ahead even though it arrived later.
        late = await s.get(Interaction, ids[2])
        late.priority = 5
        await s.commit()
        assert (await chat_waiting.queue_status(s, interaction_id=ids[2])).position == 1
        second = await chat_waiting.queue_status(s, interaction_id=ids[1])
        assert second.position == 3 and second.eta_seconds == 3 * 150
        await s.commit()


async def test_token_authorises_exactly_one_chat(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    mine, theirs = await _start(client), await _start(client)
    mine_id, theirs_id = uuid.UUID(mine["interaction_id"]), uuid.UUID(theirs["interaction_id"])
    async with db.sessionmaker() as s:
        assert (
            await chat.authorise(s, interaction_id=mine_id, token=mine["token"])
        ).interaction_id == mine_id
        for chat_id, token in ((theirs_id, mine["token"]), (mine_id, ""), (uuid.uuid4(), mine["token"])):
            with pytest.raises(NotFound):
                await chat.authorise(s, interaction_id=chat_id, token=token)
        await s.commit()
    stolen = await client.post(
        f"/chat/{theirs_id}/feedback", json={"csat": 1}, headers={"X-Chat-Token": mine["token"]}
    )
    assert stolen.status_code == 404 and _fields(stolen) == ["token"]


async def test_feedback_after_the_chat_once_and_in_range(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    started = await _start(client, contact=PHONE)
    chat_id, headers = started["interaction_id"], {"X-Chat-Token": started["token"]}
    early = await client.post(f"/chat/{chat_id}/feedback", json={"csat": 5}, headers=headers)
    assert early.status_code == 409 and _fields(early) == ["csat"]
    out_of_range = await client.post(f"/chat/{chat_id}/feedback", json={"csat": 6}, headers=headers)
    assert out_of_range.status_code == 422 and _fields(out_of_range) == ["body.csat"]
    async with db.sessionmaker() as s:
        row = await chat.authorise(s, interaction_id=uuid.UUID(chat_id), token=started["token"])
        assert await chat.end_by_customer(s, chat=row) == uuid.UUID(chat_id)  # still waiting: abandon it
        await s.commit()
    async with db.sessionmaker() as s:  # in SQL at once: no engine needed for the customer's word
        left = await s.get(Interaction, uuid.UUID(chat_id))
        assert left is not None and left.state is State.ABANDONED
        await s.commit()
    # Nobody answered that one: there is nothing to rate.
    unanswered = await client.post(f"/chat/{chat_id}/feedback", json={"csat": 1}, headers=headers)
    assert unanswered.status_code == 409 and _fields(unanswered) == ["csat"]
    assert "Nobody answered" in unanswered.json()["detail"]
    left_id = chat_id
    started = await _start(client, contact=PHONE)
    chat_id, headers = started["interaction_id"], {"X-Chat-Token": started["token"]}
    async with db.sessionmaker() as s:  # an adviser answers, then ends the chat
        agent = await make_agent(s)
        await walk_to(s, await s.get(Interaction, uuid.UUID(chat_id)), State.WRAP_UP, agent_id=agent.id)
    saved = await client.post(
        f"/chat/{chat_id}/feedback", json={"csat": 4, "comment": "Quick and kind"}, headers=headers
    )
    assert saved.status_code == 201, saved.text
    twice = await client.post(f"/chat/{chat_id}/feedback", json={"csat": 1}, headers=headers)
    assert twice.status_code == 409
    async with db.sessionmaker() as s:
        rows = list(await s.scalars(select(CustomerFeedback)))
        assert [(r.csat, r.comment) for r in rows] == [(4, "Quick and kind")]
        kinds = list(
            await s.scalars(
                select(TimelineEvent.kind).where(TimelineEvent.interaction_id == uuid.UUID(chat_id))
            )
        )
        assert kinds.count("feedback") == 1
        left_kinds = list(
            await s.scalars(
                select(TimelineEvent.kind).where(TimelineEvent.interaction_id == uuid.UUID(left_id))
            )
        )
        assert "chat_left" in left_kinds and "feedback" not in left_kinds
        await s.commit()


async def test_messages_are_masked_and_the_transcript_is_recorded(client, db, agent_user):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    started = await _start(client, name="Edith Moss", contact=PHONE)
    chat_id = uuid.UUID(started["interaction_id"])
    _, agent_headers, agent = await agent_user()
    async with db.sessionmaker() as s:
        row = await chat.authorise(s, interaction_id=chat_id, token=started["token"])
        await chat.customer_message(s, chat=row, body="My card 4111 1111 1111 1111 was taken")
        with pytest.raises(Invalid) as bad:
            await chat.request_transcript(s, chat=row, email="not an email")
        assert bad.value.field == "email"
        assert await chat.request_transcript(s, chat=row, email="Edith@Example.org") == "edith@example.org"
        await s.commit()
        await walk_to(s, await s.get(Interaction, chat_id), State.CONNECTED, agent_id=agent.id)

    reply = await client.post(
        f"/desktop/interactions/{chat_id}/messages",
        data={"body": "Sorry to hear that"},
        headers=agent_headers,
    )
    assert reply.status_code == 200, reply.text
    assert f'id="chat-reply-{chat_id}"' in reply.text
    log = await client.get(f"/desktop/interactions/{chat_id}/chat", headers=agent_headers)
    assert "************1111" in log.text and "Sorry to hear that" in log.text
    assert "4111 1111" not in log.text

    async with db.sessionmaker() as s:
        text = await chat.transcript_text(s, interaction_id=chat_id)
        assert "You: My card ************1111 was taken" in text and "Adviser: Sorry to hear that" in text
        senders = [m.sender.value for m in await s.scalars(select(Message).order_by(Message.id))]
        assert senders == ["customer", "agent"]
        event = await s.scalar(select(TimelineEvent).where(TimelineEvent.kind == "transcript_requested"))
        assert event.data == {"email": "edith@example.org"}
        assert (await s.get(ChatSession, chat_id)).transcript_email == "edith@example.org"
        await s.commit()


async def test_agent_chat_routes_only_for_the_holding_agent(client, db, agent_user):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    started = await _start(client)
    chat_id = uuid.UUID(started["interaction_id"])
    _, holder_headers, holder = await agent_user()
    _, other_headers, _ = await agent_user()
    async with db.sessionmaker() as s:
        await walk_to(s, await s.get(Interaction, chat_id), State.CONNECTED, agent_id=holder.id)
    for headers, expected in ((other_headers, 404), (holder_headers, 200)):
        response = await client.post(
            f"/desktop/interactions/{chat_id}/messages", data={"body": "Hello"}, headers=headers
        )
        assert response.status_code == expected, response.text
    empty = await client.post(
        f"/desktop/interactions/{chat_id}/messages", data={"body": ""}, headers=holder_headers
    )
    assert empty.status_code == 422 and _fields(empty) == ["body.body"]
    typing = await client.post(f"/desktop/interactions/{chat_id}/typing", headers=holder_headers)
    assert typing.status_code == 204
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 1
        await s.commit()


async def test_customer_cannot_write_after_leaving(client, db):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    started = await _start(client)
    async with db.sessionmaker() as s:
        row = await chat.authorise(
            s, interaction_id=uuid.UUID(started["interaction_id"]), token=started["token"]
        )
        await chat.end_by_customer(s, chat=row)
        with pytest.raises(Conflict):
            await chat.customer_message(s, chat=row, body="hello?")
        await s.commit()


async def test_chat_page_and_widget(client):
    page = await client.get("/chat?senior=1")
    assert page.status_code == 200 and 'class="chat-app senior"' in page.text
    assert 'aria-pressed="true"' in page.text and "Talk to a person" in page.text
    widget = await client.get("/chat/widget.js")
    assert widget.status_code == 200 and widget.headers["content-type"].startswith("text/javascript")
    assert '"http://testserver"' in widget.text and "/chat?embed=1" in widget.text
