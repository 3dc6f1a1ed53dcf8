"""Two real app processes (uvicorn) on PostgreSQL and Redis; the engine leader is killed mid-traffic.

Invariant checked from SQL afterwards: every interaction the API accepted is still there and
either queued/offered (waiting) or assigned to exactly one agent; no interaction was ever accepted
twice or held two live offers; no agent exceeds its channel maximum.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter

import httpx
from sqlalchemy import func, select

from interactions.models import Interaction
from interactions.states import State
from routing.models import Offer, OfferState
from switchboard.auth.models import Role
from switchboard.auth.service import token_for
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import make_agent, make_queue, make_staff_user
from tests.helpers import PG_SCHEMA, eventually, truncate_all
from workforce.models import Presence

AGENTS = 6
CHAT_MAX = 2
CREATE_COUNT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _seed(db: Database, settings) -> tuple[dict[str, str], list[dict[str, str]]]:
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "retail", channels=["chat"])
        supervisor = await make_staff_user(s, Role.SUPERVISOR, name="Sup", username="sup", password=None)
        agent_headers = []
        for n in range(AGENTS):
            user = await make_staff_user(s, name=f"Agent {n}", username=f"ag{n}", password=None)
            await make_agent(
                s,
                user,
                presence=Presence.AVAILABLE,
                channel_max={"voice": 1, "chat": CHAT_MAX, "ticket": 5, "email": 5},
                queues=[queue],
            )
            agent_headers.append({"Authorization": f"Bearer {token_for(user, settings)[0]}"})
        return {"Authorization": f"Bearer {token_for(supervisor, settings)[0]}"}, agent_headers


def _chat(visitor: str) -> dict[str, object]:
    return {"channel": "chat", "queue": "retail", "identity": {"kind": "chat", "value": visitor}}


async def _seeded(postgres_url: str, redis_handle) -> tuple[Database, dict[str, str], list[dict[str, str]]]:
    db = Database(postgres_url, schema=PG_SCHEMA)
    await truncate_all(db)
    supervisor, agents = await _seed(db, _settings(postgres_url, redis_handle))
    return db, supervisor, agents


def _two_processes(postgres_url: str, redis_handle, tmp_path) -> tuple[list[str], list[subprocess.Popen]]:
    """Two app processes (uvicorn) on one schema and Redis; their logs app0.log, app1.log."""
    settings = _settings(postgres_url, redis_handle)
    ports = [_free_port(), _free_port()]
    procs = [_start(p, settings, tmp_path / f"app{i}.log") for i, p in enumerate(ports)]
    return [f"http://127.0.0.1:{p}" for p in ports], procs


def _settings(postgres_url: str, redis_handle) -> Settings:
    return Settings(
        environment="test",
        database_url=postgres_url,
        database_schema=PG_SCHEMA,
        redis_url=redis_handle.url,
        secret_key="failover-test-secret-" + "y" * 32,
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _start(port: int, settings, log_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": settings.database_url,
        "SWITCHBOARD_DATABASE_SCHEMA": settings.database_schema or "",
        "SWITCHBOARD_REDIS_URL": settings.redis_url,
        "SWITCHBOARD_SECRET_KEY": settings.secret_key,
        "SWITCHBOARD_ENGINE_LEASE_MS": "1000",
        "SWITCHBOARD_ROUTING_ENGINE": "true",
        "SWITCHBOARD_ENVIRONMENT": "test",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "switchboard.app:create_app",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


async def _engine_role(client: httpx.AsyncClient, base: str) -> str | None:
    try:
        response = await client.get(f"{base}/readyz", timeout=2)
        return response.json().get("routing_engine")
    except httpx.HTTPError:
        return None


async def test_engine_leader_killed_mid_traffic(postgres_url, redis_handle, redis_sync, tmp_path):
    db, supervisor, agents = await _seeded(postgres_url, redis_handle)
    bases, procs = _two_processes(postgres_url, redis_handle, tmp_path)
    created: list[str] = []
    survivor = 0
    server_errors: list[str] = []
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await eventually(
                lambda: _all_roles_known(client, bases), within=30, what="both processes to be ready"
            )
            roles = [await _engine_role(client, b) for b in bases]
            assert sorted(roles) == ["leader", "standby"], roles
            leader = roles.index("leader")
            survivor = 1 - leader
            alive = {0: True, 1: True}

            async def post(i: int, n: int) -> None:
                # Alternate processes; after the kill everything goes to the survivor.
                for target in (i % 2, 1 - i % 2):
                    if not alive[target]:
                        continue
                    try:
                        response = await client.post(
                            f"{bases[target]}/api/interactions",
                            json=_chat(f"visitor-{n}-{uuid.uuid4().hex[:6]}"),
                            headers=supervisor,
                        )
                    except httpx.HTTPError:
                        continue  # that process died under us: its outcome is unknown, try the other
                    if response.status_code >= 500:
                        server_errors.append(response.text)
                    if response.status_code == 201:
                        created.append(response.json()["id"])
                    return

            async def agents_work(stop: asyncio.Event) -> None:
                # Each agent accepts what it is offered and completes every other piece of work.
                done = Counter()
                while not stop.is_set():
                    for a, headers in enumerate(agents):
                        base = bases[survivor] if not alive[leader] else bases[a % 2]
                        try:
                            offers = (await client.get(f"{base}/api/routing/offers", headers=headers)).json()
                            for offer in offers:
                                r = await client.post(
                                    f"{base}/api/routing/offers/{offer['id']}/accept", headers=headers
                                )
                                if r.status_code >= 500 and r.status_code != 503:
                                    server_errors.append(r.text)
                                if r.status_code == 200 and done[a] % 2 == 0:
                                    iid = offer["interaction_id"]
                                    await client.put(
                                        f"{base}/api/interactions/{iid}/disposition",
                                        json={"disposition": "resolved"},
                                        headers=headers,
                                    )
                                    await client.post(
                                        f"{base}/api/routing/interactions/{iid}/wrap-up", headers=headers
                                    )
                                    await client.post(
                                        f"{base}/api/routing/interactions/{iid}/complete", headers=headers
                                    )
                                done[a] += 1
                        except httpx.HTTPError:
                            pass
                    await asyncio.sleep(0.05)

            stop = asyncio.Event()
            worker = asyncio.create_task(agents_work(stop))
            for n in range(CREATE_COUNT):
                await post(n, n)
                if n == CREATE_COUNT // 3:
                    procs[leader].send_signal(signal.SIGKILL)  # no clean shutdown, lease not released
                    alive[leader] = False
                await asyncio.sleep(0.05)

            await eventually(
                lambda: _is(client, bases[survivor], "leader"), within=20, what="the stand-by to take over"
            )
            # The new leader routes and the agents work through: until both leaders' offers are in
            # SQL and work was assigned on both sides of the kill (the checks below read a
            # snapshot after both processes stopped; each invariant holds at any instant).
            await eventually(
                lambda: _work_flowed_under_both_leaders(db), within=30, what="work accepted after the kill"
            )
            stop.set()
            await worker
    finally:
        _stop(procs)

    survivor_log = (tmp_path / f"app{survivor}.log").read_text()
    assert not server_errors, server_errors[:3]
    assert "Traceback" not in survivor_log, survivor_log[-3000:]

    async with db.sessionmaker() as s:
        states = dict((await s.execute(select(Interaction.id, Interaction.state))).all())
        accepted = Counter(
            (await s.scalars(select(Offer.interaction_id).where(Offer.state == OfferState.ACCEPTED))).all()
        )
        live = Counter(
            (await s.scalars(select(Offer.interaction_id).where(Offer.state == OfferState.LIVE))).all()
        )
        held = (
            await s.execute(
                select(Interaction.agent_id, Interaction.channel, func.count())
                .where(Interaction.state.in_((State.OFFERED, State.CONNECTED, State.WRAP_UP)))
                .group_by(Interaction.agent_id, Interaction.channel)
            )
        ).all()
        assigned = (
            await s.execute(
                select(Interaction.id, Interaction.agent_id).where(
                    Interaction.state.in_((State.CONNECTED, State.WRAP_UP, State.COMPLETED))
                )
            )
        ).all()
        epochs = Counter((await s.scalars(select(Offer.engine_epoch))).all())
        accepted_agent = dict(
            (
                await s.execute(
                    select(Offer.interaction_id, Offer.agent_id).where(Offer.state == OfferState.ACCEPTED)
                )
            ).all()
        )
    await db.dispose()

    assert len(created) >= CREATE_COUNT - 2, "the API must keep accepting work through the fail-over"
    for iid in created:
        assert uuid.UUID(iid) in states, f"interaction {iid} was lost"
    allowed = {State.QUEUED, State.OFFERED, State.CONNECTED, State.WRAP_UP, State.COMPLETED}
    assert set(states.values()) <= allowed, Counter(states.values())
    assert all(n == 1 for n in accepted.values()), "an interaction was accepted twice"
    assert all(n == 1 for n in live.values()), "an interaction had two live offers"
    for interaction_id, agent_id in assigned:
        assert accepted[interaction_id] == 1 and accepted_agent[interaction_id] == agent_id
    for agent_id, channel, count in held:
        assert count <= CHAT_MAX, f"agent {agent_id} holds {count} {channel} interactions"
    # Both leaders decided: offers carry the first leader's epoch and the successor's higher one.
    assert len(epochs) >= 2, epochs
    # Work really flowed on both sides of the kill.
    assert sum(1 for v in states.values() if v in (State.CONNECTED, State.WRAP_UP, State.COMPLETED)) >= AGENTS


async def _work_flowed_under_both_leaders(db: Database) -> bool:
    async with db.sessionmaker() as s:
        epochs = (await s.scalars(select(func.count(func.distinct(Offer.engine_epoch))))).one()
        newest = (await s.scalars(select(func.max(Offer.engine_epoch)))).one()
        accepted_by_successor = (
            await s.scalars(
                select(func.count())
                .select_from(Offer)
                .where(Offer.engine_epoch == newest, Offer.state == OfferState.ACCEPTED)
            )
        ).one()
        worked = (
            await s.scalars(
                select(func.count())
                .select_from(Interaction)
                .where(Interaction.state.in_((State.CONNECTED, State.WRAP_UP, State.COMPLETED)))
            )
        ).one()
        await s.commit()
    return epochs >= 2 and accepted_by_successor >= 1 and worked >= AGENTS


async def _all_roles_known(client, bases) -> bool:
    roles = [await _engine_role(client, b) for b in bases]
    return all(r in ("leader", "standby") for r in roles) and "leader" in roles


async def _is(client, base, role) -> bool:
    return await _engine_role(client, base) == role


async def test_an_accept_sent_while_no_process_leads_is_honoured(
    postgres_url, redis_handle, redis_sync, tmp_path
):
    """kill -9 of the leader, then at once an agent accepts the offer it made through the other
    process: the new leader keeps the dead one's offers (issue #15 items 2-3), so the accept is
    honoured (it was a 409, "routing restarted", when a take-over withdrew every live offer) and
    the other agent's offer is still the one on their desktop, same id."""
    db, supervisor, agents = await _seeded(postgres_url, redis_handle)
    bases, procs = _two_processes(postgres_url, redis_handle, tmp_path)
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            await eventually(
                lambda: _all_roles_known(client, bases), within=30, what="both processes to be ready"
            )
            roles = [await _engine_role(client, b) for b in bases]
            leader = roles.index("leader")
            survivor = bases[1 - leader]
            for n in range(2):
                created = await client.post(
                    f"{bases[leader]}/api/interactions",
                    json=_chat(f"gap-{n}"),
                    headers=supervisor,
                )
                assert created.status_code == 201, created.text
            offered: dict[int, dict] = {}

            async def both_offered() -> bool:
                for a, headers in enumerate(agents):
                    mine = (await client.get(f"{survivor}/api/routing/offers", headers=headers)).json()
                    if mine:
                        offered[a] = mine[0]
                return len(offered) == 2

            await eventually(both_offered, within=15, what="two offers from the first leader")
            procs[leader].send_signal(signal.SIGKILL)  # no clean shutdown, lease not released
            procs[leader].wait(timeout=10)
            (accepting, offer), (other, other_offer) = sorted(offered.items())
            assert await _engine_role(client, survivor) == "standby"  # nobody leads yet
            accepted = await client.post(
                f"{survivor}/api/routing/offers/{offer['id']}/accept", headers=agents[accepting]
            )
            assert accepted.status_code in (200, 202), accepted.text
            await eventually(lambda: _is(client, survivor, "leader"), within=20, what="the take-over")
            kept = (await client.get(f"{survivor}/api/routing/offers", headers=agents[other])).json()
            assert [o["id"] for o in kept] == [other_offer["id"]]

            async def connected() -> bool:
                async with db.sessionmaker() as s:
                    state = await s.scalar(select(Offer.state).where(Offer.id == uuid.UUID(offer["id"])))
                    held = await s.scalar(
                        select(Interaction.state).where(Interaction.id == uuid.UUID(offer["interaction_id"]))
                    )
                return state is OfferState.ACCEPTED and held is State.CONNECTED

            await eventually(connected, within=10, what="the accept sent in the gap applied")
    finally:
        _stop(procs)

    try:
        async with db.sessionmaker() as s:
            rescinded = await s.scalar(
                select(func.count()).select_from(Offer).where(Offer.state == OfferState.RESCINDED)
            )
        assert rescinded == 0
    finally:
        await db.dispose()
