"""The desktop-message catalogue (switchboard.desktop_messages): what the engine publishes on an
agent's topic parses into its classes, end to end with a real host, SQL and Redis pub/sub."""

from __future__ import annotations

import asyncio
import json
import uuid

from switchboard import commands
from switchboard import desktop_messages as messages
from switchboard.events import PREFIX
from tests.factories import queued_chat, routing_floor
from tests.helpers import eventually, leading_host, offered


def test_every_message_round_trips_and_strangers_are_not_parsed() -> None:
    card = messages.OfferCard(
        channel="chat",
        customer_name="Ada",
        tier="gold",
        segments=["vip"],
        topic=None,
        subject="Card",
        queue="Retail",
        waiting_since="2026-12-06T12:00:00+00:00",
    )
    examples = [
        messages.Offer(
            offer_id="o",
            interaction_id="i",
            queue="retail",
            expires_at="2026-12-06T12:00:30+00:00",
            card=card,
        ),
        messages.OfferClosed(offer_id="o", reason="conflict"),
        messages.Assigned(interaction_id="i"),
        messages.WrapUpStarted(interaction_id="i"),
        messages.Completed(interaction_id="i"),
        messages.CustomerChanged(interaction_id="i"),
        messages.Presence(agent_id="a", presence="not_responding", reason="missed"),
        messages.SchedulePublished(
            schedule_id="s", shifts=2, first_shift="2027-01-04T09:00:00+00:00", summary="2 shifts"
        ),
        messages.ShiftRequestChanged(request_id="r", kind="time_off", state="approved", summary="Time off"),
    ]
    assert {type(m) for m in examples} == set(messages.CATALOGUE.values())  # every class has an example
    for message in examples:
        wire = json.loads(json.dumps(message.as_json()))  # as pub/sub carries it
        assert messages.parse(wire) == message
    assert messages.parse({"type": "timeline", "customer_id": "c"}) is None  # another module's event
    assert messages.parse({"type": "offer_closed", "offer_id": "o"}) is None  # a field missing
    assert messages.parse({"type": "assigned", "interaction_id": 7}) is None  # mistyped
    no_card = messages.parse(
        {"type": "offer", "offer_id": "o", "interaction_id": "i", "queue": "q", "expires_at": "x"}
    )
    assert isinstance(no_card, messages.Offer) and no_card.card is None  # an older publisher's offer
    assert messages.Assigned(interaction_id="i").to("a1") == (
        "agent:a1",
        {"type": "assigned", "interaction_id": "i"},
    )


async def test_what_the_engine_tells_a_desktop_parses_into_the_catalogue(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=1)
    agent = str(agent_ids[0])
    async with leading_host(db, redis_handle) as (host, client):
        pubsub = client.pubsub()
        await pubsub.subscribe(PREFIX + f"agent:{agent}")
        received: list[dict] = []

        async def listen() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    received.append(json.loads(message["data"]))

        listener = asyncio.create_task(listen())
        try:
            iid = await queued_chat(db, client, 1)
            (offer,) = (await offered(db, 1)).values()
            for command in (
                commands.Accept(offer_id=str(offer.id), agent_id=agent),
                commands.WrapUp(interaction_id=str(iid), agent_id=agent),
                commands.Complete(interaction_id=str(iid), agent_id=agent),
            ):
                assert (await commands.call(client, command))["ok"]

            async def all_four() -> bool:
                return len([r for r in received if r["type"] != "timeline"]) >= 4

            await eventually(all_four, what="offer, assigned, wrap_up_started, completed")
        finally:
            listener.cancel()
            await pubsub.aclose()
    parsed = [messages.parse(r) for r in received if r["type"] != "timeline"]
    assert [type(m) for m in parsed] == [
        messages.Offer,
        messages.Assigned,
        messages.WrapUpStarted,
        messages.Completed,
    ]
    first = parsed[0]
    assert isinstance(first, messages.Offer) and first.card is not None
    assert (first.offer_id, first.interaction_id, first.card.queue) == (str(offer.id), str(iid), "Retail")
    assert first.card.transferred is False  # said by the engine: the toast needs no request for it
    assert uuid.UUID(first.offer_id)
