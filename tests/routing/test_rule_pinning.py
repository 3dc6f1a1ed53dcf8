"""Every interaction stays pinned to the rule-set version that routed it, across engine take-over.

A new leader rebuilds waiting work from SQL; rule-routed work must be re-evaluated with its
pinned version (loaded from SQL), never silently with whatever is live now. Only the supervisor's
explicit re-evaluation moves it to the live version. Real SQL (SQLite and PostgreSQL), real Redis,
two hosts in-process, an injected clock so rule steps expire on cue.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import select

from interactions.models import Interaction
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from routing import service
from switchboard import commands
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import demo_catalogue
from tests.helpers import eventually, kill_host, running_host
from workforce.models import Queue

# Our interactions have no topic: the "disputes" filter never matches, the default filter routes.
DISPUTES = {"name": "disputes", "when": 'interaction.topic == "disputes"', "steps": [{"queue": "cards"}]}
V1 = {  # retail for the first 30 s of age, then collections
    "filters": [DISPUTES],
    "default_filter": {
        "name": "everyone",
        "steps": [{"queue": "retail", "timeout_seconds": 30}, {"queue": "collections"}],
    },
    "on_final_timeout": "collections",
}
V2 = {
    "filters": [DISPUTES],
    "default_filter": {"name": "everyone", "steps": [{"queue": "cards"}]},
    "on_final_timeout": "cards",
}


async def _publish(db: Database, body: dict) -> int:
    async with db.sessionmaker() as s:
        draft = await service.create_draft(s, body=body, comment="", actor_id=None)
        await service.publish(s, version=draft.version, actor_id=None)
        await s.commit()
        return draft.version


async def _rule_routed(db: Database, client, n: int) -> uuid.UUID:
    async with db.sessionmaker() as s:
        data = InteractionCreate(channel="chat", identity={"kind": "phone", "value": f"+4479112{n:05d}"})
        it = await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")
        await s.commit()
    await commands.notify_enqueued(client, it.id)
    return it.id


async def _routing(db: Database, iid: uuid.UUID) -> tuple[str | None, int | None]:
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, iid)
        queue = await s.scalar(select(Queue.name).where(Queue.id == it.queue_id)) if it.queue_id else None
        return queue, it.rule_set_version


def _is(db: Database, iid: uuid.UUID, expected: tuple[str, int]):
    async def check() -> bool:
        return await _routing(db, iid) == expected

    return check


async def test_take_over_keeps_waiting_work_on_its_pinned_rule_set(db, redis_handle, redis_sync):
    await demo_catalogue(db)  # the demo queues; no agents, so the work waits
    assert await _publish(db, V1) == 1
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    async with running_host(db, redis_handle, clock=clock) as (a, client_a, task_a):
        await asyncio.wait_for(a.is_leader.wait(), 10)
        old = await _rule_routed(db, client_a, 1)
        await eventually(_is(db, old, ("retail", 1)), what="routed by v1")

        assert await _publish(db, V2) == 2
        await commands.send(client_a, {"type": "rule_set_published"})
        await eventually(lambda: _truthy(a.engine.rule_set_version == 2), what="v2 live in the leader")

        async with running_host(db, redis_handle, clock=clock) as (b, client_b, _):
            await kill_host(task_a)  # the leader dies; the stand-by rebuilds from SQL with v2 live
            await asyncio.wait_for(b.is_leader.wait(), 10)
            assert b.engine.rule_set_version == 2
            assert b.engine.snapshot()["interactions"][str(old)]["queue"] == "retail"
            assert await _routing(db, old) == ("retail", 1)

            # Still v1's steps: at 30 s of age it escalates to v1's next step, not to v2's queue.
            offset[0] += 40
            await eventually(_is(db, old, ("collections", 1)), what="escalated by v1's second step")

            new = await _rule_routed(db, client_b, 2)  # arrivals use the live version
            await eventually(_is(db, new, ("cards", 2)), what="a new arrival routed by v2")

            # Only the supervisor's explicit re-evaluation moves pinned work to the live version.
            reply = await commands.call(client_b, {"type": "reevaluate"})
            assert reply == {"ok": True, "moved": 1}
            assert await _routing(db, old) == ("cards", 2)


async def _truthy(value: bool) -> bool:
    return value


async def test_reevaluate_without_an_engine_is_a_conflict_and_moves_nothing(client, db, make_user):
    """No leader: nothing routes in memory, and a future leader keeps the pinned versions, so
    there is nothing to re-evaluate yet (the old answer promised a move that would never come)."""
    _, supervisor = await make_user(Role.SUPERVISOR)
    refused = await client.post("/api/routing/rule-sets/reevaluate", headers=supervisor)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "stays on the rule-set version that routed it" in refused.json()["detail"]
