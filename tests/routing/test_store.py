"""The SQL safety net: fenced, compare-and-set offer writes on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from interactions.models import Interaction, TimelineEvent
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import State
from routing import store
from routing.models import Offer, OfferState
from switchboard.auth.models import Role, User
from switchboard.db import Database, utcnow
from switchboard.errors import Conflict
from workforce.models import Agent

TTL = timedelta(seconds=30)


async def _agent(session, *, channel_max: dict[str, int] | None = None) -> Agent:
    user = User(
        username=f"a-{uuid.uuid4().hex[:8]}", display_name="Agent", role=Role.AGENT, password_hash="x"
    )
    session.add(user)
    await session.flush()
    agent = Agent(
        user_id=user.id,
        display_name="Agent",
        capacity_units=100,
        channel_max=channel_max or {"voice": 1, "chat": 3, "ticket": 5, "email": 5},
    )
    session.add(agent)
    await session.flush()
    return agent


async def _interaction(session, channel: str = "chat", phone: str = "+447911123456") -> Interaction:
    data = InteractionCreate(channel=channel, identity={"kind": "phone", "value": phone})
    interaction = await create_interaction(session, data=data, actor=Actor.system(), default_region="GB")
    await session.flush()
    return interaction


async def test_offer_accept_connects_and_records(session):
    agent = await _agent(session)
    interaction = await _interaction(session)
    start = interaction.virtual_start_at
    now = utcnow()
    offer = await store.create_offer(
        session, partition="p", epoch=1, interaction_id=interaction.id, agent_id=agent.id, now=now, ttl=TTL
    )
    await session.commit()
    fresh = await session.get(Interaction, interaction.id, populate_existing=True)
    assert fresh.state is State.OFFERED and fresh.agent_id == agent.id

    await store.accept_offer(session, partition="p", epoch=1, offer_id=offer.id, agent_id=agent.id, now=now)
    await session.commit()
    fresh = await session.get(Interaction, interaction.id, populate_existing=True)
    assert fresh.state is State.CONNECTED and fresh.virtual_start_at == start
    kinds = list(
        await session.scalars(
            select(TimelineEvent.kind)
            .where(TimelineEvent.interaction_id == interaction.id)
            .order_by(TimelineEvent.id)
        )
    )
    assert "offer_created" in kinds and kinds.count("state_changed") == 3  # queued, offered, connected


async def test_stale_epoch_is_fenced_and_writes_nothing(session):
    agent = await _agent(session)
    interaction = await _interaction(session)
    interaction_id, agent_id = interaction.id, agent.id  # a rollback expires the ORM objects
    await store.fence(session, partition="p", epoch=5)
    await session.commit()
    with pytest.raises(store.StaleEngine):
        await store.create_offer(
            session,
            partition="p",
            epoch=4,
            interaction_id=interaction_id,
            agent_id=agent_id,
            now=utcnow(),
            ttl=TTL,
        )
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Offer)) == 0
    fresh = await session.get(Interaction, interaction_id, populate_existing=True)
    assert fresh.state is State.QUEUED


async def test_capacity_and_decliners_are_enforced(session):
    agent = (await _agent(session, channel_max={"voice": 1, "chat": 3})).id
    other = (await _agent(session)).id
    first = (await _interaction(session, channel="voice", phone="+447911000001")).id
    second = (await _interaction(session, channel="voice", phone="+447911000002")).id
    now = utcnow()
    await store.create_offer(
        session, partition="p", epoch=1, interaction_id=first, agent_id=agent, now=now, ttl=TTL
    )
    await session.commit()
    with pytest.raises(Conflict, match="capacity"):
        await store.create_offer(
            session, partition="p", epoch=1, interaction_id=second, agent_id=agent, now=now, ttl=TTL
        )
    await session.rollback()

    # `other` rejects `second`: it must never be offered to `other` again.
    offer = await store.create_offer(
        session, partition="p", epoch=1, interaction_id=second, agent_id=other, now=now, ttl=TTL
    )
    await store.close_offer(
        session,
        partition="p",
        epoch=1,
        offer_id=offer.id,
        outcome=OfferState.REJECTED,
        now=now,
        reason="busy",
    )
    await session.commit()
    with pytest.raises(Conflict, match="declined"):
        await store.create_offer(
            session, partition="p", epoch=1, interaction_id=second, agent_id=other, now=now, ttl=TTL
        )


async def test_accept_foreign_or_expired_offer_is_409_and_changes_nothing(session):
    agent = (await _agent(session)).id
    stranger = (await _agent(session)).id
    interaction = (await _interaction(session)).id
    now = utcnow()
    created = await store.create_offer(
        session, partition="p", epoch=1, interaction_id=interaction, agent_id=agent, now=now, ttl=TTL
    )
    offer = created.id  # a rollback expires the ORM objects: keep plain ids
    await session.commit()
    with pytest.raises(Conflict, match="another agent"):
        await store.accept_offer(session, partition="p", epoch=1, offer_id=offer, agent_id=stranger, now=now)
    await session.rollback()
    late = now + TTL + timedelta(seconds=1)
    with pytest.raises(Conflict, match="expired"):
        await store.accept_offer(session, partition="p", epoch=1, offer_id=offer, agent_id=agent, now=late)
    await session.rollback()
    fresh = await session.get(Offer, offer, populate_existing=True)
    assert fresh.state is OfferState.LIVE
    assert (await session.get(Interaction, interaction, populate_existing=True)).state is State.OFFERED


async def test_accept_received_before_expiry_is_honoured_when_written_after(session):
    agent = (await _agent(session)).id
    interaction = (await _interaction(session)).id
    now = utcnow()
    created = await store.create_offer(
        session, partition="p", epoch=1, interaction_id=interaction, agent_id=agent, now=now, ttl=TTL
    )
    offer, expires = created.id, created.expires_at
    await session.commit()
    after = expires + timedelta(seconds=1)  # processed after the expiry...
    with pytest.raises(Conflict, match="expired"):  # ...and received after it: refused
        await store.accept_offer(
            session, partition="p", epoch=1, offer_id=offer, agent_id=agent, now=after, received_at=after
        )
    await session.rollback()
    in_time = expires - timedelta(seconds=1)  # received before it: the agent's
    await store.accept_offer(
        session, partition="p", epoch=1, offer_id=offer, agent_id=agent, now=after, received_at=in_time
    )
    await session.commit()
    assert (await session.get(Offer, offer, populate_existing=True)).state is OfferState.ACCEPTED
    it = await session.get(Interaction, interaction, populate_existing=True)
    assert (it.state, it.agent_id) == (State.CONNECTED, agent)


async def test_expired_offer_requeues_keeping_place(session):
    agent = await _agent(session)
    interaction = await _interaction(session)
    start = interaction.virtual_start_at
    now = utcnow()
    offer = await store.create_offer(
        session, partition="p", epoch=1, interaction_id=interaction.id, agent_id=agent.id, now=now, ttl=TTL
    )
    await store.close_offer(
        session,
        partition="p",
        epoch=1,
        offer_id=offer.id,
        outcome=OfferState.EXPIRED,
        now=now + TTL,
        reason="missed",
    )
    await session.commit()
    fresh = await session.get(Interaction, interaction.id, populate_existing=True)
    assert fresh.state is State.QUEUED and fresh.agent_id is None and fresh.virtual_start_at == start


async def test_two_engines_racing_for_one_interaction_assign_it_once(db: Database):
    """Two concurrent sessions (two engines mid hand-over) offer one interaction to two agents."""
    async with db.sessionmaker() as s:
        agent_ids = [(await _agent(s)).id, (await _agent(s)).id]
        interaction_id = (await _interaction(s)).id
        await s.commit()

    async def engine(agent_id: uuid.UUID, epoch: int) -> str:
        async with db.sessionmaker() as s:
            try:
                await store.create_offer(
                    s,
                    partition="race",
                    epoch=epoch,
                    interaction_id=interaction_id,
                    agent_id=agent_id,
                    now=utcnow(),
                    ttl=TTL,
                )
                await s.commit()
                return "won"
            except Conflict:
                await s.rollback()
                return "lost"

    results = await asyncio.gather(engine(agent_ids[0], 1), engine(agent_ids[1], 2))
    assert sorted(results) == ["lost", "won"]
    async with db.sessionmaker() as s:
        live = (await s.scalars(select(Offer).where(Offer.interaction_id == interaction_id))).all()
        assert len(live) == 1
