"""The engine host: runs the in-memory matching engine in whichever process holds the lease.

Every app process starts one host. The lease holder ("leader"):

1. rebuilds the engine from SQL (``routing.host.rebuild``), keeping the offers a previous leader
   left live while their agents may still have them and rescinding the rest — the interaction
   keeps its place, so nothing is orphaned;
2. reads commands from the partition's Redis Streams in order, agents' clicks first
   (``routing.host.lanes``, ``switchboard.commands``), applies each
   to the engine (``routing.host.dispatch``) and writes the resulting decisions to SQL in fenced
   transactions (``routing.host.persist``): the decisions of the accepts, rejects, wrap-ups and
   completes of one read share ONE (``routing.host.group``), each keeping its own outcome; then
   publishes them to the desktops and answers the callers;
3. ticks the clock (offer expiry, rule-step escalation) and reconciles with SQL every few seconds
   (``routing.host.reconcile``) so a queued interaction whose command was lost is still routed.

If a write conflicts with SQL, what the decision touched is re-read from SQL
(``routing.host.repair``): SQL is the truth, the engine only a fast index over it. If the lease
is lost or SQL reports a newer epoch, the host stops writing at once and stands by. Everything
that exists only while leading is one ``Leader``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from routing.engine.hosted import DEFAULT_CONSULT_WAIT_SECONDS, HostedEngine
from routing.engine.state import EngineConfig
from routing.host import backoff, dispatch, persist, reconcile
from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed
from routing.host.group import Group
from routing.host.lanes import CommandLanes
from routing.host.leader import DATABASE_ERRORS, Leader
from routing.lease import Lease, LeaseManager
from routing.models import RoutingPartition
from switchboard import events as bus
from switchboard.db import Database
from switchboard.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# How often, at most, the wallboards are told that the queues' figures changed (a notice makes
# every wallboard of every process re-read them): often enough for a change to show within a
# second, rarely enough that a burst of arrivals is one notice.
FIGURES_NOTICE_SECONDS = 0.25

Clock = Callable[[], float]

# How long an offer stays live past its expiry for an accept or reject the API received in time
# but the engine has not processed yet (``EngineConfig.answer_grace_seconds``). The urgent lane
# brings such answers within one command, so this only covers the last round trips.
ANSWER_GRACE_SECONDS = 1.0


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
        # Answers on their way keep an offer live a little past its expiry (judged by receipt).
        self.engine_config = engine_config or EngineConfig(answer_grace_seconds=ANSWER_GRACE_SECONDS)
        self.consult_wait_seconds = consult_wait_seconds
        self.db = db
        persist.keep_loaded_rows(db.session_class)  # decisions re-read rows without re-selecting
        self.client = client
        # Decisions' messages to the desktops, written without waiting for Redis's replies.
        self.publisher = bus.StreamingPublisher(client)
        self.partition = partition
        self.leases = LeaseManager(client, partition=partition, ttl_ms=lease_ttl_ms)
        self.tick_seconds = tick_seconds
        self.reconcile_seconds = reconcile_seconds
        self.clock = clock
        self.leader: Leader | None = None  # only while this process leads
        self._led = False
        # Where the serve loop is, for a health check or a test's failure message to say.
        self.phase = "starting"
        self._stopping = asyncio.Event()
        self.is_leader = asyncio.Event()
        # PostgreSQL through asyncpg: arrivals write their offer in one statement (see
        # routing.host.arrivals); elsewhere every decision is one portable transaction.
        self.one_statement_offers = db.engine.dialect.driver == "asyncpg"

    @property
    def engine(self) -> HostedEngine | None:
        return self.leader.engine if self.leader is not None else None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Stand by until the lease is free, lead until it is lost; repeat until stopped."""
        while not self._stopping.is_set():
            try:
                self.phase = "trying the lease"
                lease = await self._try_lead()
                if lease is None:
                    self.phase = "standing by"
                    await self._sleep(await self._standby_wait())
                    continue
                await self._lead(lease)
            except LostLeadership as exc:
                log.warning("routing engine: leadership lost (%s); standing by", exc)
            except RebuildFailed as exc:
                # The floor cannot be trusted: this leadership ends, and so does the lease, at once,
                # so a standby need not wait for it to lapse (nor this host, after the pause).
                log.warning("routing engine: %s; leadership ends", exc)
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await self.leases.release()
                self.phase = "waiting after a failed rebuild"
                await self._sleep(1.0)
            except (aioredis.ConnectionError, OSError) as exc:
                log.warning("routing engine: Redis unavailable (%s); retrying", exc)
                self.phase = f"waiting after {exc.__class__.__name__}"
                await self._sleep(1.0)
            except Exception as exc:  # noqa: BLE001 - the host must survive any single failure
                log.exception("routing engine: unexpected failure; restarting the loop")
                self.phase = f"waiting after {exc.__class__.__name__}"
                await self._sleep(1.0)
            finally:
                self.is_leader.clear()
                self.leader = None
        self.phase = "stopped"
        if self._led:
            await self.leases.release()  # a no-op unless we still hold it
        await self.publisher.aclose()

    async def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _standby_wait(self) -> float:
        """How long a standby sleeps before trying again: several times per TTL, and no later than
        just after the holder's lease would lapse, so a dead leader's lease is taken at once."""
        poll = self.leases.ttl_ms / 10000
        lapses_in = await self.leases.lapses_in()
        return poll if lapses_in is None else min(poll, lapses_in + 0.002)

    async def _try_lead(self) -> Lease | None:
        async with self.db.sessionmaker() as session:
            row = await session.get(RoutingPartition, self.partition)
            min_epoch = row.epoch if row else 0
        return await self.leases.try_acquire(min_epoch=min_epoch)

    async def take_lead(self, lease: Lease, lost: asyncio.Event | None = None) -> Leader:
        """Become leader with ``lease``: the floor rebuilt from SQL. A failed rebuild (SQL down, a
        connection killed) is retried with back-off for as long as the lease holds (``lost``
        unset); without ``lost``, once. Meanwhile there is no leader: commands wait in the stream."""
        log.info("routing engine: leading partition %s with epoch %d", self.partition, lease.epoch)
        self._led = True

        async def attempt() -> Leader:
            return await Leader.take(self, lease)

        def keep_going() -> bool:
            return not self._stopping.is_set() and not (lost is not None and lost.is_set())

        self.leader = await backoff.retry(
            attempt, tries=None if lost is not None else 1, what="take-over rebuild", keep_going=keep_going
        )
        return self.leader

    async def _lead(self, lease: Lease) -> None:
        lost = asyncio.Event()
        # Renew from its own task: a long rebuild or a slow SQL wait must not let the lease lapse.
        renewer = asyncio.create_task(self._keep_lease(lost), name="engine-lease")
        try:
            self.phase = f"taking the lead (epoch {lease.epoch})"
            leader = await self.take_lead(lease, lost)
            self.is_leader.set()
            self.phase = f"leading (epoch {lease.epoch})"
            await self._serve(leader, lost)
        finally:
            await cancel_and_wait(renewer)

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

    async def _serve(self, leader: Leader, lost: asyncio.Event) -> None:
        lanes = CommandLanes(self.client, self.partition)
        await lanes.load()
        last_reconcile = last_stats = time.monotonic()
        group = Group()  # the decisions of one read, written together (flushed by every batch)
        while not self._stopping.is_set():
            if lost.is_set():
                raise LostLeadership("lease lapsed")
            now_mono = time.monotonic()
            if now_mono - last_reconcile >= self.reconcile_seconds:
                await self._reconcile(leader)
                last_reconcile = now_mono
            # The figures every second; soon when the queues' figures changed (a chat starts
            # waiting), the wallboards told at most every FIGURES_NOTICE_SECONDS: a wallboard
            # shows a change within a second of it (issue #11), its own batching included.
            notice_due = now_mono - leader.figures_told_at >= FIGURES_NOTICE_SECONDS
            changed_soon = notice_due and leader.figures_changed()
            if now_mono - last_stats >= 1.0 or changed_soon:
                await leader.publish_stats()
                last_stats = now_mono
            block_ms = max(1, int(self.tick_seconds * 1000))
            await lanes.serve_batch(
                lambda raw: dispatch.handle(leader, raw, group),
                flush=lambda: dispatch.flush(leader, group),
                block_ms=block_ms,
            )
            with contextlib.suppress(DecisionRefused):
                await leader.apply(lambda e, now: e.tick(now), context="tick")

    async def _reconcile(self, leader: Leader) -> None:
        try:
            with contextlib.suppress(DecisionRefused):  # already put right from SQL
                await reconcile.reconcile(leader)
            await reconcile.reconcile_desktops(leader)
        except DATABASE_ERRORS as exc:
            # A read failed (SQL down, a dead pooled connection): nothing was decided; next pass.
            log.warning("routing engine: reconcile skipped (%s)", exc.__class__.__name__)

    # ------------------------------------------------------------------ for tests and tools

    async def rebuild(self) -> None:
        """Rebuild the floor from SQL now (explicit request); the host must be leading."""
        assert self.leader is not None, "not leading"
        await self.leader.rebuild()

    async def reconcile_desktops(self) -> list[str]:
        return [] if self.leader is None else await reconcile.reconcile_desktops(self.leader)
