"""The engine host: runs the in-memory matching engine in whichever process holds the lease.

Every app process starts one host. The lease holder ("leader"):

1. rebuilds the engine from SQL (queues, live rule set, agents, assigned work, queued work with
   its place in line and who declined it), rescinding any offer a previous leader left live —
   the interaction keeps its place, so nothing is orphaned;
2. reads commands from the partition's Redis Stream in order, applies each to the engine and
   writes the resulting decisions to SQL in ONE fenced transaction (``routing.store``), then
   publishes them to the desktops and answers the caller;
3. ticks the clock (offer expiry, rule-step escalation) and reconciles with SQL every few seconds
   so a queued interaction whose command was lost (API process died after commit) is still routed.

If a write conflicts with SQL (someone else moved the interaction), the engine is rebuilt from SQL:
SQL is the truth, the engine only a fast index over it. If the lease is lost or SQL reports a
newer epoch, the host stops writing at once and stands by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import bindparam, func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.states import State
from interactions.timeline import InsertedEvent, append_event, event_row, insert_events, live_payloads
from routing import commands, heartbeats, history, store
from routing.context import context_for, routing_snapshot, routing_snapshot_on
from routing.engine.events import (
    Abandoned,
    AgentStatusChanged,
    Assigned,
    CommandRejected,
    Completed,
    Diverted,
    Escalated,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    OfferRescinded,
    Queued,
    Requeued,
    Transferred,
    WrapUpStarted,
)
from routing.engine.hosted import DEFAULT_CONSULT_WAIT_SECONDS, ConsultEnded, HostedEngine
from routing.engine.state import EngineConfig, QueueConfig
from routing.lease import Lease, LeaseManager
from routing.models import (
    Agent,
    Offer,
    OfferState,
    Presence,
    Queue,
    QueueMember,
    RoutingPartition,
    RuleSetVersion,
)
from routing.rules import RuleSet
from routing.service import get_version, live_rule_set
from routing.transfer import end_consult_in_sql, transfer_in_sql
from routing.webhooks import enqueue_webhook_deliveries, event_payload, subscription_cache
from switchboard import events as bus
from switchboard.db import Database
from switchboard.errors import Conflict
from switchboard.events import customer_topic
from switchboard.fastsql import FastStatement, held_connection
from switchboard.gcfreeze import freeze_long_lived

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def stats_key(partition: str = "default") -> str:
    return f"sb:routing:{partition}:stats"


class LostLeadership(Exception):
    pass


class DecisionRefused(Exception):
    """SQL refused the engine's decision (it moved on meanwhile); the engine was rebuilt from SQL."""


class EngineHost:
    def __init__(
        self,
        db: Database,
        client: aioredis.Redis,
        *,
        partition: str = "default",
        lease_ttl_ms: int = 3000,
        tick_seconds: float = 0.25,
        reconcile_seconds: float = 2.0,
        clock: Clock = time.time,
        engine_config: EngineConfig | None = None,
        consult_wait_seconds: float = DEFAULT_CONSULT_WAIT_SECONDS,
        desktop_grace_seconds: float | None = 15.0,
        gc_freeze: bool = False,
    ) -> None:
        self.gc_freeze = gc_freeze
        # None: never set agents offline for a vanished desktop (see routing.heartbeats).
        self.desktop_grace_seconds = desktop_grace_seconds
        self.engine_config = engine_config
        self.consult_wait_seconds = consult_wait_seconds
        # Rule-set versions waiting work is pinned to, parsed once per rebuild (None: unusable).
        self._pinned: dict[int, RuleSet | None] = {}
        self.db = db
        self.client = client
        # Decisions' messages to the desktops, written without waiting for Redis's replies.
        self.publisher = bus.StreamingPublisher(client)
        self.partition = partition
        self.leases = LeaseManager(client, partition=partition, ttl_ms=lease_ttl_ms)
        self.tick_seconds = tick_seconds
        self.reconcile_seconds = reconcile_seconds
        self.clock = clock
        self.engine: HostedEngine | None = None
        self.lease: Lease | None = None
        # Engine offer ids are per-engine counters; SQL offer ids are UUIDs that outlive engines.
        self._sql_offer: dict[str, uuid.UUID] = {}
        self._engine_offer: dict[uuid.UUID, str] = {}
        self._diverted: set[str] = set()
        self._rebuilding = 0
        self._queue_info: dict[uuid.UUID, tuple[str, float]] = {}  # id -> (name, SL threshold s)
        self._queue_display: dict[uuid.UUID, str] = {}  # id -> display name (offer cards)
        self._stopping = asyncio.Event()
        self.is_leader = asyncio.Event()
        # PostgreSQL through asyncpg: arrivals write their offer in one statement (see
        # _enqueue_in_autocommit); elsewhere every decision is one portable transaction.
        self._one_statement_offers = db.engine.dialect.driver == "asyncpg"

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Stand by until the lease is free, lead until it is lost; repeat until stopped."""
        while not self._stopping.is_set():
            try:
                lease = await self._try_lead()
                if lease is None:
                    await self._sleep(self.leases.ttl_ms / 3000)
                    continue
                await self._lead(lease)
            except LostLeadership as exc:
                log.warning("routing engine: leadership lost (%s); standing by", exc)
            except (aioredis.ConnectionError, OSError) as exc:
                log.warning("routing engine: Redis unavailable (%s); retrying", exc)
                await self._sleep(1.0)
            except Exception:  # noqa: BLE001 - the host must survive any single failure
                log.exception("routing engine: unexpected failure; restarting the loop")
                await self._sleep(1.0)
            finally:
                self.is_leader.clear()
                self.engine = None
        if self.lease is not None:
            await self.leases.release()
        await self.publisher.aclose()

    async def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _try_lead(self) -> Lease | None:
        async with self.db.sessionmaker() as session:
            row = await session.get(RoutingPartition, self.partition)
            min_epoch = row.epoch if row else 0
        return await self.leases.try_acquire(min_epoch=min_epoch)

    async def _lead(self, lease: Lease) -> None:
        self.lease = lease
        log.info("routing engine: leading partition %s with epoch %d", self.partition, lease.epoch)
        lost = asyncio.Event()
        # Renew from its own task: a long rebuild or a slow SQL wait must not let the lease lapse.
        renewer = asyncio.create_task(self._keep_lease(lost), name="engine-lease")
        try:
            await self.rebuild()
            self.is_leader.set()
            await self._serve(lost)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _keep_lease(self, lost: asyncio.Event) -> None:
        interval = self.leases.ttl_ms / 3000
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.leases.renew():
                    break  # someone else holds it now
                last_ok = time.monotonic()
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                # Redis blip: we may still hold it, until the TTL says otherwise.
                if time.monotonic() - last_ok > self.leases.ttl_ms / 1000:
                    break
        lost.set()

    async def _serve(self, lost: asyncio.Event) -> None:
        cursor = await self.client.get(commands.cursor_key(self.partition)) or "0-0"
        last_reconcile = last_stats = time.monotonic()
        while not self._stopping.is_set():
            if lost.is_set():
                raise LostLeadership("lease lapsed")
            now_mono = time.monotonic()
            if now_mono - last_reconcile >= self.reconcile_seconds:
                with contextlib.suppress(DecisionRefused):  # already rebuilt from SQL
                    await self.reconcile()
                await self.reconcile_desktops()
                last_reconcile = now_mono
            if now_mono - last_stats >= 1.0:
                await self.publish_stats()
                last_stats = now_mono
            block_ms = max(1, int(self.tick_seconds * 1000))
            batch = await self.client.xread(
                {commands.stream_key(self.partition): cursor}, count=100, block=block_ms
            )
            for _stream, entries in batch or []:
                try:
                    for entry_id, fields in entries:
                        await self._handle(json.loads(fields["c"]))
                        cursor = entry_id
                finally:
                    # Once per batch, not per command: commands are idempotent against SQL, so
                    # re-reading a few after a crash is harmless; a round trip per command is not.
                    await self.client.set(commands.cursor_key(self.partition), cursor)
            with contextlib.suppress(DecisionRefused):
                await self._apply(lambda e, now: e.tick(now), context="tick")

    # ------------------------------------------------------------------ rebuild from SQL

    async def rebuild(self) -> None:
        """Throw the in-memory state away and rebuild it from SQL (the source of truth)."""
        assert self.lease is not None
        if self._rebuilding > 2:
            # Rebuilt state keeps conflicting with SQL: back off (the run loop sleeps and retries).
            raise RuntimeError("routing engine state keeps conflicting with SQL")
        self._rebuilding += 1
        try:
            await self._rebuild()
        finally:
            self._rebuilding -= 1

    def engine_now(self) -> float:
        """The time of the engine's latest decision: persisted timestamps match its clock."""
        return self.engine.now if self.engine is not None else self.clock()

    async def _rebuild(self) -> None:
        now = self.clock()
        self._sql_offer.clear()
        self._engine_offer.clear()
        self._pinned.clear()
        async with self.db.sessionmaker() as session:
            await store.fence(session, partition=self.partition, epoch=self.lease.epoch)
            # Offers a previous leader left live: withdraw them; the interaction keeps its place.
            live = (await session.scalars(select(Offer).where(Offer.state == OfferState.LIVE))).all()
            for offer in live:
                await store.close_offer(
                    session,
                    partition=self.partition,
                    epoch=self.lease.epoch,
                    offer_id=offer.id,
                    outcome=OfferState.RESCINDED,
                    now=_dt(now),
                    reason="engine_failover",
                )
            await session.commit()
            if live:
                await self.publisher.publish_many(
                    [
                        (
                            bus.agent_topic(offer.agent_id),
                            {"type": "offer_closed", "offer_id": str(offer.id), "reason": "engine_failover"},
                        )
                        for offer in live
                    ]
                )

            queues = (await session.scalars(select(Queue))).all()
            self._remember_queues(queues)
            engine = HostedEngine(
                [_queue_config(q) for q in queues],
                rule_set=await live_rule_set(session, partition=self.partition),
                now=now,
                config=self.engine_config,
                consult_wait_seconds=self.consult_wait_seconds,
            )
            members: dict[uuid.UUID, set[str]] = {}
            for queue_id, agent_id in (
                await session.execute(select(QueueMember.queue_id, QueueMember.agent_id))
            ).all():
                members.setdefault(agent_id, set()).add(self._queue_info[queue_id][0])
            agents = (await session.scalars(select(Agent))).all()
            decided: list[Event] = []  # rebuilding matches too: those offers must reach SQL
            for agent in agents:
                decided += engine.add_agent(
                    now, **self._agent_fields(agent, queues, members.get(agent.id, set()))
                )

            # Work agents hold now: it keeps their capacity until wrap-up completes.
            held = (
                await session.scalars(
                    select(Interaction).where(Interaction.state.in_((State.CONNECTED, State.WRAP_UP)))
                )
            ).all()
            for it in held:
                if it.agent_id is not None:
                    decided += self._restore_held(engine, it, now)

            self.engine = engine
            # Waiting work, oldest place first, so equal keys resolve as before.
            waiting = (
                await session.scalars(
                    select(Interaction)
                    .where(Interaction.state == State.QUEUED)
                    .order_by(Interaction.virtual_start_at, Interaction.id)
                )
            ).all()
            for it in waiting:
                if (it.attributes or {}).get("routing_diverted"):
                    self._diverted.add(str(it.id))
                    continue
                decided += await self._enqueue_from_sql(session, it, now)
        log.info("routing engine: rebuilt with %d agents and %d waiting", len(agents), len(waiting))
        if self.gc_freeze:
            freeze_long_lived()  # the engine's large, long-lived indexes (and not the one replaced)
        if decided:
            with contextlib.suppress(DecisionRefused):
                async with self.db.sessionmaker() as session:
                    await self._commit_events(session, decided, context="rebuild")

    def _agent_fields(self, agent: Agent, queues: list[Queue], explicit: set[str]) -> dict[str, Any]:
        skills = agent.skill_levels()
        # Skill-based membership: an agent serves a queue when it holds all the queue's skills.
        by_skill = {
            q.name
            for q in queues
            if q.required_skills and all(skills.get(s, 0) >= lvl for s, lvl in q.required_skills.items())
        }
        return {
            "agent_id": str(agent.id),
            "skills": skills,
            "languages": tuple(agent.languages or ()),
            "teams": tuple(agent.teams or ()),
            "capacity_units": agent.capacity_units,
            "channel_max": dict(agent.channel_max or {}),
            "presence": agent.presence,
            "queues": tuple(sorted(explicit | by_skill)),
        }

    def _queue_id_by_name(self, name: str) -> uuid.UUID | None:
        for queue_id, (queue_name, _) in self._queue_info.items():
            if queue_name == name:
                return queue_id
        return None

    def _remember_queues(self, queues: list[Queue] | Any) -> None:
        self._queue_info = {q.id: (q.name, float(q.sl_threshold_seconds)) for q in queues}
        self._queue_display = {q.id: q.display_name for q in queues}

    def _count(self, session: AsyncSession, interaction: Any, now: datetime, **inc: float) -> None:
        """Add to the durable interval statistics of the interaction's queue (anything with a
        ``queue_id``). Collected per decision and written with it in one UPSERT before commit."""
        if interaction is None or interaction.queue_id not in self._queue_info:
            return
        name, _ = self._queue_info[interaction.queue_id]
        counters = session.info[BUMPS_KEY].setdefault((name, history.interval_start(now)), {})
        for counter, amount in inc.items():
            counters[counter] = counters.get(counter, 0) + amount

    def _within_sl(self, interaction: Interaction, now: datetime) -> tuple[float, bool]:
        wait = max(0.0, (now - interaction.virtual_start_at).total_seconds())
        threshold = self._queue_info.get(interaction.queue_id, ("", 20.0))[1]
        return wait, wait <= threshold

    async def _sync_queues(self, session: AsyncSession) -> list[Queue]:
        """Queues created since the engine was built join it (supervisors add queues live)."""
        assert self.engine is not None
        queues = list((await session.scalars(select(Queue))).all())
        self._remember_queues(queues)
        for queue in queues:
            if not self.engine.has_queue(queue.name):
                self.engine.add_queue(_queue_config(queue))
        return queues

    async def _enqueue_from_sql(
        self, session: AsyncSession, it: Any, now: float, context: dict[str, Any] | None = None
    ) -> list[Event]:
        """Route waiting work: ``it`` is an Interaction or a row with its attributes (see
        ``routing_snapshot``, which also gives ``context``)."""
        assert self.engine is not None
        if it.queue_id is not None and it.queue_id not in self._queue_info:
            await self._sync_queues(session)  # created since the last sync (the reconcile pass syncs too)
        # Every offer moves the interaction to "offered" and so bumps its version: a queued
        # interaction still at version <= 2 (created, queued) was never offered, so nobody declined it.
        declined = (
            {str(a) for a in await store.declined_agent_ids(session, it.id)} if it.version > 2 else set()
        )
        transfer = (it.attributes or {}).get("transfer") or {}
        if transfer.get("consult") == "pending" and it.parent_id is not None:
            return await self._restore_consult(session, it, transfer, now)
        # A queue chosen at creation (rule_set_version still unset) is explicit; otherwise the rules
        # route it again from its age, so escalation steps resume where they were — by the version
        # that routed it (only the supervisor's explicit re-evaluation moves it to the live one).
        explicit_queue = None
        pinned = None
        if it.queue_id is not None and it.rule_set_version is None:
            explicit_queue = self._queue_info[it.queue_id][0]
        elif it.rule_set_version is not None and it.rule_set_version != self.engine.rule_set_version:
            pinned = await self._pinned_version(session, it.rule_set_version)
        return self.engine.enqueue(
            now,
            str(it.id),
            it.channel.value,
            queue=explicit_queue,
            priority=it.priority,
            virtual_start=it.virtual_start_at.timestamp(),
            required_skills=it.required_skills or None,
            context=context if context is not None else await context_for(session, it),
            declined=declined,
            rule_set_version=pinned,
        )

    async def _pinned_version(self, session: AsyncSession, version: int) -> int | None:
        """Load (once per rebuild) the rule-set version waiting work is pinned to into the engine.
        None when it cannot be used (deleted, or routes to a queue that is gone): the live one routes."""
        assert self.engine is not None
        if self.engine.knows_rule_set(version):
            return version
        if version not in self._pinned:
            rule_set: RuleSet | None = None
            row = await session.scalar(
                select(RuleSetVersion).where(
                    RuleSetVersion.partition == self.partition, RuleSetVersion.version == version
                )
            )
            if row is not None:
                try:
                    rule_set = RuleSet.model_validate({**row.body, "version": row.version})
                    self.engine.add_rule_set(rule_set)
                except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                    log.warning("routing engine: pinned rule set %d unusable (%s); using live", version, exc)
                    rule_set = None
            self._pinned[version] = rule_set
        return version if self._pinned[version] is not None else None

    async def _restore_consult(
        self, session: AsyncSession, child: Interaction, transfer: dict[str, Any], now: float
    ) -> list[Event]:
        """A warm transfer still waiting for its target (after a take-over or a rebuild): offer it
        again while the sender keeps the parent; if the parent is no longer theirs, cancel it."""
        assert self.engine is not None
        sender = str(transfer.get("from_agent_id"))
        to_agent = transfer.get("to_agent_id")
        queue = (await session.get(Queue, child.queue_id)).name if child.queue_id else None
        try:
            if queue is None:
                raise ValueError("the consult has no queue")
            return self.engine.start_consult(
                now,
                str(child.parent_id),
                str(child.id),
                child.channel.value,
                sender=sender,
                queue=queue,
                priority=child.priority,
                virtual_start=child.virtual_start_at.timestamp(),
                required_skills=child.required_skills or None,
                to_agent=to_agent,  # an agent who is gone cannot take it: the consult is cancelled
                context=await context_for(session, child),
                deadline=child.created_at.timestamp() + self.consult_wait_seconds,
            )
        except ValueError as exc:
            log.info("routing engine: consult %s cannot resume (%s); cancelling it", child.id, exc)
            return [ConsultEnded(str(child.parent_id), str(child.id), sender, "parent_ended")]

    # ------------------------------------------------------------------ commands

    async def _handle(self, command: dict[str, Any]) -> None:
        kind = command.get("type")
        log.debug("routing engine: command %s", command)
        request_id = command.get("request_id", "")
        try:
            if kind == "enqueue":
                await self._cmd_enqueue(command["interaction_id"])
                result: dict[str, Any] = {"ok": True}
            elif kind == "adopt":
                await self._cmd_adopt(command["interaction_id"])
                result = {"ok": True}
            elif kind == "agent_changed":
                await self._cmd_agent_changed(command["agent_id"])
                result = {"ok": True}
            elif kind in ("accept", "reject"):
                result = await self._cmd_offer(kind, uuid.UUID(command["offer_id"]), command["agent_id"])
            elif kind in ("wrap_up", "complete", "abandon"):
                result = await self._cmd_work(kind, command["interaction_id"], command.get("agent_id"))
            elif kind == "transfer":
                result = await self._cmd_transfer(command)
            elif kind == "cancel_consult":
                result = await self._cmd_cancel_consult(command["interaction_id"], command["agent_id"])
            elif kind == "preview_rules":
                result = await self._cmd_preview_rules(int(command["version"]))
            elif kind == "reevaluate":
                events = await self._apply(lambda e, now: e.reevaluate_waiting(now), context="reevaluate")
                result = {"ok": True, "moved": sum(isinstance(e, Queued) for e in events)}
            elif kind == "explain":
                result = await self._cmd_explain(command)
            elif kind == "rule_set_published":
                # New arrivals use the new version; waiting work stays pinned to the one that routed it.
                async with self.db.sessionmaker() as session:
                    await self._sync_queues(session)  # a new version may use a queue added since
                    rule_set = await live_rule_set(session, partition=self.partition)
                if rule_set is not None:
                    self.engine.set_rule_set(rule_set)
                result = {"ok": True}
            else:
                result = {"ok": False, "reason": f"unknown command {kind!r}"}
        except (KeyError, ValueError) as exc:
            result = {"ok": False, "reason": f"malformed command: {exc}"}
        except LostLeadership:
            raise
        except DecisionRefused as exc:
            result = {"ok": False, "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one bad command must not wedge the stream
            log.exception("routing engine: command %s failed", kind)
            result = {"ok": False, "reason": f"internal error: {type(exc).__name__}"}
        if command.get("reply"):
            await commands.reply(self.client, request_id, result)

    async def _cmd_transfer(self, command: dict[str, Any]) -> dict[str, Any]:
        """Transfer to a queue or a named agent, the note travelling with it, in one transaction.

        Blind: the parent ends now and the child is queued. Warm: a consult — the sender keeps the
        parent until the child is accepted (see ``routing.engine.hosted``)."""
        assert self.engine is not None
        parent_id, agent_id = command["interaction_id"], command["agent_id"]
        mode = command.get("mode", "blind")
        if mode not in ("blind", "warm"):
            return {"ok": False, "reason": f"unknown transfer mode {mode!r}"}
        if self.engine.holder_of(parent_id) != agent_id or self.engine.in_wrap_up(parent_id):
            return {"ok": False, "reason": "only the connected agent can transfer this interaction"}
        if self.engine.consult_child(parent_id) is not None:
            return {"ok": False, "reason": "a warm transfer is already in progress; cancel it first"}
        to_agent = command.get("to_agent_id")
        if to_agent is not None and not self.engine.has_agent(to_agent):
            return {"ok": False, "reason": "unknown agent"}
        if to_agent == agent_id:
            return {"ok": False, "reason": "cannot transfer to yourself"}
        child_id: list[str] = []

        async def hand_over(session: AsyncSession) -> list[Event]:
            now = self.clock()
            parent = await session.get(Interaction, uuid.UUID(parent_id), populate_existing=True)
            to_queue_id = None
            if command.get("to_queue"):
                to_queue_id = await session.scalar(select(Queue.id).where(Queue.name == command["to_queue"]))
                if to_queue_id is None:
                    raise ValueError(f"unknown queue {command['to_queue']!r}")
            child = await transfer_in_sql(
                session,
                parent=parent,
                from_agent_id=uuid.UUID(agent_id),
                to_queue_id=to_queue_id,
                to_agent_id=uuid.UUID(to_agent) if to_agent else None,
                mode=mode,
                note=command.get("note"),
                now=_dt(now),
            )
            child_id.append(str(child.id))
            queue_name = command.get("to_queue") or (
                (await session.get(Queue, child.queue_id)).name if child.queue_id else None
            )
            if mode == "warm":
                # The sender stays connected (capacity held) until the target accepts the child.
                return self.engine.start_consult(
                    now,
                    parent_id,
                    str(child.id),
                    child.channel.value,
                    sender=agent_id,
                    queue=queue_name,
                    priority=child.priority,
                    virtual_start=child.virtual_start_at.timestamp(),
                    required_skills=child.required_skills or None,
                    to_agent=to_agent,
                    context=await context_for(session, child),
                )
            events = self.engine.end_leg_for_transfer(now, parent_id)
            # To a named agent: only them for a minute, then anyone in the queue.
            events += self.engine.enqueue(
                now,
                str(child.id),
                child.channel.value,
                queue=queue_name,
                priority=child.priority,
                virtual_start=child.virtual_start_at.timestamp(),
                required_skills=child.required_skills or None,
                preferred_agent=to_agent,
                preferred_until=now + 60 if to_agent else None,
                preferred_required=bool(to_agent),
                context=await context_for(session, child),
                declined={agent_id},
            )
            return events

        await self._apply_in_session(hand_over, context=f"transfer {parent_id}")
        return {
            "ok": True,
            "child_interaction_id": child_id[0] if child_id else None,
            "consult": "pending" if mode == "warm" else None,
        }

    async def _cmd_cancel_consult(self, parent_id: str, agent_id: str) -> dict[str, Any]:
        """The sender withdraws a warm transfer: the child is cancelled, the customer stays."""
        assert self.engine is not None
        return _outcome(
            await self._apply(lambda e, now: e.cancel_consult(now, parent_id, agent_id), context="cancel")
        )

    async def _cmd_preview_rules(self, version: int) -> dict[str, Any]:
        """What publishing ``version`` and re-evaluating would move, against the live waiting work."""
        assert self.engine is not None
        async with self.db.sessionmaker() as session:
            row = await get_version(session, version=version, partition=self.partition)
            await self._sync_queues(session)
        rule_set = RuleSet.model_validate({**row.body, "version": row.version})
        return {"ok": True, "moves": self.engine.preview_rule_set(rule_set, self.clock())}

    async def _cmd_explain(self, command: dict[str, Any]) -> dict[str, Any]:
        """Dry-run against the live engine: filter, step, queue, priority and ranked agents."""
        assert self.engine is not None
        context = dict(command.get("context") or {})
        interaction_id = command.get("interaction_id")
        if interaction_id:
            async with self.db.sessionmaker() as session:
                it = await session.get(Interaction, uuid.UUID(interaction_id))
                if it is None:
                    return {"ok": False, "reason": "unknown interaction"}
                context = {**await context_for(session, it), **context}
        try:
            return {"ok": True, "explanation": self.engine.explain(context, self.clock())}
        except ValueError as exc:
            return {"ok": False, "reason": str(exc)}

    async def publish_stats(self) -> None:
        """Real-time figures for wallboards in every process (the engine lives in one)."""
        assert self.engine is not None
        now = self.clock()
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
            "at": _dt(now).isoformat(),
            "epoch": self.lease.epoch if self.lease else None,
            "queues": queues,
            "agents_by_presence": dict(stats.agents_by_presence),
            "totals": dict(stats.totals),
        }
        await self.client.set(stats_key(self.partition), json.dumps(snapshot, default=str), ex=30)

    async def _cmd_enqueue(self, interaction_id: str) -> None:
        assert self.engine is not None
        if self.engine.knows(interaction_id):
            return  # a repeated command (re-read after a crash) changes nothing
        if self._one_statement_offers:
            await self._enqueue_in_autocommit(interaction_id)
            return

        async def enqueue(session: AsyncSession) -> list[Event]:
            snapshot = await routing_snapshot(session, uuid.UUID(interaction_id))
            if snapshot is None or snapshot[0].state is not State.QUEUED:
                return []
            return await self._enqueue_from_sql(session, snapshot[0], self.clock(), context=snapshot[1])

        await self._apply_in_session(enqueue, context=f"enqueue {interaction_id}")

    async def _enqueue_in_autocommit(self, interaction_id: str) -> None:
        """The arrival hot path on PostgreSQL: one read, the decision, one write statement.

        Both run in autocommit: the read is a snapshot and the write re-checks in SQL everything
        the decision relied on (state still queued, capacity, decliners, the fence), exactly as
        the portable transaction does. A decision of another shape (no agent free: just placed;
        webhook subscribers wanting these events) is persisted the portable way.
        """
        assert self.engine is not None
        events: list[Event] = []
        # The session is for the rare reads of unusual work (a queue added since, decliners, a
        # pinned rule set, a consult); it opens a connection only if one of them asks.
        async with self.db.sessionmaker() as session, held_connection(self.db.engine) as driver:
            snapshot = await routing_snapshot_on(driver, self.db.engine.dialect, uuid.UUID(interaction_id))
            if snapshot is None or snapshot[0].state is not State.QUEUED:
                return
            it, context = snapshot
            events = await self._enqueue_from_sql(session, it, self.clock(), context=context)
            if await self._offer_in_one_statement(session, driver, it, events):
                return
        if events:
            async with self.db.sessionmaker() as session:
                hold_loaded(session)
                await self._commit_events(session, events, context=f"enqueue {interaction_id}")

    async def _offer_in_one_statement(
        self, session: AsyncSession, driver: Any, it: Any, events: list[Event]
    ) -> bool:
        """Persist [Queued?, OfferCreated] for ``it`` with ``store.offer_in_one_statement``;
        False (nothing written) when the decision has another shape."""
        assert self.lease is not None
        *placed, offered = events if events else [None]
        if (
            not isinstance(offered, OfferCreated)
            or offered.interaction_id != str(it.id)
            or len(placed) > 1
            or (placed and not (isinstance(placed[0], Queued) and placed[0].interaction_id == str(it.id)))
        ):
            return False
        if any(s.wants(e.kind) for s in await subscription_cache.active(session) for e in events):
            return False  # the webhook outbox commits with the decision: the portable transaction
        now = _dt(self.engine_now())
        placement = routed = None
        queue_name = offered.queue
        if placed:
            queued = placed[0]
            placement = self._placement(queued, self._queue_id_by_name(queued.queue))
            if placement["queue_id"] is None:
                return False  # a queue the host has not seen yet: the portable path looks it up
            routed = {k: v for k, v in _event_dict(queued).items() if k != "interaction_id"}
        async with self._sql_verdict(f"offer for {it.id}"):
            offer, event_ids = await store.offer_in_one_statement(
                driver,
                partition=self.partition,
                epoch=self.lease.epoch,
                interaction_id=it.id,
                channel=it.channel.value,
                agent_id=uuid.UUID(offered.agent_id),
                now=now,
                ttl=_dt(offered.expires_at) - now,
                placement=placement,
                routed_data=routed,
                queue_name=queue_name if self._queue_id_by_name(queue_name) is not None else None,
            )
        self._sql_offer[offered.offer_id] = offer.id
        self._engine_offer[offer.id] = offered.offer_id
        kinds = (["routed"] if placed else []) + ["state_changed", "offer_created"]
        timeline = live_payloads(
            [
                InsertedEvent(i, offer.customer_id, it.id, kind)
                for i, kind in zip(event_ids, kinds, strict=True)
            ]
        )
        await self.publisher.publish_many(
            [self._offer_message(offered, offer), *((customer_topic(p["customer_id"]), p) for p in timeline)]
        )
        return True

    def _restore_held(self, engine: HostedEngine, it: Interaction, now: float) -> list[Event]:
        """Work an agent holds in SQL (connected or wrap-up) takes their capacity in the engine."""
        assert it.agent_id is not None
        queue = self._queue_info.get(it.queue_id) if it.queue_id else None
        return engine.restore_assignment(
            now,
            str(it.id),
            it.channel.value,
            agent_id=str(it.agent_id),
            queue=queue[0] if queue else None,
            wrap_up=it.state is State.WRAP_UP,
            virtual_start=it.virtual_start_at.timestamp(),
            assigned_at=(it.connected_at or it.updated_at).timestamp(),
        )

    async def _cmd_adopt(self, interaction_id: str) -> None:
        """Work an agent holds that routing never offered (an agent's own outbound call): the
        engine counts it against their capacity, and wrap-up/complete go through as for any other."""
        assert self.engine is not None
        if self.engine.knows(interaction_id):
            return

        async def adopt(session: AsyncSession) -> list[Event]:
            assert self.engine is not None
            it = await session.get(Interaction, uuid.UUID(interaction_id), populate_existing=True)
            if (
                it is None
                or it.agent_id is None
                or it.state not in (State.CONNECTED, State.WRAP_UP)
                or not self.engine.has_agent(str(it.agent_id))
            ):
                return []
            adopted.append(str(it.agent_id))
            return self._restore_held(self.engine, it, self.clock())

        adopted: list[str] = []
        await self._apply_in_session(adopt, context=f"adopt {interaction_id}")
        for agent_id in adopted:
            # The agent's desktop opens the tab as for routed work (after the commit).
            await self.publisher.publish_many(
                [(bus.agent_topic(agent_id), {"type": "assigned", "interaction_id": interaction_id})]
            )

    async def _cmd_agent_changed(self, agent_id: str) -> None:
        assert self.engine is not None

        async def change(session: AsyncSession) -> list[Event]:
            agent = await session.get(Agent, uuid.UUID(agent_id), populate_existing=True)
            if agent is None:
                return []
            now = self.clock()
            queues = await self._sync_queues(session)
            member_of = await session.scalars(
                select(QueueMember.queue_id).where(QueueMember.agent_id == agent.id)
            )
            explicit = {self._queue_info[queue_id][0] for queue_id in member_of}
            fields = self._agent_fields(agent, queues, explicit)
            fields.pop("agent_id")
            presence, reason = fields.pop("presence"), agent.presence_reason
            events = (
                self.engine.update_agent(now, agent_id, **fields)
                if self.engine.has_agent(agent_id)
                else self.engine.add_agent(now, agent_id, **fields)
            )
            return events + self.engine.set_presence(now, agent_id, presence, reason)

        await self._apply_in_session(change, context=f"agent {agent_id}")

    async def _cmd_offer(self, kind: str, sql_offer_id: uuid.UUID, agent_id: str) -> dict[str, Any]:
        engine_offer = self._engine_offer.get(sql_offer_id)
        if engine_offer is None:
            return {"ok": False, "reason": "the offer is no longer live"}
        method = self.engine.accept if kind == "accept" else self.engine.reject
        return _outcome(await self._apply(lambda e, now: method(now, engine_offer, agent_id), context=kind))

    async def _cmd_work(self, kind: str, interaction_id: str, agent_id: str | None) -> dict[str, Any]:
        assert self.engine is not None
        holder = self.engine.holder_of(interaction_id)
        if kind != "abandon" and (agent_id is None or holder != agent_id):
            return {"ok": False, "reason": "the interaction is not held by this agent"}
        if kind == "complete" and not self.engine.in_wrap_up(interaction_id):
            # Capacity is released only after wrap-up (disposition, notes): never straight from a call.
            return {"ok": False, "reason": "wrap up the interaction before completing it"}
        method = {
            "wrap_up": self.engine.wrap_up,
            "complete": self.engine.complete,
            "abandon": self.engine.abandon,
        }[kind]
        return _outcome(await self._apply(lambda e, now: method(now, interaction_id), context=kind))

    # ------------------------------------------------------------------ persistence

    async def _apply(
        self, action: Callable[[HostedEngine, float], list[Event]], *, context: str
    ) -> list[Event]:
        async def run(session: AsyncSession) -> list[Event]:
            assert self.engine is not None
            return action(self.engine, self.clock())

        return await self._apply_in_session(run, context=context)

    async def _apply_in_session(self, action, *, context: str) -> list[Event]:
        """Run an engine action and persist its events in one fenced SQL transaction."""
        async with self.db.sessionmaker() as session:
            hold_loaded(session)
            events = await action(session)
            if events:
                await self._commit_events(session, events, context=context)
        return events

    async def _commit_events(self, session: AsyncSession, events: list[Event], *, context: str) -> None:
        """Fence, write every event, commit, then publish. SQL refusing means the engine is wrong:
        it is rebuilt from SQL and DecisionRefused raised."""
        assert self.lease is not None
        published: list[tuple[str, dict[str, Any]]] = []
        # Timeline rows and interval counters of the lean writes, written once before commit.
        rows: list[dict[str, Any]] = []
        session.info[EVENT_ROWS_KEY], session.info[BUMPS_KEY] = rows, {}
        async with self._sql_verdict(context, session):
            await store.fence(session, partition=self.partition, epoch=self.lease.epoch)
            for event in events:
                engine_offer = getattr(event, "offer_id", None)
                sql_offer = (
                    self._sql_offer.get(engine_offer) if engine_offer else None
                )  # _persist may forget it
                if not isinstance(event, LEAN_EVENTS) and rows:
                    # ORM writes append their own events: keep the timeline in decision order.
                    await insert_events(session, rows)
                    rows.clear()
                published += await self._persist(session, event)
                payload = event_payload(event, occurred_at=_dt(self.engine_now()))
                if engine_offer is not None:
                    # Receivers get the durable offer id (the engine's counter restarts with each leader).
                    payload["offer_id"] = str(sql_offer or self._sql_offer.get(engine_offer) or "") or None
                # Outbox: the webhook deliveries commit (or roll back) with the decision itself.
                await enqueue_webhook_deliveries(session, event_type=event.kind, payload=payload)
            await insert_events(session, rows)
            await history.bump_many(session, session.info[BUMPS_KEY])
            await session.commit()
        if published:
            await self.publisher.publish_many(published)

    @contextlib.asynccontextmanager
    async def _sql_verdict(self, context: str, session: AsyncSession | None = None) -> AsyncIterator[None]:
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

    def _placement(self, event: Queued | Escalated | Requeued, queue_id: uuid.UUID | None) -> dict[str, Any]:
        """The columns the engine's placement writes; None keeps a column as it is (a requeue keeps
        its priority; work placed explicitly has no rule-set version)."""
        values: dict[str, Any] = {"queue_id": queue_id, "priority": None, "rule_set_version": None}
        if isinstance(event, Queued | Escalated):
            values["priority"] = event.priority
        if isinstance(event, Queued) and event.filter_name is not None and self.engine is not None:
            # The version that routed it: its pinned one after a rebuild, the live one otherwise.
            values["rule_set_version"] = (
                self.engine.routed_version(event.interaction_id) or self.engine.rule_set_version
            )
        return values

    def _offer_message(self, event: OfferCreated, offer: store.OfferMade) -> tuple[str, dict[str, Any]]:
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
                    "queue": self._queue_display.get(offer.queue_id),
                    "waiting_since": offer.virtual_start_at.isoformat(),
                },
            },
        )

    async def _persist(self, session: AsyncSession, event: Event) -> list[tuple[str, dict[str, Any]]]:
        """Write one engine event to SQL; returns what to publish once the transaction commits."""
        assert self.lease is not None
        epoch, partition, now = self.lease.epoch, self.partition, _dt(self.engine_now())
        if isinstance(event, OfferCreated):
            # SQL expiry is the engine's, to the microsecond: both judge "expired" alike.
            offer = await store.create_offer(
                session,
                partition=partition,
                epoch=epoch,
                interaction_id=uuid.UUID(event.interaction_id),
                agent_id=uuid.UUID(event.agent_id),
                now=now,
                ttl=_dt(event.expires_at) - now,
                fenced=True,  # _commit_events fenced this transaction
                events=session.info[EVENT_ROWS_KEY],  # one INSERT with the decision's other events
            )
            self._sql_offer[event.offer_id] = offer.id
            self._engine_offer[offer.id] = event.offer_id
            self._count(session, offer, now, offered=1)
            return [self._offer_message(event, offer)]
        if isinstance(event, Assigned):
            sql_id = self._sql_offer.pop(event.offer_id)
            self._engine_offer.pop(sql_id, None)
            await store.accept_offer(
                session,
                partition=partition,
                epoch=epoch,
                offer_id=sql_id,
                agent_id=uuid.UUID(event.agent_id),
                now=now,
            )
            accepted = await session.get(Interaction, uuid.UUID(event.interaction_id))
            wait, in_sl = self._within_sl(accepted, now)
            self._count(
                session, accepted, now, accepted=1, answered_within_sl=int(in_sl), answer_wait_seconds=wait
            )
            return [
                (
                    bus.agent_topic(event.agent_id),
                    {"type": "assigned", "interaction_id": event.interaction_id},
                )
            ]
        if isinstance(event, OfferRejected | OfferExpired | OfferRescinded):
            sql_id = self._sql_offer.pop(event.offer_id, None)
            if sql_id is None:
                return []
            self._engine_offer.pop(sql_id, None)
            outcome = {
                OfferRejected: OfferState.REJECTED,
                OfferExpired: OfferState.EXPIRED,
                OfferRescinded: OfferState.RESCINDED,
            }[type(event)]
            reason = getattr(event, "reason", outcome.value)
            # Abandoned work is ended by the Abandoned event; transferred work is re-placed by the engine.
            await store.close_offer(
                session,
                partition=partition,
                epoch=epoch,
                offer_id=sql_id,
                outcome=outcome,
                now=now,
                reason=reason,
                requeue=reason != "abandoned",
            )
            if outcome is not OfferState.RESCINDED:
                counter = "rejected" if outcome is OfferState.REJECTED else "missed"
                closed = await session.get(Interaction, uuid.UUID(event.interaction_id))
                self._count(session, closed, now, **{counter: 1})
            return [
                (
                    bus.agent_topic(event.agent_id),
                    {"type": "offer_closed", "offer_id": str(sql_id), "reason": reason},
                )
            ]
        if isinstance(event, Queued | Escalated | Requeued):
            queue_name = event.queue if isinstance(event, Queued | Requeued) else event.to_queue
            queue_id = self._queue_id_by_name(queue_name)
            if queue_id is None:  # a queue the host has not seen yet
                queue_id = await session.scalar(select(Queue.id).where(Queue.name == queue_name))
            values = {"interaction_id": uuid.UUID(event.interaction_id), **self._placement(event, queue_id)}
            placed = await _PLACE.first(session, values)
            if placed is not None and not isinstance(event, Requeued):
                session.info[EVENT_ROWS_KEY].append(
                    event_row(
                        customer_id=placed.customer_id,
                        interaction_id=uuid.UUID(event.interaction_id),
                        kind="routed" if isinstance(event, Queued) else "escalated",
                        channel=placed.channel.value,
                        actor_type=ActorType.SYSTEM,
                        actor_id="routing",
                        data={k: v for k, v in _event_dict(event).items() if k != "interaction_id"},
                        at=now,
                    )
                )
            return []
        if isinstance(event, AgentStatusChanged):
            await session.execute(
                update(Agent)
                .where(Agent.id == uuid.UUID(event.agent_id))
                .values(presence=Presence(event.presence), presence_reason=event.reason, presence_since=now)
            )
            return [(bus.agent_topic(event.agent_id), {"type": "presence", **_event_dict(event)})]
        if isinstance(event, WrapUpStarted | Completed | Abandoned):
            target = {WrapUpStarted: State.WRAP_UP, Completed: State.COMPLETED, Abandoned: State.ABANDONED}[
                type(event)
            ]
            current = await session.get(Interaction, uuid.UUID(event.interaction_id), populate_existing=True)
            if isinstance(event, Completed) and current is not None:
                handled = (now - (current.connected_at or now)).total_seconds()
                self._count(session, current, now, completed=1, handle_seconds=max(0.0, handled))
            elif isinstance(event, Abandoned) and current is not None:
                _, in_sl = self._within_sl(current, now)
                self._count(session, current, now, abandoned=1, abandoned_within_sl=int(in_sl))
            if current is not None and current.state is not target:
                await interactions_service.transition(
                    session,
                    interaction_id=current.id,
                    to_state=target,
                    actor_type=ActorType.SYSTEM,
                    actor_id="routing",
                    reason=event.kind,
                    now=now,
                )
            agent = getattr(event, "agent_id", None)
            return (
                [(bus.agent_topic(agent), {"type": event.kind, "interaction_id": event.interaction_id})]
                if agent
                else []
            )
        if isinstance(event, Diverted):
            self._diverted.add(event.interaction_id)
            interaction = await session.get(Interaction, uuid.UUID(event.interaction_id))
            interaction.attributes = {**(interaction.attributes or {}), "routing_diverted": event.action}
            append_event(
                session,
                customer_id=interaction.customer_id,
                interaction_id=interaction.id,
                kind="diverted",
                channel=interaction.channel.value,
                actor_type=ActorType.SYSTEM,
                actor_id="routing",
                data={"action": event.action},
                at=now,
            )
            return []
        if isinstance(event, ConsultEnded):
            return await end_consult_in_sql(
                session,
                parent_id=uuid.UUID(event.parent_id),
                child_id=uuid.UUID(event.child_id),
                from_agent_id=uuid.UUID(event.from_agent),
                outcome=event.outcome,
                to_agent_id=uuid.UUID(event.to_agent) if event.to_agent else None,
                now=now,
            )
        if isinstance(event, Transferred):
            self._count(
                session, await session.get(Interaction, uuid.UUID(event.interaction_id)), now, transferred=1
            )
            return []
        if isinstance(event, CommandRejected):
            return []
        return []

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self) -> None:
        """Route queued work the engine never heard of; drop work SQL has ended without telling us."""
        assert self.engine is not None
        async with self.db.sessionmaker() as session:
            # Queues a supervisor added: arrivals sync only for a queue id they do not know.
            await self._sync_queues(session)
            rows = await _WAITING.rows(session, {})
        missing = [
            str(i)
            for i, state in rows
            if state is State.QUEUED and not self.engine.knows(str(i)) and str(i) not in self._diverted
        ]
        for interaction_id in missing:
            log.info("routing engine: reconcile found unrouted interaction %s", interaction_id)
            await self._cmd_enqueue(interaction_id)
        async with self.db.sessionmaker() as session:
            held = await _HELD.rows(session, {})
            unknown_held = [str(i) for (i,) in held if not self.engine.knows(str(i))]
        for interaction_id in unknown_held:
            # Held without routing (an agent's own call) and no adopt command seen: count it now.
            await self._cmd_adopt(interaction_id)
        waiting_in_sql = {str(i) for i, _ in rows}
        vanished = [i for i in self.engine.live_ids() if i not in waiting_in_sql]
        if vanished:
            # Abandoned/failed by an adapter or a supervisor: SQL is right; start from it again.
            log.info(
                "routing engine: %d waiting interactions ended outside routing; rebuilding", len(vanished)
            )
            await self.rebuild()

    async def reconcile_desktops(self) -> list[str]:
        """Agents whose desktop vanished on every process: off "available", offers rescinded.

        Returns the agents set offline. An agent on break or training without live offers keeps
        that status; one already offline is left alone.
        """
        if self.desktop_grace_seconds is None or self.engine is None:
            return []
        claimed = await heartbeats.claim_vanished(self.client, grace_seconds=self.desktop_grace_seconds)
        gone: list[str] = []
        for n, agent_id in enumerate(claimed):
            if not self.engine.has_agent(agent_id):
                continue

            async def drop(session: AsyncSession, agent_id: str = agent_id) -> list[Event]:
                agent = await session.get(Agent, uuid.UUID(agent_id), populate_existing=True)
                if agent is None or agent.presence is Presence.OFFLINE:
                    return []
                has_offers = await session.scalar(
                    select(Offer.id)
                    .where(Offer.agent_id == agent.id, Offer.state == OfferState.LIVE)
                    .limit(1)
                )
                if agent.presence is not Presence.AVAILABLE and has_offers is None:
                    return []
                # Offline rescinds every live offer (engine rule); the status change is the
                # presence event (SQL, the agent's topic, webhooks) with reason "desktop_lost".
                return self.engine.set_presence(self.clock(), agent_id, Presence.OFFLINE, "desktop_lost")

            try:
                events = await self._apply_in_session(drop, context=f"desktop lost {agent_id}")
            except DecisionRefused:
                # Rebuilt from SQL meanwhile: claim this agent again on the next pass.
                await heartbeats.restore(self.client, [agent_id], at=0.0)
                events = []
            except BaseException:
                # Not handled: put the rest back so the next pass (or the next leader) retries.
                await heartbeats.restore(self.client, claimed[n:], at=0.0)
                raise
            if events:
                log.info("routing engine: agent %s lost every desktop; set offline", agent_id)
                gone.append(agent_id)
        return gone


def _place_statement() -> Any:
    """Where the engine placed waiting work (queue, priority, routing version), built once."""
    it = Interaction.__table__.c
    return (
        update(Interaction.__table__)
        .where(it.id == bindparam("interaction_id"))
        .values(
            queue_id=bindparam("queue_id"),
            priority=func.coalesce(bindparam("priority", type_=it.priority.type), it.priority),
            rule_set_version=func.coalesce(
                bindparam("rule_set_version", type_=it.rule_set_version.type), it.rule_set_version
            ),
        )
        .returning(it.customer_id, it.channel)
    )


_PLACE = FastStatement(_place_statement())
# The reconcile pass's two reads: work routing should know of, waiting and held by agents.
_WAITING = FastStatement(
    select(Interaction.id, Interaction.state).where(Interaction.state.in_((State.QUEUED, State.OFFERED)))
)
_HELD = FastStatement(
    select(Interaction.id).where(
        Interaction.state.in_((State.CONNECTED, State.WRAP_UP)), Interaction.agent_id.is_not(None)
    )
)

# Events whose writes are SQLAlchemy Core collecting their timeline rows (see _commit_events).
LEAN_EVENTS = (OfferCreated, Queued, Escalated, Requeued)
EVENT_ROWS_KEY = "sb_routing_event_rows"
BUMPS_KEY = "sb_routing_bumps"


def hold_loaded(session: AsyncSession) -> None:
    """Keep every row this session loads alive until the session ends.

    The identity map holds clean rows only weakly: a row read early in a decision (the
    interaction, its customer, the queues) was collected before the next step asked for it again,
    and each ``session.get`` became another SELECT (measured: 7 extra per offer).
    """
    session.info["held"] = []


@sa_event.listens_for(Session, "loaded_as_persistent")
def _hold(session: Session, instance: object) -> None:
    held = session.info.get("held")
    if held is not None:
        held.append(instance)


def _outcome(events: list[Event]) -> dict[str, Any]:
    """The reply for a command: refused if the engine said so, otherwise done."""
    for event in events:
        if isinstance(event, CommandRejected):
            return {"ok": False, "reason": event.reason}
    return {"ok": True}


def _queue_config(queue: Queue) -> QueueConfig:
    return QueueConfig(
        name=queue.name,
        strategy=queue.strategy,
        sl_threshold_seconds=float(queue.sl_threshold_seconds),
        rank_skills=tuple(sorted(queue.required_skills or {})),
    )


def _event_dict(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}
