"""PostgreSQL's arrival hot path writes an offer in ONE statement (``store.offer_in_one_statement``),
and a take-over its offers set-based (``store.offers_set_based``).

Both must leave exactly what the portable transaction leaves (the path SQLite always takes): the
same interaction columns, offer row, timeline events, interval counters and published offer, and
refuse exactly when the portable path refuses (stale epoch, capacity, voice exclusivity, the
queue's offer policy, decliners, state, a live offer). ``test_every_writer_decides_alike`` runs
every writer from the same rows, one decision shape at a time; the checks themselves are ONE list
(``routing.offer_checks``), and ``test_every_writer_executes_the_one_list_of_checks`` removes each
check in turn and sees every writer make the offer its shape was refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, ValueTier
from interactions.models import Interaction, TimelineEvent
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import State
from routing import history, store
from routing.capacity import DEFAULT_CHANNEL_COST
from routing.history import QueueInterval
from routing.host import EngineHost, Leader, LostLeadership, arrivals
from routing.models import Offer, OfferState, RoutingPartition
from routing.offer_checks import OFFER_CHECKS
from routing.store import offers as portable_writer
from routing.store import one_statement as pg_writers
from switchboard.db import Database, utcnow
from switchboard.errors import Conflict, DomainError
from switchboard.fastsql import held_connection
from tests.factories import queued_chat, routing_floor
from workforce.models import Agent, OfferPolicy, Queue

pytestmark = pytest.mark.usefixtures("redis_sync")


async def _leading_host(db: Database, redis_handle, *, one_statement: bool) -> tuple[EngineHost, Leader]:
    host = EngineHost(db, redis_handle.async_client(), desktop_grace_seconds=None)
    host.one_statement_offers = one_statement
    lease = await host.leases.try_acquire(min_epoch=0)
    assert lease is not None
    return host, await host.take_lead(lease)


def _normalised(value, agent: str):
    """Ids and clock values the two paths cannot share, replaced by placeholders."""
    if isinstance(value, dict):
        return {
            k: "<set>" if k in ("offer_id", "expires_at") else _normalised(v, agent) for k, v in value.items()
        }
    return "<agent>" if value == agent else value


async def _written(db: Database, interaction_id: uuid.UUID, epoch: int) -> dict:
    """Everything the decision wrote for one interaction, with ids and clock values normalised."""
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, interaction_id)
        offer = (await s.scalars(select(Offer).where(Offer.interaction_id == interaction_id))).one()
        events = (
            await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id == interaction_id)
                .order_by(TimelineEvent.id)
            )
        ).all()
    agent = str(it.agent_id)
    return {
        "agent": it.agent_id,
        "interaction": (it.state, it.version, it.queue_id, it.priority, it.rule_set_version),
        "offer": (
            offer.state,
            offer.agent_id == it.agent_id,
            offer.engine_epoch == epoch,
            offer.expires_at - offer.created_at,
        ),
        "events": [
            (e.kind, e.channel, e.actor_type, e.actor_id, _normalised(e.data, agent)) for e in events[2:]
        ],
        # The decision's events carry the decision's time, as its columns do.
        "decided_at": {e.at for e in events[2:]} | {it.offered_at, it.updated_at, offer.created_at},
    }


async def _offered_count(db: Database) -> int:
    async with db.sessionmaker() as s:
        return sum((await s.scalars(select(QueueInterval.offered))).all())


async def test_same_rows_as_the_portable_transaction(pg_db: Database, redis_handle):
    db = pg_db
    agent_ids, queue_id = await routing_floor(db, agents=2)
    client = redis_handle.async_client()
    try:
        written = {}
        for one_statement in (False, True):
            host, leader = await _leading_host(db, redis_handle, one_statement=one_statement)
            iid = await queued_chat(db, client, 7 if one_statement else 8, notify=False)
            counted = await _offered_count(db)
            await arrivals.enqueue(leader, str(iid))
            written[one_statement] = await _written(db, iid, leader.lease.epoch)
            assert await _offered_count(db) == counted + 1  # the interval counter, from either path
            await host.leases.release()  # the next host takes over (and rescinds this offer)
            await host.client.aclose()
        portable, fast = written[False], written[True]
        assert portable["agent"] in agent_ids and fast["agent"] in agent_ids
        assert portable["interaction"][0] is State.OFFERED and portable["interaction"][2] == queue_id
        assert len(fast["decided_at"]) == 1 and len(portable["decided_at"]) == 1
        for key in ("interaction", "offer", "events"):
            assert fast[key] == portable[key], key
        kinds = [e[0] for e in fast["events"]]
        assert kinds == ["routed", "state_changed", "offer_created"]  # after created, queued
    finally:
        await client.aclose()


async def test_refuses_what_the_portable_path_refuses(pg_db: Database, redis_handle):
    db = pg_db
    agent_ids, _ = await routing_floor(db, agents=1, chat_max=1)
    client = redis_handle.async_client()
    try:
        first = await queued_chat(db, client, 1, notify=False)
        second = await queued_chat(db, client, 2, notify=False)
        now, ttl = utcnow(), timedelta(seconds=30)

        async def offer(interaction_id: uuid.UUID, *, epoch: int = 5):
            async with held_connection(db.engine) as driver:
                return await store.offer_in_one_statement(
                    driver,
                    partition="p",
                    epoch=epoch,
                    interaction_id=interaction_id,
                    channel="chat",
                    agent_id=agent_ids[0],
                    now=now,
                    ttl=ttl,
                )

        async with db.sessionmaker() as s:
            await store.fence(s, partition="p", epoch=5)
            await s.commit()
        with pytest.raises(store.StaleEngine):
            await offer(first, epoch=4)
        made, event_ids = await offer(first)
        assert len(event_ids) == 2 and made.customer_name
        with pytest.raises(Conflict):  # chat_max=1: no capacity left
            await offer(second)
        with pytest.raises(Conflict):  # no longer queued
            await offer(first)
        async with db.sessionmaker() as s:
            assert (await s.get(Interaction, second)).state is State.QUEUED
            live = (await s.scalars(select(Offer).where(Offer.state == OfferState.LIVE))).all()
            assert [o.interaction_id for o in live] == [first]
        # A stale host stops leading instead of writing.
        host, leader = await _leading_host(db, redis_handle, one_statement=True)
        leader.lease = dataclasses.replace(leader.lease, epoch=leader.lease.epoch - 1)
        third = await queued_chat(db, client, 3, notify=False)
        with pytest.raises(LostLeadership):
            await arrivals.enqueue(leader, str(third))
        await host.client.aclose()
    finally:
        await client.aclose()


# ---------------------------------------------------------------- both paths, decision shape by shape

PARTITION, EPOCH, TTL = "p", 5, timedelta(seconds=30)


@dataclass(frozen=True)
class Scene:
    """The starting rows of one decision: ``agent`` is offered ``work`` (queued, on ``channel``)."""

    agent: uuid.UUID
    other: uuid.UUID
    work: uuid.UUID
    channel: str


async def _interaction(db: Database, n: int, channel: str = "chat") -> uuid.UUID:
    async with db.sessionmaker() as s:
        data = InteractionCreate(
            channel=channel, queue="retail", identity={"kind": "phone", "value": f"+4479222{n:05d}"}
        )
        it = await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")
        await s.commit()
        return it.id


async def _hold(db: Database, agent: uuid.UUID, channel: str, state: State, *numbers: int) -> None:
    """The agent holds (occupies capacity with, in ``state``) interactions on ``channel``."""
    for n in numbers:
        iid = await _interaction(db, n, channel)
        async with db.sessionmaker() as s:
            await s.execute(
                update(Interaction).where(Interaction.id == iid).values(state=state, agent_id=agent)
            )
            await s.commit()


async def _add_offer(db: Database, scene: Scene, agent: uuid.UUID, state: OfferState) -> None:
    now = utcnow()
    async with db.sessionmaker() as s:
        s.add(
            Offer(
                interaction_id=scene.work, agent_id=agent, state=state, created_at=now, expires_at=now + TTL
            )
        )
        await s.commit()


async def _known_customer(db: Database, scene: Scene) -> None:
    """The customer called before (the same number: the same customer) and is a gold customer."""
    earlier = await _interaction(db, 0)
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, scene.work)
        assert (await s.get(Interaction, earlier)).customer_id == it.customer_id
        await s.execute(
            update(Customer)
            .where(Customer.id == it.customer_id)
            .values(display_name="Ada Lovelace", value_tier=ValueTier.GOLD, segments=["private", "vip"])
        )
        await s.commit()


async def _transferred(db: Database, scene: Scene) -> None:
    """A colleague transferred the work (routing.transfer): the offer says so, and the toast asks
    from whom; any other offer's toast needs no request."""
    async with db.sessionmaker() as s:
        await s.execute(
            update(Interaction)
            .where(Interaction.id == scene.work)
            .values(attributes={"transfer": {"mode": "warm", "from_agent_id": str(scene.other)}})
        )
        await s.commit()


async def _on_a_chat_and_wrapping_one_up(db: Database, scene: Scene) -> None:
    """Wrap-up still holds capacity (it is released only when wrap-up is done)."""
    await _hold(db, scene.agent, "chat", State.CONNECTED, 1)
    await _hold(db, scene.agent, "chat", State.WRAP_UP, 2)


async def _set_state(db: Database, scene: Scene, state: State) -> None:
    async with db.sessionmaker() as s:
        await s.execute(update(Interaction).where(Interaction.id == scene.work).values(state=state))
        await s.commit()


async def _offering_up_to_capacity(db: Database, scene: Scene) -> None:
    """The agent holds a live offer, and the queue lets offers stack up to capacity."""
    await _hold(db, scene.agent, "chat", State.OFFERED, 1)
    async with db.sessionmaker() as s:
        await s.execute(
            update(Queue).where(Queue.name == "retail").values(offer_policy=OfferPolicy.UP_TO_CAPACITY)
        )
        await s.commit()


async def _fence_at(db: Database, epoch: int) -> None:
    async with db.sessionmaker() as s:
        await store.fence(s, partition=PARTITION, epoch=epoch)
        await s.commit()


@dataclass(frozen=True)
class Shape:
    name: str
    refusal: type[Exception] | None  # None: an offer is made
    arrange: Callable[[Database, Scene], Awaitable[object]] = lambda db, scene: asyncio.sleep(0)
    channel: str = "chat"  # of the work offered
    capacity_units: int = 100
    chat_max: int = 3
    refused_by: str | None = None  # the one routing.offer_checks check that refuses it, if one alone does


DECLINED, CEILING, UNITS, VOICE_EXCLUSIVE, ONE_AT_A_TIME = (check.name for check in OFFER_CHECKS)

SHAPES = [
    Shape("new customer", None),
    Shape("known customer", None, _known_customer),
    Shape("transferred by a colleague", None, _transferred),
    Shape(
        "declined by this agent",
        Conflict,
        lambda db, sc: _add_offer(db, sc, sc.agent, OfferState.REJECTED),
        refused_by=DECLINED,
    ),
    Shape(
        "missed by this agent",
        Conflict,
        lambda db, sc: _add_offer(db, sc, sc.agent, OfferState.EXPIRED),
        refused_by=DECLINED,
    ),
    Shape(
        "declined by another agent", None, lambda db, sc: _add_offer(db, sc, sc.other, OfferState.REJECTED)
    ),
    Shape(
        "rescinded before (not declined)",
        None,
        lambda db, sc: _add_offer(db, sc, sc.agent, OfferState.RESCINDED),
    ),
    Shape(
        "channel ceiling full",
        Conflict,
        lambda db, sc: _hold(db, sc.agent, "chat", State.CONNECTED, 1),
        chat_max=1,
        refused_by=CEILING,
    ),
    Shape(
        "channel ceiling not yet full",
        None,
        lambda db, sc: _hold(db, sc.agent, "chat", State.CONNECTED, 1),
        chat_max=2,
    ),
    Shape(
        "capacity units full",
        Conflict,
        _on_a_chat_and_wrapping_one_up,
        capacity_units=74,
        refused_by=UNITS,
    ),
    Shape(
        "capacity units exactly enough",
        None,
        lambda db, sc: _hold(db, sc.agent, "chat", State.WRAP_UP, 1, 2),
        capacity_units=75,
    ),
    Shape(
        "on a call, offered chat",
        Conflict,
        lambda db, sc: _hold(db, sc.agent, "voice", State.CONNECTED, 1),
        capacity_units=1000,
        refused_by=VOICE_EXCLUSIVE,
    ),
    Shape(
        "on a chat, offered a call",
        Conflict,
        lambda db, sc: _hold(db, sc.agent, "chat", State.OFFERED, 1),
        channel="voice",
        capacity_units=1000,
    ),
    Shape("free, offered a call", None, channel="voice"),
    # The queue offer policy (issue #10): one pending offer per agent at a time by default.
    Shape(
        "agent already holds a live offer",
        Conflict,
        lambda db, sc: _hold(db, sc.agent, "chat", State.OFFERED, 1),
        refused_by=ONE_AT_A_TIME,
    ),
    Shape("agent holds a live offer, queue offers up to capacity", None, _offering_up_to_capacity),
    Shape("work done no longer holds", None, lambda db, sc: _hold(db, sc.agent, "voice", State.COMPLETED, 1)),
    Shape("stale lease epoch", store.StaleEngine, lambda db, sc: _fence_at(db, EPOCH + 1)),
    Shape("no longer queued", Conflict, lambda db, sc: _set_state(db, sc, State.ABANDONED)),
    Shape(
        "a live offer already exists", Conflict, lambda db, sc: _add_offer(db, sc, sc.other, OfferState.LIVE)
    ),
]


async def _rows(s: AsyncSession, scene: Scene) -> dict:
    """Every row a decision may write, with the offer's id (which each path draws) normalised."""
    it = (await s.execute(select(Interaction.__table__).where(Interaction.id == scene.work))).one()
    offers = (await s.execute(select(Offer.__table__).where(Offer.interaction_id == scene.work))).all()
    events = (
        await s.scalars(
            select(TimelineEvent).where(TimelineEvent.interaction_id == scene.work).order_by(TimelineEvent.id)
        )
    ).all()
    intervals = (await s.execute(select(QueueInterval.__table__).order_by(QueueInterval.queue_name))).all()
    return {
        "interaction": {k: v for k, v in it._asdict().items() if k != "id"},
        "offers": sorted((o.agent_id, o.state, o.created_at, o.expires_at, o.engine_epoch) for o in offers),
        "events": [
            (e.kind, e.channel, e.actor_type, e.actor_id, e.at, {**e.data, "offer_id": "<id>"})
            for e in events
        ],
        "intervals": [tuple(row) for row in intervals],
        "epoch": await s.scalar(select(RoutingPartition.epoch).where(RoutingPartition.name == PARTITION)),
    }


def _outcome(result: store.OfferMade | Exception) -> object:
    if isinstance(result, Exception):
        return type(result)
    return dataclasses.replace(result, id=uuid.UUID(int=0))


async def _portable(db: Database, scene: Scene, now) -> tuple[object, dict]:
    """The portable transaction, as the engine host composes it (fence, offer, interval counter),
    then rolled back: the one-statement path starts from the same rows."""
    async with db.sessionmaker() as s:
        try:
            await store.fence(s, partition=PARTITION, epoch=EPOCH)
            result: store.OfferMade | Exception = await store.create_offer(
                s,
                partition=PARTITION,
                epoch=EPOCH,
                interaction_id=scene.work,
                agent_id=scene.agent,
                now=now,
                ttl=TTL,
                fenced=True,
            )
            await history.bump(s, queue="retail", at=now, offered=1)
        except DomainError as exc:
            result = exc
            await s.rollback()  # a refusal rolls the whole decision back
        rows = await _rows(s, scene)
        await s.rollback()
    return _outcome(result), rows


async def _one_statement(db: Database, scene: Scene, now) -> tuple[object, dict]:
    async with held_connection(db.engine) as driver:
        try:
            result: store.OfferMade | Exception
            result, _ = await store.offer_in_one_statement(
                driver,
                partition=PARTITION,
                epoch=EPOCH,
                interaction_id=scene.work,
                channel=scene.channel,
                agent_id=scene.agent,
                now=now,
                ttl=TTL,
                queue_name="retail",
            )
        except DomainError as exc:
            result = exc
    async with db.sessionmaker() as s:
        return _outcome(result), await _rows(s, scene)


async def _set_based(db: Database, scene: Scene, now) -> tuple[object, dict]:
    """A take-over's set-based offers (PostgreSQL), for this one offer, then rolled back. It
    refuses an offer by leaving it out (None), where the other paths raise Conflict."""
    async with db.sessionmaker() as s:
        try:
            (made,) = await store.offers_set_based(
                s,
                partition=PARTITION,
                epoch=EPOCH,
                now=now,
                wanted=[store.OfferWanted(scene.work, scene.agent, now + TTL, queue_name="retail")],
            )
            result: store.OfferMade | Exception = (
                Conflict("refused", field="agent_id") if made is None else made[0]
            )
        except DomainError as exc:
            result = exc
            await s.rollback()
        rows = await _rows(s, scene)
        await s.rollback()
    return _outcome(result), rows


async def _scene(db: Database, shape: Shape) -> Scene:
    agents, _ = await routing_floor(db, agents=2, chat_max=shape.chat_max)
    async with db.sessionmaker() as s:
        await s.execute(
            update(Agent).where(Agent.id == agents[0]).values(capacity_units=shape.capacity_units)
        )
        await s.commit()
    await _fence_at(db, EPOCH)
    scene = Scene(agents[0], agents[1], await _interaction(db, 0, shape.channel), shape.channel)
    await shape.arrange(db, scene)
    return scene


def test_every_offer_check_is_the_reason_some_shape_is_refused():
    """The table below covers routing.offer_checks: a check added there needs its shape here."""
    assert {check.name for check in OFFER_CHECKS} == {s.refused_by for s in SHAPES if s.refused_by}
    for shape in SHAPES:
        assert shape.refused_by is None or shape.refusal is Conflict, shape.name


@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if s.refused_by], ids=[s.name for s in SHAPES if s.refused_by]
)
async def test_every_writer_executes_the_one_list_of_checks(db: Database, shape: Shape, monkeypatch):
    """Mutation, check by check: without the check that alone refuses this shape, every writer
    makes the offer — so each writer runs routing.offer_checks, not a copy of its own."""
    without = tuple(check for check in OFFER_CHECKS if check.name != shape.refused_by)
    monkeypatch.setattr(portable_writer, "OFFER_CHECKS", without)
    monkeypatch.setattr(
        pg_writers,
        "_OFFER_IN_ONE_STATEMENT",
        pg_writers._offer_in_one_statement_sql(DEFAULT_CHANNEL_COST, without),
    )
    monkeypatch.setattr(
        pg_writers, "_OFFERS_SET_BASED", pg_writers._offers_set_based_sql(DEFAULT_CHANNEL_COST, without)
    )
    scene = await _scene(db, shape)
    now = utcnow()
    writers = [_portable] if db.is_sqlite else [_portable, _one_statement, _set_based]
    for writer in writers:
        outcome, _ = await writer(db, scene, now)
        assert isinstance(outcome, store.OfferMade), (writer.__name__, outcome)
        if writer is _one_statement:  # it commits: put the work back for the next writer
            await _undo_offer(db, scene)


async def _undo_offer(db: Database, scene: Scene) -> None:
    async with db.sessionmaker() as s:
        await s.execute(
            delete(TimelineEvent).where(
                TimelineEvent.interaction_id == scene.work,
                TimelineEvent.kind.in_(("state_changed", "offer_created")),
            )
        )
        await s.execute(
            delete(Offer).where(Offer.interaction_id == scene.work, Offer.state == OfferState.LIVE)
        )
        await s.execute(
            update(Interaction)
            .where(Interaction.id == scene.work)
            .values(state=State.QUEUED, agent_id=None, version=Interaction.version - 1, offered_at=None)
        )
        await s.commit()


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
async def test_every_writer_decides_alike(db: Database, shape: Shape):
    """The same starting rows, every writer: the same refusal, or the same offer and rows written."""
    scene = await _scene(db, shape)
    async with db.sessionmaker() as s:
        before = await _rows(s, scene)
    now = utcnow()

    portable, portable_rows = await _portable(db, scene, now)
    if shape.refusal is None:
        assert isinstance(portable, store.OfferMade), portable
        assert (portable.agent_id, portable.channel) == (scene.agent, scene.channel)
        assert portable.transferred is (shape.arrange is _transferred)
        assert portable_rows != before
    else:
        assert portable is shape.refusal
        assert portable_rows == before
    if db.is_sqlite:
        pytest.skip("the one-statement offer is PostgreSQL's (the portable path is checked above)")

    taken_over, taken_over_rows = await _set_based(db, scene, now)  # before the one that commits
    assert taken_over == portable
    assert taken_over_rows == portable_rows

    fast, fast_rows = await _one_statement(db, scene, now)
    assert fast == portable
    assert fast_rows == portable_rows
