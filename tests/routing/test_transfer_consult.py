"""Warm (consult) transfers end to end: real engine host, real SQL (SQLite and PostgreSQL), real Redis.

The sending agent keeps the customer (parent connected, capacity held) until the target accepts
the child; any other outcome cancels the child and the customer stays with the sender. A sampler
reads SQL throughout and checks that at every moment exactly one agent is connected to the
customer: never two (double assignment), never none (dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from sqlalchemy import select

from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from routing.engine.state import EngineConfig
from routing.models import Offer, OfferState
from switchboard import commands
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.events import agent_topic
from tests.factories import agent_in_queue, queued_chat, routing_floor
from tests.helpers import accept_next, eventually, kill_host, live_offers, running_host, state_of
from workforce.models import Agent, Presence

HELD = (State.CONNECTED, State.WRAP_UP)


@contextlib.asynccontextmanager
async def one_agent_at_a_time(db: Database, parent_id: uuid.UUID):
    """Sample SQL while the body runs: the customer (parent and its transfer children) is always
    held by exactly one agent."""
    seen: list[tuple[str, ...]] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            async with db.sessionmaker() as s:
                rows = (
                    await s.execute(
                        select(Interaction.id, Interaction.state, Interaction.agent_id).where(
                            (Interaction.id == parent_id) | (Interaction.parent_id == parent_id)
                        )
                    )
                ).all()
            held = [(str(i), str(a)) for i, st, a in rows if st in HELD]
            assert len(held) == 1, f"customer held by {len(held)} agents: {rows}"
            seen.append(tuple(sorted(h[0] for h in held)))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        stop.set()
        await task  # re-raises a violated invariant
    assert seen, "the sampler never ran"


async def _kinds(db: Database, interaction_id: str | uuid.UUID) -> list[str]:
    async with db.sessionmaker() as s:
        rows = await s.scalars(
            select(TimelineEvent.kind)
            .where(TimelineEvent.interaction_id == uuid.UUID(str(interaction_id)))
            .order_by(TimelineEvent.id)
        )
        return list(rows)


async def _interaction(db: Database, interaction_id: str | uuid.UUID) -> Interaction:
    async with db.sessionmaker() as s:
        return await s.get(Interaction, uuid.UUID(str(interaction_id)))


async def _voice_call(client, supervisor, phone: str) -> str:
    created = await client.post(
        "/api/interactions",
        json={"channel": "voice", "queue": "retail", "identity": {"kind": "phone", "value": phone}},
        headers=supervisor,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _offers(client, headers) -> list[dict]:
    return (await client.get("/api/routing/offers", headers=headers)).json()


async def test_warm_transfer_parent_ends_only_when_the_target_accepts(routed, db, make_user):  # noqa: F811
    app, client = routed
    sender_user, sender = await make_user(Role.AGENT)
    target_user, target = await make_user(Role.AGENT)
    sender_id = await agent_in_queue(db, sender_user)
    target_id = await agent_in_queue(db, target_user)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=sender)
    parent_id = await _voice_call(client, supervisor, "+447911123401")
    await accept_next(client, sender)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=target)

    async with (
        app.state.event_hub.subscribe(agent_topic(sender_id)) as pushed,
        one_agent_at_a_time(db, uuid.UUID(parent_id)),
    ):
        moved = await client.post(
            f"/api/routing/interactions/{parent_id}/transfer",
            json={"to_agent_id": str(target_id), "mode": "warm", "note": "Card 4111 1111 1111 1111 lost"},
            headers=sender,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["consult"] == "pending"
        child_id = moved.json()["child_interaction_id"]

        async def target_offered() -> bool:
            return [o["interaction_id"] for o in await _offers(client, target)] == [child_id]

        await eventually(target_offered, what="the consult offered to the target")
        parent = await _interaction(db, parent_id)
        assert parent.state is State.CONNECTED and parent.agent_id == sender_id  # still the sender's
        # The sender still holds the call's capacity: a new call waits rather than reaching them.
        waiting_id = await _voice_call(client, supervisor, "+447911123402")
        # A barrier instead of a pause: the dry run follows the call's arrival on the command
        # stream, so once the engine answers it (here: 422, no rule set is published; the queue
        # was named) the engine has decided about the call.
        explained = await client.post(
            "/api/routing/dry-run", json={"interaction_id": waiting_id}, headers=supervisor
        )
        assert explained.status_code == 422 and "no rule set" in explained.text, explained.text
        assert await _offers(client, sender) == []
        assert (await _interaction(db, waiting_id)).state is State.QUEUED
        status = await client.get(f"/api/routing/interactions/{parent_id}/transfer", headers=sender)
        assert status.json()["consult"] == "pending" and status.json()["child_interaction_id"] == child_id
        refused = await client.post(
            f"/api/routing/interactions/{parent_id}/transfer", json={"to_queue": "retail"}, headers=sender
        )
        assert refused.status_code == 409  # one transfer at a time

        (offer,) = await _offers(client, target)
        accepted = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=target)
        assert accepted.status_code == 200, accepted.text

        async def sender_told() -> bool:
            while not pushed.empty():
                event = pushed.get_nowait()
                if event == {"type": "completed", "interaction_id": parent_id}:
                    return True
            return False

        await eventually(sender_told, what="the sender's desktop told to close the tab")

    parent, child = await _interaction(db, parent_id), await _interaction(db, child_id)
    assert parent.state is State.TRANSFERRED and parent.agent_id == sender_id
    assert child.state is State.CONNECTED and child.agent_id == target_id
    assert child.virtual_start_at == parent.virtual_start_at  # the customer's place is kept
    assert "4111 1111 1111 1111" not in child.attributes["transfer"]["note"]
    assert child.attributes["transfer"]["consult"] == "accepted"
    assert (await _kinds(db, parent_id))[-3:] == ["consult_started", "state_changed", "transferred"]
    assert "consult_accepted" in await _kinds(db, child_id)
    status = (await client.get(f"/api/routing/interactions/{parent_id}/transfer", headers=sender)).json()
    assert status["consult"] == "accepted" and status["consult_outcome"] == "accepted"
    # Only now is the sender's capacity free: the waiting call reaches them.
    offer = await accept_next(client, sender)
    assert offer["interaction_id"] == waiting_id


async def test_rejected_or_cancelled_consult_leaves_the_customer_with_the_sender(
    routed,  # noqa: F811
    db,
    make_user,
):
    app, client = routed
    sender_user, sender = await make_user(Role.AGENT)
    target_user, target = await make_user(Role.AGENT)
    sender_id = await agent_in_queue(db, sender_user)
    target_id = await agent_in_queue(db, target_user)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=sender)
    parent_id = await _voice_call(client, supervisor, "+447911123403")
    await accept_next(client, sender)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=target)

    async def consult(**target_spec) -> tuple[str, dict]:
        moved = await client.post(
            f"/api/routing/interactions/{parent_id}/transfer",
            json={"mode": "warm", "note": "wants a mortgage holiday", **target_spec},
            headers=sender,
        )
        assert moved.status_code == 200, moved.text
        child_id = moved.json()["child_interaction_id"]

        async def offered() -> bool:
            return [o["interaction_id"] for o in await _offers(client, target)] == [child_id]

        await eventually(offered, what="the consult offer")
        (offer,) = await _offers(client, target)
        return child_id, offer

    async with (
        app.state.event_hub.subscribe(agent_topic(sender_id)) as pushed,
        one_agent_at_a_time(db, uuid.UUID(parent_id)),
    ):
        # 1. To the queue; the only other agent there rejects: cancelled, not passed on.
        child_id, offer = await consult(to_queue="retail")
        rejected = await client.post(f"/api/routing/offers/{offer['id']}/reject", headers=target)
        assert rejected.status_code == 200

        async def cancelled() -> bool:
            return (await _interaction(db, child_id)).state is State.FAILED

        await eventually(cancelled, what="the consult child cancelled")
        event = await asyncio.wait_for(pushed.get(), 5)
        assert event == {"type": "assigned", "interaction_id": parent_id}  # the tab comes back
        status = (await client.get(f"/api/routing/interactions/{parent_id}/transfer", headers=sender)).json()
        assert status == {
            "ok": True,
            "reason": None,
            "child_interaction_id": child_id,
            "consult": "cancelled",
            "consult_outcome": "rejected",
        }
        parent = await _interaction(db, parent_id)
        assert parent.state is State.CONNECTED and parent.agent_id == sender_id
        assert (await _kinds(db, parent_id))[-2:] == ["consult_started", "consult_cancelled"]

        # 2. To the agent (they are not-declined for this new child); the sender withdraws it.
        await client.post("/api/routing/presence", json={"presence": "available"}, headers=target)
        child_id, offer = await consult(to_agent_id=str(target_id))
        withdrawn = await client.post(
            f"/api/routing/interactions/{parent_id}/transfer/cancel", headers=sender
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert (
            withdrawn.json()["consult"] == "cancelled" and withdrawn.json()["consult_outcome"] == "cancelled"
        )
        late = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=target)
        assert late.status_code == 409  # the offer was rescinded: nothing changes
        again = await client.post(f"/api/routing/interactions/{parent_id}/transfer/cancel", headers=sender)
        assert again.status_code == 409
        foreign = await client.post(f"/api/routing/interactions/{parent_id}/transfer/cancel", headers=target)
        assert foreign.status_code == 404
        async with db.sessionmaker() as s:
            assert (await s.get(Offer, uuid.UUID(offer["id"]))).state is OfferState.RESCINDED
        assert (await _interaction(db, child_id)).state is State.FAILED
        parent = await _interaction(db, parent_id)
        assert parent.state is State.CONNECTED and parent.agent_id == sender_id

    # 3. Still the sender's customer: a blind transfer still works afterwards (blind: the customer
    # waits in the queue, held by nobody, so outside the sampler).
    blind = await client.post(
        f"/api/routing/interactions/{parent_id}/transfer", json={"to_queue": "retail"}, headers=sender
    )
    assert blind.status_code == 200 and blind.json()["consult"] is None
    offer = await accept_next(client, target)
    assert offer["interaction_id"] == blind.json()["child_interaction_id"]
    assert (await _interaction(db, parent_id)).state is State.TRANSFERRED
    self_transfer = await client.post(
        f"/api/routing/interactions/{offer['interaction_id']}/transfer",
        json={"to_agent_id": str(target_id), "mode": "warm"},
        headers=target,
    )
    assert self_transfer.status_code == 422
    assert self_transfer.json()["errors"][0]["field"] == "body.to_agent_id"


# --------------------------------------------------------------------------- host level: timers, take-over


async def _connected_pair(db, client, agent_ids: list[uuid.UUID]) -> tuple[uuid.UUID, str, str]:
    """A chat connected to one of the two (seeded) agents: (interaction, sender, the other agent)."""
    iid = await queued_chat(db, client, 77)
    await eventually(lambda: _has_offer(db, iid), what="the first offer")
    (offer,) = await live_offers(db, iid)
    sender = str(offer.agent_id)
    assert (await commands.call(client, {"type": "accept", "offer_id": str(offer.id), "agent_id": sender}))[
        "ok"
    ]
    return iid, sender, next(str(a) for a in agent_ids if str(a) != sender)


async def _has_offer(db, iid) -> bool:
    return bool(await live_offers(db, iid))


async def _warm(client, iid: uuid.UUID, sender: str, target: str) -> str:
    reply = await commands.call(
        client,
        {
            "type": "transfer",
            "interaction_id": str(iid),
            "agent_id": sender,
            "mode": "warm",
            "to_agent_id": target,
        },
    )
    assert reply["ok"] and reply["consult"] == "pending", reply
    return reply["child_interaction_id"]


async def test_missed_or_unanswered_consult_is_cancelled(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=2)  # before the host starts: it reads agents from SQL
    ttl = EngineConfig(offer_ttl={"voice": 1.0, "chat": 1.0, "ticket": 1.0, "email": 1.0})
    async with running_host(db, redis_handle, engine_config=ttl, consult_wait_seconds=1.0) as (
        host,
        client,
        _,
    ):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid, sender, target = await _connected_pair(db, client, agent_ids)
        async with one_agent_at_a_time(db, iid):
            # Missed: the offer times out; the target goes not-responding, the customer stays.
            child = uuid.UUID(await _warm(client, iid, sender, target))
            await eventually(lambda: _has_offer(db, child), what="the consult offer")
            await eventually(lambda: _is(db, child, State.FAILED), what="the missed consult cancelled")
            assert (await _interaction(db, child)).attributes["transfer"]["consult_outcome"] == "missed"
            async with db.sessionmaker() as s:
                assert (await s.get(Agent, uuid.UUID(target))).presence is Presence.NOT_RESPONDING

            # Unanswered: the target is not available, nobody is offered it before the wait ends.
            child = uuid.UUID(await _warm(client, iid, sender, target))
            await eventually(lambda: _is(db, child, State.FAILED), what="the unanswered consult cancelled")
            assert (await _interaction(db, child)).attributes["transfer"]["consult_outcome"] == "timed_out"
            assert await live_offers(db, child) == []
        assert await state_of(db, iid) is State.CONNECTED
        assert host.engine.holder_of(str(iid)) == sender


async def _is(db, iid, state: State) -> bool:
    return await state_of(db, iid) is state


async def test_take_over_during_a_consult_keeps_the_customer_with_the_sender(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=2)
    async with running_host(db, redis_handle) as (a, client_a, task_a):
        await asyncio.wait_for(a.is_leader.wait(), 10)
        iid, sender, target = await _connected_pair(db, client_a, agent_ids)
        child = uuid.UUID(await _warm(client_a, iid, sender, target))
        await eventually(lambda: _has_offer(db, child), what="the consult offer")
        async with (
            running_host(db, redis_handle) as (b, client_b, _),
            one_agent_at_a_time(db, iid),
        ):
            await kill_host(task_a)  # the leader dies mid-consult, its offer left live
            await asyncio.wait_for(b.is_leader.wait(), 10)
            # The new leader withdrew the old offer and offered the consult again, to the same target.
            (offer,) = await live_offers(db, child)
            assert str(offer.agent_id) == target and offer.engine_epoch == b.leader.lease.epoch
            assert b.engine.consult_child(str(iid)) == str(child)
            assert b.engine.holder_of(str(iid)) == sender
            assert (
                await commands.call(
                    client_b, {"type": "accept", "offer_id": str(offer.id), "agent_id": target}
                )
            )["ok"]
        assert await state_of(db, iid) is State.TRANSFERRED
        assert await state_of(db, child) is State.CONNECTED
