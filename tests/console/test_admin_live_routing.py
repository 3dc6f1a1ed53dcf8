"""Administration reaches the running routing engine without a restart (issue #11 item 4): the
engine host runs in the app; a supervisor's change through the API is applied to waiting work."""

from __future__ import annotations

from switchboard import commands
from switchboard.auth.models import Role
from tests.factories import make_agent, make_queue, make_skills, queued_chat
from tests.helpers import engine_caught_up, eventually, live_offers
from workforce.models import Presence, Queue


async def test_an_agent_given_a_skill_is_offered_work_needing_it(db, routed, make_user):
    app, client = routed
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_skills(s, "mortgages", "cards")
        await make_queue(s, "retail", channels=["chat"], required_skills={"mortgages": 3})
        agent = await make_agent(s, name="Kim", presence=Presence.AVAILABLE, skills={"cards": 5})
    redis = app.state.redis_client
    await commands.send(redis, commands.AgentChanged(agent_id=str(agent.id)))  # made after the start
    chat = await queued_chat(db, redis, 1)
    await engine_caught_up(redis)
    assert await live_offers(db) == []  # the engine has both, but the agent lacks the skill

    given = await client.patch(
        f"/api/agents/{agent.id}", json={"skills": {"cards": 5, "mortgages": 3}}, headers=sup
    )
    assert given.status_code == 200, given.text

    async def offered() -> bool:
        return [(o.interaction_id, o.agent_id) for o in await live_offers(db)] == [(chat, agent.id)]

    await eventually(offered, what="the chat offered to the agent who now has the skill")


async def test_a_queue_whose_required_skills_change_is_served_by_who_now_qualifies(db, routed, make_user):
    app, client = routed
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_skills(s, "mortgages", "cards")
        queue = await make_queue(s, "retail", channels=["chat"], required_skills={"mortgages": 3})
        agent = await make_agent(s, name="Kim", presence=Presence.AVAILABLE, skills={"cards": 4})
    redis = app.state.redis_client
    await commands.send(redis, commands.AgentChanged(agent_id=str(agent.id)))
    chat = await queued_chat(db, redis, 2)
    await engine_caught_up(redis)
    assert await live_offers(db) == []

    changed = await client.patch(
        f"/api/queues/{queue.id}",
        json={"required_skills": {"cards": 2}, "offer_timeout_seconds": 40},
        headers=sup,
    )
    assert changed.status_code == 200, changed.text

    async def offered() -> bool:
        return [o.interaction_id for o in await live_offers(db)] == [chat]

    await eventually(offered, what="the chat offered once the agent qualifies for the queue")
    (offer,) = await live_offers(db)
    assert round((offer.expires_at - offer.created_at).total_seconds()) == 40  # the queue's offer timeout


async def test_routing_unreachable_refuses_the_change_with_nothing_saved(db, client, make_user, app):
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "retail", channels=["chat"])

    class Down:
        async def ping(self) -> None:
            raise ConnectionError("redis is down")

    real = app.state.redis_client
    app.state.redis_client = Down()  # the outer edge: Redis refusing connections
    try:
        refused = await client.patch(f"/api/queues/{queue.id}", json={"wrap_up_seconds": 30}, headers=sup)
    finally:
        app.state.redis_client = real
    assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
    async with db.sessionmaker() as s:
        assert (await s.get(Queue, queue.id, populate_existing=True)).wrap_up_seconds == 60
