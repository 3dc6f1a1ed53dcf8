"""What exists only while this process leads: the lease, the floor, and the way decisions reach SQL.

One ``Leader`` is made when the lease is taken and dropped when it is lost; nothing here outlives
a leadership. A rebuild replaces ``floor`` in one assignment, so every command sees either the
previous floor or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from routing import history, store
from routing.engine.events import Escalated, Event, OfferCreated, Queued, Requeued
from routing.engine.hosted import HostedEngine
from routing.host import backoff, offers, persist, repair, writers
from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed
from routing.host.floor import Floor, dt
from routing.host.group import DATABASE_ERRORS, Decision, Group
from routing.host.rebuild import Rebuilt, build_floor, gc_paused, withdraw_live_offers
from routing.lease import Lease
from switchboard import desktop_messages as messages
from switchboard.errors import Conflict
from switchboard.events import FLOOR_TOPIC
from switchboard.gcfreeze import freeze_long_lived
from switchboard.redis import rkey

if TYPE_CHECKING:
    from routing.host.leadership import EngineHost

log = logging.getLogger(__name__)

REBUILD_TRIES = 4  # while leading; taking the lease retries for as long as the lease holds
INSTALL_BATCH = 100  # decisions per transaction when a rebuild's are written (the first with the swap)

SessionAction = Callable[[AsyncSession], Awaitable[list[Event]]]


def stats_key(partition: str = "default") -> str:
    return rkey("routing", partition, "stats")


class Leader:
    def __init__(self, host: EngineHost, lease: Lease, floor: Floor) -> None:
        self.host = host
        self.lease = lease
        self.floor = floor
        self._rebuilding = 0
        self._repairing = False
        self.last_rebuild_ms: float | None = None  # build + install of the floor in use (stats)
        self._figures: object = None  # the queue figures the wallboards were last told of
        self.figures_told_at = 0.0  # time.monotonic() of that notice
        # While open, ``apply`` leaves its decisions here for one transaction (``routing.host.group``).
        self.group: Group | None = None

    @classmethod
    async def take(cls, host: EngineHost, lease: Lease) -> Leader:
        """Lead from a floor rebuilt from SQL (a previous leader's live offers withdrawn). Raises
        if the rebuild fails: then there is no leader, and nothing was written but the fence."""
        rebuilt = await build_floor(host, lease)
        leader = cls(host, lease, rebuilt.floor)
        await leader._install(rebuilt)
        return leader

    @property
    def engine(self) -> HostedEngine:
        return self.floor.engine

    def engine_now(self) -> float:
        """The time of the engine's latest decision: persisted timestamps match its clock."""
        return self.engine.now

    # ------------------------------------------------------------------ rebuild

    async def rebuild(self) -> None:
        """Throw the in-memory state away and rebuild it from SQL (the source of truth), retried
        with back-off. Until one attempt succeeds the previous floor stays in use, whole."""
        if self._rebuilding:
            raise RuntimeError("routing engine: a rebuild is already running")
        self._rebuilding += 1
        try:
            await backoff.retry(self._rebuild_once, tries=REBUILD_TRIES, what="rebuild")
        finally:
            self._rebuilding -= 1

    async def _rebuild_once(self) -> None:
        await self._install(await build_floor(self.host, self.lease))

    async def _install(self, rebuilt: Rebuilt) -> None:
        """Swap the new floor in with ONE transaction: every live offer of the engine it replaces
        (or of a previous leader) that the new floor does not keep withdrawn, and the rebuild's
        decisions written. If that transaction fails, the previous floor is put back and SQL is
        as it was. On PostgreSQL all of them are written there, the offers (one per free agent: a
        thousand after a busy take-over) set-based (``routing.host.offers``); elsewhere the first
        ``INSTALL_BATCH``, the rest following in transactions of that many, each a decision like
        any other (repaired if refused), so the first offers reach the desktops without waiting
        for the last."""
        set_based = await offers.usable(self, rebuilt.decided)
        decided = rebuilt.decided
        first, rest = (decided, []) if set_based else (decided[:INSTALL_BATCH], decided[INSTALL_BATCH:])
        refused: list[Event] = []
        previous, self.floor = self.floor, rebuilt.floor  # the writers record the new floor's offers
        try:
            # The collector stays paused as during the build: the new floor is not frozen yet, and
            # a full pass over it, triggered by the offers' allocations, cost ~110 ms of a take-over
            # that offers to 1,000 agents (bench/rebuild.py, 878-910 ms before, 760-805 after).
            with gc_paused(keep_frozen=self.host.gc_freeze):
                async with self.host.db.sessionmaker() as session, self.sql_verdict("rebuild", session):
                    persist.hold_loaded(session)
                    await store.fence(session, partition=self.host.partition, epoch=self.lease.epoch)
                    withdrawn = await withdraw_live_offers(
                        session, dt(self.engine_now()), "engine_failover", rebuilt.kept
                    )
                    if set_based:
                        published, refused = await offers.write_decided(self, session, first)
                    else:
                        published = await persist.write_events(self, session, first, fenced=True)
        except BaseException:
            self.floor = previous
            raise
        await self.host.publisher.publish_many(persist.publishable(withdrawn + published))
        self.last_rebuild_ms = round((time.perf_counter() - rebuilt.started) * 1000, 1)
        if refused:
            with contextlib.suppress(DecisionRefused):  # SQL moved since the reads: re-read those
                await self.repair(*repair.touched_by(refused))
        for n in range(0, len(rest), INSTALL_BATCH):
            with contextlib.suppress(DecisionRefused):  # repaired from SQL for what it touched
                async with self.host.db.sessionmaker() as session:
                    persist.hold_loaded(session)
                    await self.commit_events(session, rest[n : n + INSTALL_BATCH], context="rebuild")
        if self.host.gc_freeze:
            freeze_long_lived()  # the engine's large, long-lived indexes (and not the one replaced)
        log.info(
            "routing engine: rebuilt in %.0f ms with %d agents and %d waiting (%d offers withdrawn, %d made)",
            self.last_rebuild_ms,
            rebuilt.agents,
            rebuilt.waiting,
            len(withdrawn),
            sum(isinstance(e, OfferCreated) for e in rebuilt.decided),
        )

    # ------------------------------------------------------------------ decisions

    async def apply(
        self, action: Callable[[HostedEngine, float], list[Event]], *, context: str
    ) -> list[Event]:
        """Run an engine action and persist its events: in their own fenced transaction, or, while
        a group is open, with the group's other decisions (written when the group is committed)."""
        if self.group is not None:
            events = action(self.engine, self.host.clock())
            if events:
                self.group.decisions.append(Decision(events, self.engine_now(), context))
            return events

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

    async def apply_after_reading(self, action: SessionAction, *, context: str) -> list[Event]:
        """As ``apply_in_session``; while a group is open, the action reads SQL in a session of
        its own and its decision joins the group (written with the others)."""
        if self.group is None:
            return await self.apply_in_session(action, context=context)
        async with self.host.db.sessionmaker() as session:
            events = await action(session)
            await session.rollback()  # it only read
        if events:
            self.group.decisions.append(Decision(events, self.engine_now(), context))
        return events

    async def commit_events(
        self, session: AsyncSession, events: list[Event], *, context: str, now: float | None = None
    ) -> None:
        """Fence, write every event, commit, then publish. SQL refusing means the engine is wrong
        about what the decision touched: that is repaired from SQL and DecisionRefused raised.
        ``now``: when the engine made the decision (default: its latest decision's time)."""
        async with self.sql_verdict(context, session, touched=events):
            published = await persist.write_events(self, session, events, now=now)
        if published:
            await self.host.publisher.publish_many(persist.publishable(published))

    @contextlib.asynccontextmanager
    async def sql_verdict(
        self, context: str, session: AsyncSession | None = None, *, touched: list[Event] | None = None
    ) -> AsyncIterator[None]:
        """SQL refusing a decision's write: a newer epoch ends this leadership (LostLeadership);
        any other conflict means SQL moved on without the engine (an agent's edit, an adapter
        ending the work): the engine is put right from SQL for what the decision ``touched``
        (``routing.host.repair``), and DecisionRefused raised."""
        try:
            yield
        except store.StaleEngine as exc:
            if session is not None:
                await session.rollback()
            raise LostLeadership(str(exc)) from exc
        except Conflict as exc:
            if session is not None:
                await session.rollback()
            log.info("routing engine: %s conflicted with SQL (%s)", context, exc.detail)
            if touched is None:
                raise  # a rebuild's own install: SQL moved under it; the attempt is retried
            await self.repair(*repair.touched_by(touched))
            raise DecisionRefused(exc.detail) from exc
        except DATABASE_ERRORS as exc:
            # The connection died or SQL failed mid-decision: whether it committed is unknown,
            # so the engine re-reads what the decision touched (SQL knows which it was).
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.rollback()
            log.warning("routing engine: %s failed in SQL (%s)", context, exc.__class__.__name__)
            if touched is None:
                raise
            await self.repair(*repair.touched_by(touched))
            raise DecisionRefused("the database failed; the decision was re-read from it") from exc

    async def repair(self, interactions: set[str], agents: set[str]) -> None:
        """Re-read these from SQL into the engine; a full rebuild only if that repair fails."""
        if self._repairing:
            # The repair's own writes conflicted: SQL keeps moving under us; start from it whole.
            await self.rebuild()
            return
        self._repairing = True
        try:
            await repair.repair(self, interactions, agents)
        except DecisionRefused:
            pass  # the repair conflicted and the floor was rebuilt instead
        except (LostLeadership, RebuildFailed):
            raise
        except Exception:  # noqa: BLE001 - a failed repair falls back to the full rebuild
            log.exception("routing engine: local repair failed; rebuilding")
            await self.rebuild()
        finally:
            self._repairing = False

    # ------------------------------------------------------------------ helpers for the writers

    def count(self, session: AsyncSession, interaction: Any, now: datetime, **inc: float) -> None:
        """Add to the durable interval statistics of the interaction's queue (anything with a
        ``queue_id``). Collected per decision and written with it in one UPSERT before commit."""
        if interaction is None or interaction.queue_id not in self.floor.queue_info:
            return
        name, _ = self.floor.queue_info[interaction.queue_id]
        counters = session.info[writers.BUMPS_KEY].setdefault((name, history.interval_start(now)), {})
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
        return messages.Offer(
            offer_id=str(offer.id),
            interaction_id=event.interaction_id,
            queue=event.queue,
            expires_at=offer.expires_at.isoformat(),
            card=messages.OfferCard(
                channel=offer.channel,
                customer_name=offer.customer_name,
                tier=offer.tier,
                segments=offer.segments,
                topic=offer.topic,
                subject=offer.subject,
                queue=self.floor.queue_display.get(offer.queue_id) if offer.queue_id else None,
                waiting_since=offer.virtual_start_at.isoformat(),
                transferred=offer.transferred,
            ),
        ).to(event.agent_id)

    def _queue_figures(self) -> object:
        """What the wallboards show of each queue and only changes with an event (the longest
        wait grows by itself: the sockets re-read it on their own)."""
        return tuple(
            (name, q.waiting, q.offered, q.accepted, q.rejected, q.missed, q.abandoned, q.completed)
            for name, q in self.engine.stats.queues.items()
        )

    def figures_changed(self) -> bool:
        return self._queue_figures() != self._figures

    async def publish_stats(self) -> None:
        """Real-time figures for wallboards in every process (the engine lives in one); when the
        queues' figures changed, a notice on the floor topic makes every wallboard re-read them."""
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
            "rebuild_ms": self.last_rebuild_ms,
            "queues": queues,
            "agents_by_presence": dict(stats.agents_by_presence),
            "totals": dict(stats.totals),
        }
        await self.host.client.set(stats_key(self.host.partition), json.dumps(snapshot, default=str), ex=30)
        figures = self._queue_figures()
        if figures != self._figures:
            self._figures, self.figures_told_at = figures, time.monotonic()
            await self.host.publisher.publish_many([(FLOOR_TOPIC, {"queues": True})])
