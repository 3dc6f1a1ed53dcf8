"""``Idempotency-Key`` across real app processes and an engine fail-over (PostgreSQL + Redis).

The client's create reaches the engine leader; the leader is killed with SIGKILL; the client's
retries (the same key) go to the other process, at once and concurrently. They answer the first
interaction; SQL holds exactly one, and the new leader has it queued (neither lost nor doubled).
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
from sqlalchemy import func, select

from interactions.models import IdempotencyKey, Interaction
from interactions.states import State
from switchboard.auth.models import Role
from switchboard.auth.service import token_for
from switchboard.db import Database
from tests.factories import make_queue, make_staff_user
from tests.helpers import eventually, truncate_all
from tests.live_app import free_port, live_settings, start_app, stop_app

SUBJECT = "retried across a fail-over"


async def _role(client: httpx.AsyncClient, base: str) -> str | None:
    try:
        return (await client.get(f"{base}/readyz", timeout=2)).json().get("routing_engine")
    except (httpx.HTTPError, ValueError):
        return None


async def test_a_retry_after_the_leader_is_killed_answers_the_same_interaction(
    postgres_url, redis_handle, redis_sync, tmp_path
):
    settings = live_settings(postgres_url, redis_handle.url, tmp_path, name="idem")
    db = Database(postgres_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        supervisor = await make_staff_user(s, Role.SUPERVISOR, name="Sup", username="sup", password=None)
        await make_queue(s, "cards", channels=["chat"])
    headers = {
        "Authorization": f"Bearer {token_for(supervisor, settings)[0]}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    body = {
        "channel": "chat",
        "queue": "cards",
        "identity": {"kind": "phone", "value": "+447400111222"},
        "subject": SUBJECT,
    }

    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [
        start_app(p, settings, b, tmp_path / f"app{i}.log")
        for i, (p, b) in enumerate(zip(ports, bases, strict=True))
    ]
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            async def both_ready() -> bool:
                roles = [await _role(client, b) for b in bases]
                return sorted(r or "" for r in roles) == ["leader", "standby"]

            await eventually(both_ready, within=60, what="a leader and a standby")
            leader = [await _role(client, b) for b in bases].index("leader")
            standby = 1 - leader

            first = await client.post(f"{bases[leader]}/api/interactions", json=body, headers=headers)
            assert first.status_code == 201, first.text
            os.kill(procs[leader].pid, signal.SIGKILL)  # the answer may never have reached the client
            procs[leader].wait(timeout=10)

            retries = await asyncio.gather(
                *(
                    client.post(f"{bases[standby]}/api/interactions", json=body, headers=headers)
                    for _ in range(3)
                )
            )
            for retry in retries:
                assert retry.status_code == 201, retry.text
                assert retry.headers["idempotent-replayed"] == "true"
                assert retry.json()["id"] == first.json()["id"]

            await eventually(lambda: _is_leader(client, bases[standby]), within=30, what="the take-over")
            again = await client.post(f"{bases[standby]}/api/interactions", json=body, headers=headers)
            assert again.status_code == 201 and again.json()["id"] == first.json()["id"]

        async with db.sessionmaker() as s:
            rows = (
                await s.execute(
                    select(Interaction.id, Interaction.state).where(Interaction.subject == SUBJECT)
                )
            ).all()
            keys = await s.scalar(select(func.count()).select_from(IdempotencyKey))
        assert [(str(i), st) for i, st in rows] == [(first.json()["id"], State.QUEUED)]
        assert keys == 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_app(proc)
        await db.dispose()


async def _is_leader(client: httpx.AsyncClient, base: str) -> bool:
    return await _role(client, base) == "leader"
