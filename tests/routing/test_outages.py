"""Honest outcomes: Redis or the database down is a 503 problem with Retry-After (never a 500, and
nothing half-saved); an engine that answers late is a 202 with a status link, not a 503 for work
that is then done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select, update

from demo.rules import DEFAULT_RULE_SET
from interactions.models import Interaction
from interactions.states import State
from routing import service as routing_service
from routing.models import Offer, OfferState, RoutingPartition
from switchboard.app import create_app
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.redis import rkey, start_embedded, stop_embedded
from tests.factories import available_agent, demo_catalogue, make_offer, queued_chat
from tests.helpers import eventually, running_host
from workforce.models import Agent, Presence
from workforce.presence_log import PresenceChange


def _unavailable(response: Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["status"] == 503


@asynccontextmanager
async def _app_client(settings, handle) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, redis_handle=handle)
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


async def test_redis_down_is_503_and_nothing_half_saved(settings, db, make_user, tmp_path):
    agent_id, headers = await available_agent(db, make_user)
    offered = await queued_chat(db, None, 1, notify=False)
    held = await queued_chat(db, None, 2, notify=False)
    async with db.sessionmaker() as s:
        offer = await make_offer(s, interaction_id=offered, agent_id=agent_id, state=OfferState.LIVE)
        await s.execute(
            update(Interaction)
            .where(Interaction.id == held)
            .values(state=State.CONNECTED, agent_id=agent_id, disposition="resolved")
        )
        await s.commit()
        offer_id = offer.id

    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
        draft = (await routing_service.create_draft(s, body=body, comment="", actor_id=None)).version
        await s.commit()
    # The app's own Redis server, which this test stops (the shared one stays up for the others).
    own = start_embedded(tmp_path / "redis")
    try:
        app_settings = settings.model_copy(update={"redis_url": own.url})
        async with _app_client(app_settings, own) as client:
            assert (await client.get("/readyz")).status_code == 200
            stop_embedded(own)
            _unavailable(await client.post(f"/api/routing/offers/{offer_id}/accept", headers=headers))
            _unavailable(await client.post(f"/api/routing/offers/{offer_id}/reject", headers=headers))
            _unavailable(await client.post(f"/api/routing/interactions/{held}/wrap-up", headers=headers))
            _unavailable(await client.post(f"/api/routing/interactions/{held}/complete", headers=headers))
            away = {"presence": "break", "reason": "lunch"}
            _unavailable(await client.post("/api/routing/presence", json=away, headers=headers))
            # A rule set is SQL's alone: put live and audited, the engine finds it by reconcile.
            published = await client.post(f"/api/routing/rule-sets/{draft}/publish", headers=supervisor)
            assert published.status_code == 200, published.text
            assert published.json()["live"]
    finally:
        stop_embedded(own)
    # Presence was not saved while routing could not be told; nothing else moved either.
    async with db.sessionmaker() as s:
        agent = await s.get(Agent, agent_id)
        assert (agent.presence, agent.presence_reason) == (Presence.AVAILABLE, None)
        # nor is it in the presence log (adherence would count a break that never was)
        assert await s.scalar(select(func.count()).where(PresenceChange.agent_id == agent_id)) == 0
        assert (await s.get(Offer, offer_id)).state is OfferState.LIVE
        assert (await s.get(Interaction, held)).state is State.CONNECTED
        assert (await s.get(RoutingPartition, "default")).live_rule_set_version == draft


async def test_database_down_is_503(settings, make_user, redis_handle, redis_sync):
    _, headers = await make_user(Role.AGENT)
    closed = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:9/test", "database_schema": None}
    )
    async with _app_client(closed, redis_handle) as client:
        _unavailable(await client.get("/api/routing/offers", headers=headers))
        _unavailable(
            await client.post("/api/routing/presence", json={"presence": "available"}, headers=headers)
        )


async def test_engine_answering_late_is_202_with_a_status_link(client, db, redis_handle, make_user):
    agent_id, headers = await available_agent(db, make_user)
    _, stranger = await make_user(Role.AGENT)
    async with running_host(db, redis_handle) as (host, redis_client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, redis_client, 3)
        await eventually(lambda: _live(db, iid), what="an offer")
        (offer,) = (await client.get("/api/routing/offers", headers=headers)).json()
        assert (
            await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=headers)
        ).status_code == 200

    # No engine leads now: the wrap-up waits in the stream, and the agent is told so.
    late = await client.post(f"/api/routing/interactions/{iid}/wrap-up", headers=headers)
    assert late.status_code == 202, late.text
    status_url = late.headers["location"]
    assert late.json()["status"] == "pending" and late.json()["status_url"] == status_url
    pending = await client.get(status_url, headers=headers)
    assert pending.status_code == 200 and pending.json()["status"] == "pending"
    assert (await client.get(status_url, headers=stranger)).status_code == 404

    async with running_host(db, redis_handle) as (host, _, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)

        async def done() -> bool:
            return (await client.get(status_url, headers=headers)).json()["status"] == "done"

        await eventually(done, what="the late wrap-up applied")
    outcome = (await client.get(status_url, headers=headers)).json()
    assert outcome["ok"] is True, outcome
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, iid)).state is State.WRAP_UP


async def test_a_reevaluation_answered_later_is_audited(client, db, redis_handle, redis_sync, make_user):
    """The engine holds the lease but does not answer in time: 202, and the supervisor's request
    is in the audit log all the same (the count it moved is not known yet)."""
    supervisor, headers = await make_user(Role.SUPERVISOR)
    redis_sync.set(rkey("engine", "default", "lease"), "a-host-that-does-not-answer", px=60_000)
    later = await client.post("/api/routing/rule-sets/reevaluate", headers=headers)
    assert later.status_code == 202, later.text
    async with db.sessionmaker() as s:
        entries = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "rule_set.reevaluated"))
        ).all()
        await s.commit()
    assert [(e.actor_id, e.data["moved"], e.data["status_url"]) for e in entries] == [
        (supervisor.id, None, later.headers["location"])
    ]


async def _live(db, iid) -> bool:
    async with db.sessionmaker() as s:
        offer = await s.scalar(
            Offer.__table__.select().where(Offer.interaction_id == iid, Offer.state == OfferState.LIVE)
        )
        return offer is not None
