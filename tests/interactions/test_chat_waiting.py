"""A chat customer's wait: the position never counts work out on offer as gone, the estimate holds
still while nothing got worse, and the ways out of a long wait (a callback that keeps the place, a
message that becomes an email ticket) end the chat on its timeline in the same commit as their
successor; bad input is a problem+json naming the field and writes nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from interactions import chat_waiting
from interactions.chat_waiting import QueueStatus, steady
from interactions.models import Interaction, TimelineEvent
from interactions.states import Channel, Direction, State
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import count_rows, make_queue, sql_transition
from workforce.models import Queue

PROBLEM_JSON = "application/problem+json"
PHONE = "+44 7911 123456"


async def _start(client, **body) -> tuple[uuid.UUID, dict[str, str]]:
    response = await client.post("/chat/start", json=body)
    assert response.status_code == 201, response.text
    started = response.json()
    return uuid.UUID(started["interaction_id"]), {"X-Chat-Token": started["token"]}


def _fields(response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    return [e["field"] for e in response.json()["errors"]]


async def _timeline(db, interaction_id: uuid.UUID) -> list[TimelineEvent]:
    async with db.sessionmaker() as s:
        rows = list(
            await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id == interaction_id)
                .order_by(TimelineEvent.id)
            )
        )
        await s.commit()
    return rows


def test_the_estimate_holds_still_unless_position_or_staffing_got_worse() -> None:
    before = QueueStatus("queued", 3, 600, False, True, False, 2)
    creeping = QueueStatus("queued", 3, 660, False, True, False, 2)  # only the average moved up
    assert steady(before, creeping).eta_seconds == 600
    assert steady(before, QueueStatus("queued", 2, 400, False, True, False, 2)).eta_seconds == 400
    assert steady(before, QueueStatus("queued", 4, 800, False, True, False, 2)).eta_seconds == 800
    assert steady(before, QueueStatus("queued", 3, 900, False, True, False, 1)).eta_seconds == 900
    assert steady(None, creeping) is creeping


async def test_work_on_offer_ahead_still_counts_so_the_position_never_jumps_back(client, db) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    ids = [(await _start(client))[0] for _ in range(3)]

    async def position() -> int | None:
        async with db.sessionmaker() as s:
            status = await chat_waiting.queue_status(s, interaction_id=ids[2])
            await s.commit()
        return status.position

    assert await position() == 3
    await sql_transition(db, ids[0], State.OFFERED)  # offered to an agent, who may let it lapse
    assert await position() == 3
    await sql_transition(db, ids[0], State.QUEUED)  # and it lapsed: still 3, not 2 then 3 again
    assert await position() == 3


async def test_a_callback_ends_the_chat_and_keeps_its_place_in_line(client, db) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    chat_id, headers = await _start(client, name="Ann Waiting")
    answer = await client.post(f"/chat/{chat_id}/callback", json={"phone": PHONE}, headers=headers)
    assert answer.status_code == 201, answer.text
    callback_id = uuid.UUID(answer.json()["callback_id"])
    async with db.sessionmaker() as s:
        original = await s.get(Interaction, chat_id)
        call = await s.get(Interaction, callback_id)
        assert original.state is State.ABANDONED
        assert (call.channel, call.direction, call.state) == (Channel.VOICE, Direction.OUTBOUND, State.QUEUED)
        assert call.callback_of_id == chat_id and call.virtual_start_at == original.virtual_start_at
        assert call.contact_identity["value"] == "+447911123456"
        await s.commit()
    events = await _timeline(db, chat_id)
    assert [e.data.get("reason") for e in events if e.kind == "state_changed"][-1] == "callback requested"
    outcome = next(e for e in events if e.kind == "chat_callback_requested")
    assert outcome.data["follow_up_id"] == str(callback_id)
    again = await client.post(f"/chat/{chat_id}/callback", json={"phone": PHONE}, headers=headers)
    assert again.status_code == 409 and _fields(again) == ["interaction_id"]  # never doubled


async def test_a_left_message_becomes_an_email_ticket_and_ends_the_chat(client, db) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    chat_id, headers = await _start(client)
    body = {"email": "ann@example.org", "message": "Please tell me why my card was declined.", "name": "Ann"}
    answer = await client.post(f"/chat/{chat_id}/message", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["reference"].startswith("SB-")
    events = await _timeline(db, chat_id)
    outcome = next(e for e in events if e.kind == "chat_message_left")
    ticket_id = uuid.UUID(outcome.data["follow_up_id"])
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, chat_id)).state is State.ABANDONED
        ticket = await s.get(Interaction, ticket_id)
        assert ticket.channel is Channel.TICKET and ticket.state is State.QUEUED
        await s.commit()
    assert [e.data.get("reason") for e in events if e.kind == "state_changed"][-1] == "left a message"
    twice = await client.post(f"/chat/{chat_id}/message", json=body, headers=headers)
    assert twice.status_code == 409


async def test_bad_input_names_the_field_and_leaves_the_chat_waiting(client, db) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    chat_id, headers = await _start(client)
    async with db.sessionmaker() as s:
        before = await count_rows(s)
    cases = [
        ("callback", {"phone": "call me maybe"}, 422, ["phone"]),
        ("callback", {}, 422, ["phone"]),  # an anonymous visitor has no number on file
        ("callback", {"phone": PHONE, "when": "now"}, 422, ["body.when"]),
        ("message", {"email": "ann@", "message": "Please call me about my card."}, 422, ["body.email"]),
        ("message", {"email": "ann@example.org", "message": "hi"}, 422, ["body.message"]),
        ("message", {"message": "Please call me about my card."}, 422, ["body.email"]),
    ]
    for path, body, code, fields in cases:
        response = await client.post(f"/chat/{chat_id}/{path}", json=body, headers=headers)
        assert (response.status_code, _fields(response)) == (code, fields), (path, body, response.text)
    stranger = await client.post(
        f"/chat/{chat_id}/callback", json={"phone": PHONE}, headers={"X-Chat-Token": "x"}
    )
    assert stranger.status_code == 404 and _fields(stranger) == ["token"]
    async with db.sessionmaker() as s:
        assert await count_rows(s) == before
        assert (await s.get(Interaction, chat_id)).state is State.QUEUED
        voice = await s.scalar(
            select(func.count()).select_from(Interaction).where(Interaction.channel == Channel.VOICE)
        )
        assert voice == 0
        await s.commit()


async def test_the_chat_wait_threshold_is_set_per_queue_audited_and_checked(client, db, make_user) -> None:
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "cards")
    _, headers = await make_user(Role.SUPERVISOR)
    url = f"/api/workforce/queues/{queue.id}"
    for body, field in (
        ({"chat_wait_offer_after_seconds": 5}, "body.chat_wait_offer_after_seconds"),
        ({"chat_wait_offer_after_seconds": "soon"}, "body.chat_wait_offer_after_seconds"),
        ({}, "body"),
    ):
        refused = await client.patch(url, json=body, headers=headers)
        assert refused.status_code == 422 and _fields(refused) == [field], refused.text
    listed = await client.get("/api/workforce/queues", headers=headers)
    assert [q["chat_wait_offer_after_seconds"] for q in listed.json()] == [300]
    page = await client.post(
        f"/supervisor/queues/{queue.id}/chat-wait", data={"chat_wait_minutes": "often"}, headers=headers
    )
    assert page.status_code == 422 and _fields(page) == ["chat_wait_minutes"]
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == 0  # nothing half-written
        await s.commit()
    changed = await client.patch(url, json={"chat_wait_offer_after_seconds": 90}, headers=headers)
    assert changed.status_code == 200 and changed.json()["chat_wait_offer_after_seconds"] == 90
    async with db.sessionmaker() as s:
        assert (await s.get(Queue, queue.id, populate_existing=True)).chat_wait_offer_after_seconds == 90
        entry = await s.scalar(
            select(AuditEntry).where(AuditEntry.action == "queue.chat_wait_threshold_changed")
        )
        assert entry is not None and entry.data["before"] == {"chat_wait_offer_after_seconds": 300}
        await s.commit()
