"""What exists only while this process leads: the lease, the floor, and the way decisions reach SQL.

One ``Leader`` is made when the lease is taken and dropped when it is lost; nothing here outlives
a leadership. A rebuild replaces ``floor`` in one assignment, so every command sees either the
previous floor or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from routing import history, store
from routing.engine.events import Escalated, Event, OfferCreated, Queued, Requeued
from routing.engine.hosted import HostedEngine
from routing.host import persist, rebuild
from routing.host.floor import Floor, dt
from routing.lease import Lease
from switchboard import events as bus
from switchboard.errors import Conflict
from switchboard.gcfreeze import freeze_long_lived
from switchboard.redis import rkey

if TYPE_CHECKING:
    from routing.host.leadership import EngineHost

log = logging.getLogger(__name__)

SessionAction = Callable[[AsyncSession], Awaitable[list[Event]]]


class LostLeadership(Exception):
    pass


class DecisionRefused(Exception):
    """SQL refused the engine's decision (it moved on meanwhile); the engine was rebuilt from SQL."""


def stats_key(partition: str = "default") -> str:
    return rkey("routing", partition, "stats")


class Leader:
    def __init__(self, host: EngineHost, lease: Lease, floor: Floor) -> None:
        self.host = host
        self.lease = lease
        self.floor = floor
        self._rebuilding = 0

    @classmethod
    async def take(cls, host: EngineHost, lease: Lease) -> Leader:
        """Lead from a floor rebuilt from SQL (a previous leader's live offers withdrawn)."""
        floor, decided = await rebuild.build_floor(host, lease)
        leader = cls(host, lease, floor)
        await leader._settle(decided)
        return leader

    @property
    def engine(self) -> HostedEngine:
        return self.floor.engine

    def engine_now(self) -> float:
        """The time of the engine's latest decision: persisted timestamps match its clock."""
        return self.engine.now

    # ------------------------------------------------------------------ rebuild

    async def rebuild(self) -> None:
        """Throw the in-memory state away and rebuild it from SQL (the source of truth)."""
        if self._rebuilding > 2:
            # Rebuilt state keeps conflicting with SQL: back off (the run loop sleeps and retries).
            raise RuntimeError("routing engine state keeps conflicting with SQL")
        self._rebuilding += 1
        try:
            floor, decided = await rebuild.build_floor(self.host, self.lease)
            self.floor = floor
            await self._settle(decided)
        finally:
            self._rebuilding -= 1

    async def _settle(self, decided: list[Event]) -> None:
        """Rebuilding matches too: those offers must reach SQL."""
        if self.host.gc_freeze:
            freeze_long_lived()  # the engine's large, long-lived indexes (and not the one replaced)
        if decided:
            with contextlib.suppress(DecisionRefused):
                async with self.host.db.sessionmaker() as session:
                    await self.commit_events(session, decided, context="rebuild")

    # ------------------------------------------------------------------ decisions

    async def apply(
        self, action: Callable[[HostedEngine, float], list[Event]], *, context: str
    ) -> list[Event]:
        async def run(session: AsyncSession) -> list[Event]:
            return action(self.engine, self.host.clock())

        return await self.apply_in_session(run, context=context)

    async def apply_in_session(self, action: SessionAction, *, context: str) -> list[Event]:
        """Run an engine action and persist its events in one fenced SQL transaction."""
        async with self.host.db.sessionmaker() as session:
            persist.hold_loaded(session)
            events = await action(session)
            if events:
                await self.commit_events(session, events, context=context)
        return events

    async def commit_events(self, session: AsyncSession, events: list[Event], *, context: str) -> None:
        """Fence, write every event, commit, then publish. SQL refusing means the engine is wrong:
        it is rebuilt from SQL and DecisionRefused raised."""
        async with self.sql_verdict(context, session):
            published = await persist.write_events(self, session, events)
        if published:
            await self.host.publisher.publish_many(published)

    @contextlib.asynccontextmanager
    async def sql_verdict(self, context: str, session: AsyncSession | None = None) -> AsyncIterator[None]:
        """SQL refusing a decision's write: a newer epoch ends this leadership (LostLeadership);
        any other conflict means SQL moved on without the engine (an adapter abandoned the work, a
        supervisor overrode it): the engine is rebuilt from SQL and DecisionRefused raised."""
        try:
            yield
        except store.StaleEngine as exc:
            if session is not None:
                await session.rollback()
            raise LostLeadership(str(exc)) from exc
        except Conflict as exc:
            if session is not None:
                await session.rollback()
            log.info("routing engine: %s conflicted with SQL (%s); rebuilding", context, exc.detail)
            await self.rebuild()
            raise DecisionRefused(exc.detail) from exc

    # ------------------------------------------------------------------ helpers for the writers

    def count(self, session: AsyncSession, interaction: Any, now: datetime, **inc: float) -> None:
        """Add to the durable interval statistics of the interaction's queue (anything with a
        ``queue_id``). Collected per decision and written with it in one UPSERT before commit."""
        if interaction is None or interaction.queue_id not in self.floor.queue_info:
            return
        name, _ = self.floor.queue_info[interaction.queue_id]
        counters = session.info[persist.BUMPS_KEY].setdefault((name, history.interval_start(now)), {})
        for counter, amount in inc.items():
            counters[counter] = counters.get(counter, 0) + amount

    def placement(self, event: Queued | Escalated | Requeued, queue_id: uuid.UUID | None) -> dict[str, Any]:
        """The columns the engine's placement writes; None keeps a column as it is (a requeue keeps
        its priority; work placed explicitly has no rule-set version)."""
        values: dict[str, Any] = {"queue_id": queue_id, "priority": None, "rule_set_version": None}
        if isinstance(event, Queued | Escalated):
            values["priority"] = event.priority
        if isinstance(event, Queued) and event.filter_name is not None:
            # The version that routed it: its pinned one after a rebuild, the live one otherwise.
            values["rule_set_version"] = (
                self.engine.routed_version(event.interaction_id) or self.engine.rule_set_version
            )
        return values

    def offer_message(self, event: OfferCreated, offer: store.OfferMade) -> tuple[str, dict[str, Any]]:
        """The offer for the agent's desktops: everything its card shows (no socket queries)."""
        return (
            bus.agent_topic(event.agent_id),
            {
                "type": "offer",
                "offer_id": str(offer.id),
                "interaction_id": event.interaction_id,
                "queue": event.queue,
                "expires_at": offer.expires_at.isoformat(),
                "card": {
                    "channel": offer.channel,
                    "customer_name": offer.customer_name,
                    "tier": offer.tier,
                    "segments": offer.segments,
                    "topic": offer.topic,
                    "subject": offer.subject,
                    "queue": self.floor.queue_display.get(offer.queue_id) if offer.queue_id else None,
                    "waiting_since": offer.virtual_start_at.isoformat(),
                },
            },
        )

    async def publish_stats(self) -> None:
        """Real-time figures for wallboards in every process (the engine lives in one)."""
        now = self.host.clock()
        stats = self.engine.stats
        queues = {
            name: {
                "waiting": q.waiting,
                "longest_wait_seconds": round(self.engine.longest_wait(name, now), 1),
                "offered": q.offered,
                "accepted": q.accepted,
                "rejected": q.rejected,
                "missed": q.missed,
                "abandoned": q.abandoned,
                "completed": q.completed,
                "service_level": q.service_level(),
                "average_handle_seconds": q.average_handle_seconds(),
            }
            for name, q in sorted(stats.queues.items())
            if name
        }
        snapshot = {
            "at": dt(now).isoformat(),
            "epoch": self.lease.epoch,
            "queues": queues,
            "agents_by_presence": dict(stats.agents_by_presence),
            "totals": dict(stats.totals),
        }
        await self.host.client.set(stats_key(self.host.partition), json.dumps(snapshot, default=str), ex=30)
