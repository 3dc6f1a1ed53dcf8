"""Helpers shared by test modules (import from here, never from another test module)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import select, text

from interactions.models import Interaction
from interactions.states import State
from routing.engine import Assigned, Engine, Event, OfferCreated, QueueConfig
from routing.host import EngineHost
from routing.models import Offer, OfferState
from switchboard import commands
from switchboard.db import Database
from switchboard.model_registry import metadata
from workforce.models import Presence

# Each test run gets its own PostgreSQL schema inside database "test", so runs never collide.
PG_SCHEMA = f"sbtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
TEST_PASSWORD = "correct-horse-battery"


def db_schema_for(url: str) -> str | None:
    return None if url.startswith("sqlite") else PG_SCHEMA


async def truncate_all(db: Database) -> None:
    """Empty every table (and, on PostgreSQL, restart the sequences)."""
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.execute(text("PRAGMA foreign_keys=OFF"))
            for name in tables:
                await conn.execute(text(f'DELETE FROM "{name}"'))
            await conn.execute(text("PRAGMA foreign_keys=ON"))
        else:
            joined = ", ".join(f'"{n}"' for n in tables)
            await conn.execute(text(f"TRUNCATE {joined} RESTART IDENTITY CASCADE"))


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    within: float = 10.0,
    what: str = "",
    explain: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Wait until ``check()`` is true (polled every 50 ms), or fail after ``within`` seconds;
    ``explain()`` then says what state things were in (e.g. ``describe_host``)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            detail = f"\n{await explain()}" if explain is not None else ""
            raise AssertionError(f"timed out waiting for {what or check}{detail}")
        await asyncio.sleep(0.05)


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended: its chain of awaits, outermost first (file:line function)."""
    where: list[str] = []
    obj: Any = task.get_coro()
    while obj is not None and len(where) < 60:
        frame = (
            getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
        )
        if frame is None:
            where.append(f"<{type(obj).__name__}>")  # a future, a lock's waiter, ...
            break
        where.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        obj = (
            getattr(obj, "cr_await", None)
            or getattr(obj, "gi_yieldfrom", None)
            or getattr(obj, "ag_await", None)
        )
    return where


async def describe_host(host: EngineHost, runner: asyncio.Task[Any] | None = None) -> str:
    """The engine host's state for a failure message: what its loop is doing and waiting on,
    the lease, the database pool, and the commands waiting in the streams."""
    lines = [
        f"host phase: {host.phase}; is_leader={host.is_leader.is_set()};"
        f" leader epoch={host.leader.lease.epoch if host.leader else None}"
    ]
    try:
        holder = await host.leases.current_holder()
        ttl = await host.client.pttl(host.leases._lease_key)  # noqa: SLF001 - diagnostics
        mine = "this host" if holder == host.leases.holder else ("nobody" if holder is None else "another")
        lines.append(f"lease held by {mine} (pttl {ttl} ms)")
        for stream, cursor in (
            (commands.urgent_stream_key(host.partition), commands.urgent_cursor_key(host.partition)),
            (commands.stream_key(host.partition), commands.cursor_key(host.partition)),
        ):
            newest = await host.client.xrevrange(stream, count=1)
            at = await host.client.get(cursor)
            lines.append(f"{stream}: newest {newest[0][0] if newest else None}, cursor {at}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the failure it reports
        lines.append(f"(Redis unreadable: {exc!r})")
    lines.append(f"pool: {host.db.engine.pool.status()}")
    tasks = [runner] if runner is not None else []
    tasks += [t for t in asyncio.all_tasks() if t is not runner and t.get_name().startswith("engine")]
    for task in tasks:
        state = "done" if task.done() else " <- ".join(reversed(awaiting(task)))
        lines.append(f"task {task.get_name()}: {state}")
    return "\n".join(lines)


def _stream_id(raw: Any) -> tuple[int, int]:
    ms, _, seq = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition("-")
    return int(ms), int(seq or 0)


async def engine_caught_up(client: Any, *, partition: str = "default", within: float = 10.0) -> None:
    """Every command appended so far (both lanes) handled and its decisions written to SQL: the
    host moves a lane's cursor only past what is written. The explicit signal a test checking
    that nothing happens waits on, instead of a duration."""
    for stream, cursor in (
        (commands.urgent_stream_key(partition), commands.urgent_cursor_key(partition)),
        (commands.stream_key(partition), commands.cursor_key(partition)),
    ):
        newest = await client.xrevrange(stream, count=1)
        if not newest:
            continue
        target = _stream_id(newest[0][0])

        async def past(cursor: str = cursor, target: tuple[int, int] = target) -> bool:
            at = await client.get(cursor)
            return at is not None and _stream_id(at) >= target

        await eventually(past, within=within, what=f"the engine past {stream} {target}")


async def live_offers(db: Database, interaction_id: uuid.UUID | None = None) -> list[Offer]:
    async with db.sessionmaker() as s:
        query = select(Offer).where(Offer.state == OfferState.LIVE)
        if interaction_id is not None:
            query = query.where(Offer.interaction_id == interaction_id)
        return list((await s.scalars(query)).all())


async def state_of(db: Database, interaction_id: uuid.UUID) -> State:
    async with db.sessionmaker() as s:
        interaction = await s.get(Interaction, interaction_id)
        assert interaction is not None
        return interaction.state


@contextlib.asynccontextmanager
async def running_host(
    db: Database, redis_handle: Any, **kw: Any
) -> AsyncIterator[tuple[EngineHost, Any, asyncio.Task]]:
    """An engine host running as a task (fast ticks and reconcile passes): (host, client, task)."""
    client = redis_handle.async_client()
    host = EngineHost(
        db, client, lease_ttl_ms=kw.pop("lease_ttl_ms", 1500), tick_seconds=0.05, reconcile_seconds=0.3, **kw
    )
    task = asyncio.create_task(host.run())
    try:
        yield host, client, task
    finally:
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        await client.aclose()


async def kill_host(task: asyncio.Task) -> None:
    """The leader process dies. Python 3.11's wait_for can swallow a cancellation that lands as its
    inner wait finishes (fixed in 3.12); a killed process cannot, so cancel until the task is gone."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)


async def accept_next(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    """Wait for this agent's next offer and accept it through the API; the offer as listed."""

    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=headers)).json())

    await eventually(offered, what="an offer")
    (offer,) = (await client.get("/api/routing/offers", headers=headers)).json()
    accepted = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=headers)
    assert accepted.status_code == 200, accepted.text
    return offer


# ------------------------------------------------------------------ the pure engine


def engine(*queues: str | QueueConfig, **kw: Any) -> Engine:
    cfgs = [q if isinstance(q, QueueConfig) else QueueConfig(q) for q in (queues or ("retail",))]
    return Engine(cfgs, **kw)


def agent(e: Engine, now: float, aid: str, queues: tuple[str, ...] = ("retail",), **kw: Any) -> list[Event]:
    kw.setdefault("presence", Presence.AVAILABLE)
    return e.add_agent(now, aid, queues=queues, **kw)


def offers(events: list[Event]) -> list[tuple[str, str]]:
    return [(ev.interaction_id, ev.agent_id) for ev in events if isinstance(ev, OfferCreated)]


def offer_of(events: list[Event]) -> OfferCreated:
    found = [ev for ev in events if isinstance(ev, OfferCreated)]
    assert len(found) == 1, events
    return found[0]


def connect(e: Engine, now: float, events: list[Event]) -> OfferCreated:
    o = offer_of(events)
    assert any(isinstance(ev, Assigned) for ev in e.accept(now, o.offer_id, o.agent_id))
    return o


# ------------------------------------------------------------------ the carrier's REST API (a fake)

ACCOUNT = "AC" + "7" * 32
CALL_SID = "CA" + "a" * 32
AGENT_CALL_SID = "CA" + "b" * 32  # the agent's leg the fake "dials" into a conference
CONFERENCE_SID = "CF" + "c" * 32


class FakeCarrier:
    """A Twilio-compatible REST peer: records every request (path, auth, form) and answers as the
    carrier would (or ``fail_with``): a participant added to a conference comes back with its call
    and the conference's sid, a conference list finds one, anything else names the call."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str | None, dict[str, list[str]]]] = []
        self.fail_with: int | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server hook
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                outer.updates.append((self.path, self.headers.get("Authorization"), form))
                status, answer = outer.fail_with or 200, {"sid": CALL_SID}
                if self.path.endswith("/Participants.json"):
                    answer = {"call_sid": AGENT_CALL_SID, "conference_sid": CONFERENCE_SID}
                    status = outer.fail_with or 201
                self._answer(status, answer)

            def do_GET(self) -> None:  # noqa: N802 - http.server hook
                outer.updates.append((self.path, self.headers.get("Authorization"), {}))
                self._answer(outer.fail_with or 200, {"conferences": [{"sid": CONFERENCE_SID}]})

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@contextlib.asynccontextmanager
async def leading_host(db: Database, redis_handle):
    """A leader whose reconcile pass stays out of the way (it would adopt work behind our back)."""
    client = redis_handle.async_client()
    host = EngineHost(
        db, client, lease_ttl_ms=1500, tick_seconds=0.05, reconcile_seconds=600, desktop_grace_seconds=None
    )
    task = asyncio.create_task(host.run())
    try:
        await asyncio.wait_for(host.is_leader.wait(), 10)
        yield host, client
    finally:
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        await client.aclose()


async def all_offers(db: Database) -> dict[uuid.UUID, tuple[OfferState, str | None]]:
    async with db.sessionmaker() as s:
        return {o.id: (o.state, o.reason) for o in (await s.scalars(select(Offer))).all()}


async def offered(db: Database, count: int) -> dict[uuid.UUID, Offer]:
    """Wait for ``count`` live offers; by agent."""
    await eventually(lambda: _count_live(db, count), what=f"{count} live offers")
    return {o.agent_id: o for o in await live_offers(db)}


async def _count_live(db: Database, count: int) -> bool:
    return len(await live_offers(db)) == count


def untouched(before: dict[uuid.UUID, tuple[OfferState, str | None]], after, live: list[Offer]) -> None:
    for offer in live:
        assert after[offer.id] == (OfferState.LIVE, None), f"offer {offer.id} was closed: {after[offer.id]}"
    assert not [o for o, (_, reason) in after.items() if reason == "engine_failover"]
    assert {o: v for o, v in after.items() if o in before} == before


def rules_form_data(state: dict) -> dict[str, str]:
    """What a browser posts from the rules editor showing ``state`` (console.rules_form; unchecked
    boxes are absent)."""
    form = {"filters": str(len(state["filters"])), "fd.steps": str(len(state["default"]["steps"]))}
    form |= {"default_name": state["default_name"], "on_final_timeout": state["on_final_timeout"]}

    def steps(prefix: str, items: list[dict]) -> None:
        for j, s in enumerate(items):
            for k, v in s.items():
                if v is True:
                    form[f"{prefix}.s{j}.{k}"] = "on"
                elif v is not False:
                    form[f"{prefix}.s{j}.{k}"] = v

    for i, f in enumerate(state["filters"]):
        form |= {f"f{i}.name": f["name"], f"f{i}.when": f["when"], f"f{i}.steps": str(len(f["steps"]))}
        steps(f"f{i}", f["steps"])
    steps("fd", state["default"]["steps"])
    return form


@contextlib.asynccontextmanager
async def running_carrier(*, account_sid: str, auth_token: str) -> AsyncIterator[Any]:
    """The demo's Twilio-compatible carrier REST API over real HTTP, for call-control tests."""
    from demo.carrier import FakeCarrierApi

    fake = FakeCarrierApi(account_sid=account_sid, auth_token=auth_token)
    fake.url = await fake.start()  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        await fake.stop()


def carrier_settings(settings: Any, carrier: Any, **extra: Any) -> Any:
    """``settings`` pointed at ``carrier`` (its account and token), voice queued in "retail"."""
    return settings.model_copy(
        update={
            "carrier_auth_token": carrier.auth_token,
            "carrier_api_url": carrier.url,
            "carrier_account_sid": carrier.account_sid,
            "public_base_url": "http://testserver",
            "voice_queue": "retail",
            **extra,
        }
    )
