"""A rebuild's offers written set-based (PostgreSQL): one statement for hundreds of offers.

A take-over where agents have free places makes an offer to each of them (a thousand on a busy
floor). Written one by one, each is the portable transaction's statements, ~3 ms apiece on the
reference machine: seconds before the last agent hears of work, and the new leader serves no
command meanwhile. Here they are written in the install transaction by ``store.offers_set_based``
(the same checks, rows and events as the one-statement arrival), one statement per round in which
each agent appears once. The rest of the rebuild's decisions (placements without an offer, agents'
presence) go through their writers in the same transaction. An offer SQL refuses (the agent's load
or a decliner changed since the reads) is left out and its decision repaired after the install.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING

from customers.timeline import InsertedEvent, live_payloads
from routing import store
from routing.engine.events import Event, OfferCreated, Queued
from routing.host import persist, writers
from routing.host.floor import dt
from routing.webhooks import subscription_cache
from switchboard.events import customer_topic

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from routing.host.leader import Leader

ROUND = 500  # offers per statement at most


async def usable(leader: Leader, events: list[Event]) -> bool:
    """Set-based writing applies: PostgreSQL through asyncpg, and no webhook subscriber wants
    these events (their outbox rows commit with each decision: the writers' path)."""
    if not leader.host.one_statement_offers or not any(isinstance(e, OfferCreated) for e in events):
        return False
    kinds = {e.kind for e in events}
    async with leader.host.db.sessionmaker() as session:
        subscriptions = await subscription_cache.active(session)
    return not any(s.wants(kind) for s in subscriptions for kind in kinds)


def _pairs(
    leader: Leader, events: list[Event]
) -> tuple[list[tuple[OfferCreated, Queued | None]], list[Event]]:
    """(the offers with the placement made in the same decision, every other event in order)."""
    offered = {e.interaction_id for e in events if isinstance(e, OfferCreated)}
    queued: dict[str, list[Queued]] = {}
    for e in events:
        if isinstance(e, Queued) and e.interaction_id in offered:
            queued.setdefault(e.interaction_id, []).append(e)
    pairs: list[tuple[OfferCreated, Queued | None]] = []
    paired: set[int] = set()
    for e in events:
        if not isinstance(e, OfferCreated):
            continue
        placed = queued.get(e.interaction_id, [])
        if len(placed) > 1 or (
            placed and leader.floor.queue_id_by_name(placed[0].queue) is None
        ):  # an unusual shape: the writers handle it
            continue
        pairs.append((e, placed[0] if placed else None))
        paired.add(id(e))
        paired.update(id(q) for q in placed)
    return pairs, [e for e in events if id(e) not in paired]


def _rounds(
    pairs: list[tuple[OfferCreated, Queued | None]],
) -> list[list[tuple[OfferCreated, Queued | None]]]:
    """Each agent at most once per round (its load is read once per statement), ROUND at most."""
    rounds: list[list[tuple[OfferCreated, Queued | None]]] = []
    seen: list[set[str]] = []
    for pair in pairs:
        agent = pair[0].agent_id
        for n, agents in enumerate(seen):
            if agent not in agents and len(rounds[n]) < ROUND:
                rounds[n].append(pair)
                agents.add(agent)
                break
        else:
            rounds.append([pair])
            seen.append({agent})
    return rounds


def _wanted(leader: Leader, offered: OfferCreated, placed: Queued | None) -> store.OfferWanted:
    """One offer as ``store.offers_set_based`` takes it."""
    floor = leader.floor
    return store.OfferWanted(
        interaction_id=uuid.UUID(offered.interaction_id),
        agent_id=uuid.UUID(offered.agent_id),
        expires_at=dt(offered.expires_at),
        placement=leader.placement(placed, floor.queue_id_by_name(placed.queue)) if placed else None,
        routed_data=(
            {k: v for k, v in writers.event_dict(placed).items() if k != "interaction_id"} if placed else None
        ),
        queue_name=offered.queue if floor.queue_id_by_name(offered.queue) is not None else None,
    )


Made = list[tuple[store.OfferMade, list[int], list[str]] | None]


async def write_decided(
    leader: Leader, session: AsyncSession, events: list[Event]
) -> tuple[list[writers.Message], list[Event]]:
    """Write a rebuild's decisions in the caller's fenced transaction and commit: (what to publish,
    the events of the offers SQL refused, for the caller to repair)."""
    floor = leader.floor
    decided_at = leader.engine_now()
    now = dt(decided_at)
    pairs, others = _pairs(leader, events)
    persist.begin(session)
    published = await persist.write_decision(leader, session, others, decided_at)
    refused: list[Event] = []
    timeline: list[InsertedEvent] = []
    batches = _rounds(pairs)
    statements: list[asyncio.Task[Made]] = []

    async def write(wanted: list[store.OfferWanted]) -> asyncio.Task[Made]:
        statements.append(
            asyncio.create_task(
                store.offers_set_based(
                    session, partition=leader.host.partition, epoch=leader.lease.epoch, now=now, wanted=wanted
                )
            )
        )
        await asyncio.sleep(0)  # it sends the statement, then this task goes on while it runs
        return statements[-1]

    # The rounds are pipelined, still one statement at a time on the session: the next round's
    # input is built while a statement runs, and a round's results become desktop messages while
    # the next one runs (PostgreSQL and this process on two cores: 1,000 offers written in a
    # median 139 ms instead of 174, four runs each alternately, bench/rebuild.py's shape).
    try:
        writing = await write([_wanted(leader, *pair) for pair in batches[0]]) if batches else None
        for n, batch in enumerate(batches):
            following = [_wanted(leader, *pair) for pair in batches[n + 1]] if n + 1 < len(batches) else None
            assert writing is not None
            made = await writing
            writing = await write(following) if following is not None else None
            for (offered, placed), result in zip(batch, made, strict=True):
                if result is None:
                    refused += [offered] if placed is None else [placed, offered]
                    continue
                offer, event_ids, kinds = result
                floor.remember_offer(offered.offer_id, offer.id)
                published.append(leader.offer_message(offered, offer))
                timeline += [
                    InsertedEvent(i, offer.customer_id, offer.interaction_id, kind)
                    for i, kind in zip(event_ids, kinds, strict=True)
                ]
    finally:
        # Something failed meanwhile (or this task was cancelled): a statement still running ends
        # before the caller rolls back on the same connection.
        for statement in statements:
            with contextlib.suppress(BaseException):
                await statement
    await persist.finish(session)
    published += [(customer_topic(p["customer_id"]), p) for p in live_payloads(timeline)]
    return published, refused
