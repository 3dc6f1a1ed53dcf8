"""Issue #4 item 8: an agent whose desktop vanishes is moved off "available" and any offer to them
is rescinded, across processes.

Two app instances (real uvicorn servers on real ports) share SQL and Redis: A runs the engine
leader, B only serves sockets and the API. The agent holds a socket on each. Losing the one on A
changes nothing while B's socket keeps beating; losing both sets the agent offline (presence event
with reason "desktop_lost") and rescinds the live offer, the interaction keeping its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import uvicorn
import websockets
from sqlalchemy import select

from interactions.models import Interaction
from interactions.states import State
from routing import heartbeats
from routing.host import EngineHost
from routing.models import Offer, OfferState
from switchboard.app import create_app
from switchboard.auth.models import Role
from switchboard.events import PREFIX, agent_topic
from tests.factories import make_agent, make_queue
from tests.helpers import eventually
from workforce.models import Agent, Presence

ORIGIN = "http://desk.test"
GRACE = 1.0


@contextlib.asynccontextmanager
async def _serving(settings, redis_handle, *, engine: bool) -> AsyncIterator[tuple[str, object]]:
    app = create_app(
        settings.model_copy(
            update={
                "routing_engine": engine,
                "engine_lease_ms": 2000,
                "desktop_grace_seconds": GRACE,
                "allowed_origins": [ORIGIN],
            }
        ),
        redis_handle=redis_handle,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _true(server.started), within=20, what="uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _true(value: bool) -> bool:
    return value


class Desk:
    """One desktop socket that answers nothing but pings on its own schedule."""

    def __init__(self, host: str, token: str) -> None:
        self.host, self.token = host, token
        self.frames: list[str] = []
        self.pinging = True

    async def __aenter__(self) -> Desk:
        self.ws = await websockets.connect(
            f"ws://{self.host}/desktop/ws",
            additional_headers={"Cookie": f"sb_session={self.token}", "Origin": ORIGIN},
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._ping())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                self.frames.append(frame)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(0.3)
            await self.ws.send(json.dumps({"type": "ping"}))


async def _seed(db, user) -> Agent:
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "retail", channels=["chat"])
        return await make_agent(s, user, presence=Presence.AVAILABLE, channel_max={"chat": 3}, queues=[queue])


async def test_vanished_desktop_sets_the_agent_offline_and_rescinds_offers_across_processes(
    settings, db, redis_handle, redis_sync, make_user
) -> None:
    user, agent_headers = await make_user(Role.AGENT)
    token = agent_headers["Authorization"].removeprefix("Bearer ")
    _, supervisor = await make_user(Role.SUPERVISOR)
    agent = await _seed(db, user)
    presence_events: list[dict] = []
    pubsub = redis_handle.async_client().pubsub()
    await pubsub.subscribe(PREFIX + agent_topic(agent.id))

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                event = json.loads(message["data"])
                if event.get("type") == "presence":
                    presence_events.append(event)

    listener = asyncio.create_task(listen())
    try:
        async with (
            _serving(settings, redis_handle, engine=True) as (host_a, app_a),
            _serving(settings, redis_handle, engine=False) as (host_b, _),
        ):
            await asyncio.wait_for(app_a.state.engine_host.is_leader.wait(), 15)
            async with Desk(host_a, token) as on_a, Desk(host_b, token) as on_b:
                async with httpx.AsyncClient(base_url=f"http://{host_b}") as http:
                    created = await http.post(
                        "/api/interactions",
                        json={
                            "channel": "chat",
                            "queue": "retail",
                            "identity": {"kind": "chat", "value": "hb-1"},
                        },
                        headers=supervisor,
                    )
                assert created.status_code == 201, created.text
                iid = uuid.UUID(created.json()["id"])

                async def offer_shown() -> bool:
                    return all(
                        any(str(iid) in f and "offer-toast" in f for f in d.frames) for d in (on_a, on_b)
                    )

                await eventually(offer_shown, what="the offer on both sockets")

                # The engine's own process loses its socket; B's socket keeps the desktop alive.
                await on_a.close()
                await asyncio.sleep(GRACE + 2.5)  # beyond the grace and at least one reconcile pass
                async with db.sessionmaker() as s:
                    assert (await s.get(Agent, agent.id)).presence is Presence.AVAILABLE
                    (offer,) = (await s.scalars(select(Offer).where(Offer.interaction_id == iid))).all()
                    assert offer.state is OfferState.LIVE
                assert presence_events == []

                # Now the last socket goes too (a closed laptop: no goodbye needed).
                await on_b.close()

                async def offline() -> bool:
                    async with db.sessionmaker() as s:
                        a = await s.get(Agent, agent.id, populate_existing=True)
                        return a.presence is Presence.OFFLINE

                await eventually(offline, within=GRACE + 8, what="the agent set offline")
            async with db.sessionmaker() as s:
                a = await s.get(Agent, agent.id)
                assert a.presence_reason == "desktop_lost"
                offer = await s.get(Offer, offer.id, populate_existing=True)
                assert offer.state is OfferState.RESCINDED and offer.reason == "agent_offline"
                interaction = await s.get(Interaction, iid, populate_existing=True)
                assert interaction.state is State.QUEUED and interaction.agent_id is None
            await eventually(lambda: _true(bool(presence_events)), what="the presence event")
            assert presence_events[0]["presence"] == "offline"
            assert presence_events[0]["reason"] == "desktop_lost"
            # Claimed once: the agent is no longer tracked until a desktop connects again.
            assert await redis_handle.async_client().zscore(heartbeats.BEATS_KEY, str(agent.id)) is None
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await pubsub.aclose()


async def test_only_desktops_silent_for_the_whole_grace_are_claimed(redis_handle, redis_sync) -> None:
    client = redis_handle.async_client()
    try:
        await heartbeats.beat(client, "old", now=100.0)
        await heartbeats.beat(client, "fresh", now=100.0)
        await heartbeats.beat(client, "fresh", now=112.0)  # a second socket (or process) beat later
        assert await heartbeats.claim_vanished(client, grace_seconds=10, now=115.0) == ["old"]
        assert await heartbeats.claim_vanished(client, grace_seconds=10, now=115.0) == []  # once
        # A failed pass puts agents back without overwriting a newer beat.
        await heartbeats.beat(client, "back", now=114.0)
        await heartbeats.restore(client, ["old", "back"], at=0.0)
        assert await heartbeats.claim_vanished(client, grace_seconds=10, now=115.0) == ["old"]
    finally:
        await client.aclose()


async def test_a_break_without_offers_survives_a_vanished_desktop(
    settings, db, redis_handle, redis_sync, make_user
) -> None:
    on_break = await _seed(db, (await make_user(Role.AGENT))[0])
    async with db.sessionmaker() as s:
        available = await make_agent(
            s, (await make_user(Role.AGENT))[0], name="B", presence=Presence.AVAILABLE
        )
        row = await s.get(Agent, on_break.id)
        row.presence, row.presence_reason = Presence.BREAK, "lunch"
        await s.commit()
    client = redis_handle.async_client()
    host = EngineHost(db, client, lease_ttl_ms=2000, desktop_grace_seconds=GRACE)
    runner = asyncio.create_task(host.run())
    try:
        await asyncio.wait_for(host.is_leader.wait(), 15)
        for agent_id in (on_break.id, available.id):
            await heartbeats.beat(client, agent_id, now=1.0)  # silent for ages
        # Whichever pass claims them (ours or the host's own loop), only the available one moves.
        gone = await host.reconcile_desktops()

        async def settled() -> bool:
            async with db.sessionmaker() as s:
                return (await s.get(Agent, available.id, populate_existing=True)).presence is Presence.OFFLINE

        await eventually(settled, what="the available agent set offline")
        assert gone in ([str(available.id)], [])
        async with db.sessionmaker() as s:
            row = await s.get(Agent, on_break.id, populate_existing=True)
            assert row.presence is Presence.BREAK and row.presence_reason == "lunch"
    finally:
        await host.stop()
        await asyncio.wait_for(runner, 15)
        await client.aclose()
