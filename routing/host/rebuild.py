"""Rebuilding the floor from SQL, and putting one piece of SQL work into the engine.

SQL is the truth, the engine only a fast index over it: a new leader (or one told to) builds a
fresh floor from queues, the live rule set, agents, the work agents hold, and the waiting work
with its place in line, who declined it and the offer a previous leader left live. The reads are
set-based — one query per table, however much work waits — and write nothing: the floor is built
off to the side, and the leader installs it in ONE transaction. A live offer the new floor may
keep (the agent still available with room for it) stays as it is, times and id, so a take-over
does not take work back from the desktops nor refuse an accept already on its way; the others are
withdrawn in that transaction (their interactions keep their place). A build or install that
fails leaves the previous floor, or none.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import event_row, insert_events
from interactions.models import ActorType, Interaction
from interactions.service import transition_data
from interactions.states import State
from routing import store
from routing.context import waiting_snapshots
from routing.engine.events import Event, Queued
from routing.engine.hosted import HostedEngine
from routing.engine.state import LiveOffer
from routing.host.floor import AGENT_COLUMNS, Floor, agent_fields, queue_config
from routing.host.placing import held_work, pinned_rule_set, place_waiting
from routing.lease import Lease
from routing.models import Offer, OfferState, RuleSetVersion
from routing.service import live_rule_set
from switchboard import desktop_messages as messages
from workforce.models import AgentSkill, Queue, QueueMember

if TYPE_CHECKING:
    from routing.host.leadership import EngineHost

log = logging.getLogger(__name__)

WAITING = (State.QUEUED, State.OFFERED)
HELD = (State.CONNECTED, State.WRAP_UP)
# What held_work (placing) reads of held work (rows, not ORM objects: a rebuild reads thousands).
HELD_COLUMNS = (
    "id",
    "channel",
    "agent_id",
    "queue_id",
    "state",
    "virtual_start_at",
    "connected_at",
    "updated_at",
)


@dataclass
class Rebuilt:
    """A floor built off to the side, with what installing it must write."""

    floor: Floor
    decided: list[Event] = field(default_factory=list)  # rebuilding matches too: offers to persist
    kept: set[uuid.UUID] = field(default_factory=set)  # live offers in SQL the new floor keeps
    agents: int = 0
    waiting: int = 0
    started: float = field(default_factory=time.perf_counter)  # for the log: how long it took


async def build_floor(host: EngineHost, lease: Lease) -> Rebuilt:
    """Read SQL (one query per table) and build a new floor; nothing is written but the fence."""
    started = time.perf_counter()
    with gc_paused(keep_frozen=host.gc_freeze):
        rebuilt = await _build_floor(host, lease)
    rebuilt.started = started
    return rebuilt


@contextlib.contextmanager
def gc_paused(*, keep_frozen: bool) -> Iterator[None]:
    """A rebuild allocates a large, long-lived structure in one go: the cyclic GC's passes over the
    growing heap meanwhile cost as much as the rebuild itself (measured: half of it, 2,000 waiting
    and 1,000 agents). On the way out what was allocated meanwhile skips the young generations:
    ``gc.freeze`` moves it aside in O(1) (and ``gc.unfreeze`` puts it in the oldest generation,
    unless the host keeps long-lived objects frozen, ``switchboard.gcfreeze``). Re-enabling the
    collector with all of it still young made the next allocation walk it: ~20 % of a take-over
    (py-spy, bench/rebuild.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if not keep_frozen:
            gc.unfreeze()
        if enabled:
            gc.enable()


async def _build_floor(host: EngineHost, lease: Lease) -> Rebuilt:
    async with host.db.sessionmaker() as session:
        # The fence first, committed: a previous leader still writing is refused from now on.
        await store.fence(session, partition=host.partition, epoch=lease.epoch)
        await session.commit()
        queues = (await session.scalars(select(Queue))).all()
        rule_set = await live_rule_set(session, partition=host.partition)
        membership = (await session.execute(select(QueueMember.queue_id, QueueMember.agent_id))).all()
        agents = (await session.execute(select(*AGENT_COLUMNS))).all()
        skills: dict[uuid.UUID, dict[str, int]] = {}
        for agent_id, skill, level in await session.execute(
            select(AgentSkill.agent_id, AgentSkill.skill_name, AgentSkill.proficiency)
        ):
            skills.setdefault(agent_id, {})[skill] = level
        held = (
            await session.execute(
                select(*(Interaction.__table__.c[name] for name in HELD_COLUMNS)).where(
                    Interaction.state.in_(HELD), Interaction.agent_id.is_not(None)
                )
            )
        ).all()
        # Waiting work (a previous leader's offers included: they are withdrawn on install), with
        # its rule context, oldest place first so equal keys resolve as before.
        waiting = await waiting_snapshots(session)
        declined: dict[uuid.UUID, set[str]] = {}
        for interaction_id, agent_id in (
            await session.execute(
                select(Offer.interaction_id, Offer.agent_id)
                .join(Interaction, Interaction.id == Offer.interaction_id)
                .where(
                    Offer.state.in_((OfferState.REJECTED, OfferState.EXPIRED)), Interaction.state.in_(WAITING)
                )
            )
        ).all():
            declined.setdefault(interaction_id, set()).add(str(agent_id))
        live_offers = {
            row.interaction_id: row
            for row in await session.execute(
                select(
                    Offer.id, Offer.interaction_id, Offer.agent_id, Offer.created_at, Offer.expires_at
                ).where(Offer.state == OfferState.LIVE)
            )
        }
        live_version = rule_set.version if rule_set is not None else None
        wanted = {it.rule_set_version for it, _ in waiting} - {None, live_version}
        pinned_rows = (
            (
                await session.scalars(
                    select(RuleSetVersion).where(
                        RuleSetVersion.partition == host.partition, RuleSetVersion.version.in_(wanted)
                    )
                )
            ).all()
            if wanted
            else []
        )

    # From here on, memory only: the engine built off to the side.
    clock = _monotonic(host.clock)
    engine = HostedEngine(
        [queue_config(q) for q in queues],
        rule_set=rule_set,
        now=clock(),
        config=host.engine_config,
        consult_wait_seconds=host.consult_wait_seconds,
    )
    floor = Floor(engine)
    floor.remember_queues(queues)
    for version in wanted:
        floor.pinned[version] = None  # deleted: the live version routes it
    for row in pinned_rows:
        floor.pinned[row.version] = pinned_rule_set(engine, row)
    members: dict[uuid.UUID, set[str]] = {}
    for queue_id, agent_id in membership:
        members.setdefault(agent_id, set()).add(floor.queue_info[queue_id][0])
    rebuilt = Rebuilt(floor, agents=len(agents), waiting=len(waiting))
    for agent in agents:
        rebuilt.decided += engine.add_agent(
            clock(), **agent_fields(agent, queues, members.get(agent.id, set()), skills.get(agent.id, {}))
        )
    # Work agents hold now: it keeps their capacity until wrap-up completes.
    rebuilt.decided += engine.restore_assignments(clock(), [held_work(floor, it) for it in held])

    # Work with a live offer goes first, so its offer is kept before older work that nobody holds
    # an offer for could take the agent (it then waits for the next free agent, as it did).
    def live_offer_of(it: Any) -> Any:
        return live_offers.get(it.id) if it.state is State.OFFERED else None

    for it, context in sorted(waiting, key=lambda pair: live_offer_of(pair[0]) is None):  # stable
        if (it.attributes or {}).get("routing_diverted"):
            floor.diverted.add(str(it.id))
            continue
        # Offers are made now, as each interaction is placed: they carry the time they were made.
        live = live_offer_of(it)
        offered = _live_offer(floor, it, live) if live is not None else None
        placed = place_waiting(floor, it, clock(), context, declined.get(it.id, set()), host, offered)
        rebuilt.decided += [e for e in placed if not _already_in_sql(floor, it, e)]
        kept = engine.kept_offer(str(it.id)) if offered is not None else None
        if kept is not None:
            assert live is not None
            floor.remember_offer(kept, live.id)
            rebuilt.kept.add(live.id)
    return rebuilt


def _live_offer(floor: Floor, it: Any, live: Any) -> LiveOffer | None:
    queue = floor.queue_name(it.queue_id)
    if queue is None:
        return None
    return LiveOffer(str(live.agent_id), queue, live.created_at.timestamp(), live.expires_at.timestamp())


def _already_in_sql(floor: Floor, it: Any, event: Event) -> bool:
    """Work placed again where SQL already has it (queue, priority, rule-set version): writing
    that would be a statement and a "routed" timeline event per waiting interaction, for nothing."""
    return (
        isinstance(event, Queued)
        and event.interaction_id == str(it.id)
        and event.priority == it.priority
        and floor.queue_id_by_name(event.queue) == it.queue_id
        and (
            event.filter_name is None
            or floor.engine.routed_version(event.interaction_id) == it.rule_set_version
        )
    )


async def withdraw_live_offers(
    session: AsyncSession, now: datetime, reason: str, kept: set[uuid.UUID] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Rescind every live offer (a previous engine's) but the ``kept`` ones, set-based: one UPDATE
    of the offers, one of their interactions (back to queued at their place, as
    ``store.close_offer`` does one by one) and one INSERT of their timeline events. The caller's
    transaction is fenced."""
    offers = cast(Table, Offer.__table__)  # declared as FromClause; a Table to update()
    live = offers.c.state == OfferState.LIVE
    closed = (
        await session.execute(
            update(offers)
            .where(live & offers.c.id.not_in(kept) if kept else live)
            .values(state=OfferState.RESCINDED, decided_at=now, reason=reason)
            .returning(offers.c.id, offers.c.agent_id, offers.c.interaction_id)
        )
    ).all()
    if not closed:
        return []
    it = Interaction.__table__.c
    requeued = (
        await session.execute(
            update(cast(Table, Interaction.__table__))
            .where(it.id.in_([row.interaction_id for row in closed]), it.state == State.OFFERED)
            .values(state=State.QUEUED, agent_id=None, version=it.version + 1, updated_at=now, queued_at=now)
            .returning(it.id, it.customer_id, it.channel, it.version)
        )
    ).all()
    changes = {"agent_id": None}
    await insert_events(
        session,
        [
            event_row(
                customer_id=row.customer_id,
                interaction_id=row.id,
                kind="state_changed",
                channel=row.channel.value,
                actor_type=ActorType.SYSTEM,
                actor_id="routing",
                data=transition_data(
                    State.OFFERED, State.QUEUED, f"offer rescinded: {reason}", row.version, changes, None
                ),
                at=now,
            )
            for row in requeued
        ],
    )
    return [messages.OfferClosed(offer_id=str(row.id), reason=reason).to(row.agent_id) for row in closed]


def _monotonic(clock: Callable[[], float]) -> Callable[[], float]:
    """The host's clock, never going backwards (the engine refuses time that does)."""
    last = clock()

    def now() -> float:
        nonlocal last
        last = max(last, clock())
        return last

    return now
