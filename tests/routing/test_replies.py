"""Engine calls wait without holding a Redis connection: one reply listener per process."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from demo.rules import DEFAULT_RULE_SET
from switchboard import commands, replies
from switchboard.auth.models import Role
from tests.factories import demo_catalogue
from tests.helpers import running_host

CALLS = 200  # twice redis-py's default pool (100): each waiting caller used to hold one


async def _publish_rules(client, db, supervisor) -> None:
    await demo_catalogue(db)
    body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    assert (
        await client.post("/api/routing/rule-sets", json={"body": body}, headers=supervisor)
    ).status_code == 201
    assert (await client.post("/api/routing/rule-sets/1/publish", headers=supervisor)).status_code == 200


async def test_200_concurrent_engine_calls_on_one_process_all_answer(client, db, redis_handle, make_user):
    """200 callers wait for an engine that is not running yet: waiting holds no connection, so the
    process's other Redis work (here /readyz) goes on; once an engine leads, every call answers."""
    _, supervisor = await make_user(Role.SUPERVISOR)
    await _publish_rules(client, db, supervisor)

    async def dry_run():
        return await client.post(
            "/api/routing/dry-run", json={"context": {"channel": "voice"}}, headers=supervisor
        )

    calls = asyncio.ensure_future(asyncio.gather(*(dry_run() for _ in range(CALLS))))
    ready: list[int] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.0
    while loop.time() < until:  # all 200 are waiting for their reply meanwhile
        ready.append((await client.get("/readyz")).status_code)
        await asyncio.sleep(0.05)
    assert not calls.done()
    async with running_host(db, redis_handle) as (host, _, _):
        responses = await calls
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * CALLS, [r.text for r in responses if r.status_code != 200][:3]
    assert all(r.json()["queue"] for r in responses)
    assert ready and set(ready) == {200}, ready


async def test_the_listener_survives_its_connection_being_killed(routed, redis_handle):
    app, _client = routed
    listener: replies.ReplyListener = app.state.replies
    assert (await commands.call(app.state.redis_client, {"type": "explain", "context": {}}))["ok"] is False
    admin = aioredis.Redis.from_url(redis_handle.url, decode_responses=True)
    try:
        db = str(admin.connection_pool.connection_kwargs.get("db", 0))  # Redis is shared: ours only
        blocked = [c for c in await admin.client_list() if c["cmd"] == "blpop" and c["db"] == db]
        assert blocked, "the listener blocks on its inbox"
        for conn in blocked:
            await admin.client_kill_filter(_id=conn["id"])
        # The next engine call is still answered through the same listener.
        explain = {"type": "explain", "context": {}}
        reply = await commands.call(app.state.redis_client, explain, wait_seconds=8)
        assert reply["ok"] is False and "rule set" in reply["reason"]
        assert listener.running
    finally:
        await admin.aclose()
