"""Issue #11 item 1: the wallboard's per-queue colours (API and queue page: validated, role-checked,
audited before -> after, nothing half-saved), the recorder's samples (occupancy today as Genesys
defines it, arrivals and peak waiting per 15 minutes) and service level today / last 30 minutes
from the interval rows, as the floor renders them."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from console import recorder
from console.floor import load_snapshot, view
from console.thresholds import QueueThreshold
from console.wallboard_history import load_history
from customers.models import ValueTier
from interactions.states import Channel, State
from routing.history import bump
from routing.host import stats_key
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.db import utcnow
from tests.factories import make_agent, make_customer, make_interaction, make_queue
from workforce.models import Presence

PROBLEM = "application/problem+json"


def fields_of(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


async def _audit(db: Any) -> list[AuditEntry]:
    async with db.sessionmaker() as s:
        query = select(AuditEntry).where(AuditEntry.action == "queue.thresholds_updated")
        return list((await s.scalars(query)).all())


async def test_queue_colours_api_validates_checks_roles_and_audits(db, client, make_user):
    _, agent = await make_user(Role.AGENT)
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_queue(s, "cards", channels=[], sl_target_percent=80, sl_threshold_seconds=20)

    defaults = await client.get("/api/queue-thresholds/cards", headers=sup)
    assert defaults.status_code == 200
    assert defaults.json() == {
        "queue": "cards",
        "wait_warning_seconds": 20,
        "wait_critical_seconds": 40,
        "sl_warning_percent": 80,
        "sl_critical_percent": 70,
        "custom": False,
    }
    body = {
        "wait_warning_seconds": 30,
        "wait_critical_seconds": 90,
        "sl_warning_percent": 85,
        "sl_critical_percent": 75,
    }
    assert (await client.put("/api/queue-thresholds/cards", json=body)).status_code == 401
    refused = await client.put("/api/queue-thresholds/cards", json=body, headers=agent)
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM

    backwards = await client.put(
        "/api/queue-thresholds/cards", json={**body, "wait_critical_seconds": 30}, headers=sup
    )
    assert backwards.status_code == 422 and backwards.headers["content-type"] == PROBLEM
    assert fields_of(backwards) == ["body.wait_critical_seconds"]
    sl_backwards = await client.put(
        "/api/queue-thresholds/cards", json={**body, "sl_critical_percent": 90}, headers=sup
    )
    assert sl_backwards.status_code == 422 and fields_of(sl_backwards) == ["body.sl_critical_percent"]
    unknown = await client.put("/api/queue-thresholds/nope", json=body, headers=sup)
    assert unknown.status_code == 404
    async with db.sessionmaker() as s:  # nothing half-saved, nothing audited
        assert await s.scalar(select(func.count()).select_from(QueueThreshold)) == 0
    assert await _audit(db) == []

    saved = await client.put("/api/queue-thresholds/cards", json=body, headers=sup)
    assert saved.status_code == 200 and saved.json() == {"queue": "cards", **body, "custom": True}
    (entry,) = await _audit(db)
    assert entry.data["before"]["wait_warning_seconds"] == 20 and entry.data["before"]["custom"] is False
    assert entry.data["after"] == {**body, "custom": True}
    listed = await client.get("/api/queue-thresholds", headers=sup)
    assert listed.json()["items"] == [{"queue": "cards", **body, "custom": True}]


async def test_queue_page_saves_colours_and_refuses_them_out_of_order(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        q = await make_queue(s, "loans", channels=[])
    page = await client.get("/supervisor/queues", headers=sup)
    assert f'action="/supervisor/queues/{q.id}/thresholds"' in page.text
    form = {  # a bearer token, not the session cookie: no CSRF token needed
        "wait_warning_seconds": "60",
        "wait_critical_seconds": "120",
        "sl_warning_percent": "90",
        "sl_critical_percent": "95",
    }
    refused = await client.post(f"/supervisor/queues/{q.id}/thresholds", data=form, headers=sup)
    assert refused.status_code == 422 and fields_of(refused) == ["sl_critical_percent"]
    form["sl_critical_percent"] = "80"
    saved = await client.post(f"/supervisor/queues/{q.id}/thresholds", data=form, headers=sup)
    assert saved.status_code == 303 and "what=thresholds" in saved.headers["location"]
    after = await client.get(saved.headers["location"], headers=sup)
    assert "Loans: wallboard colours saved." in after.text
    assert f'id="wait-warning-{q.id}" name="wait_warning_seconds" type="number"' in after.text
    assert re.search(rf'id="sl-critical-{q.id}"[^>]*value="80"', after.text)
    (entry,) = await _audit(db)
    assert entry.data["after"]["sl_critical_percent"] == 80


async def test_recorder_occupancy_arrivals_waiting_and_service_levels(
    db, redis_handle, redis_sync, make_user
):
    client = redis_handle.async_client()
    users = [(await make_user(Role.AGENT))[0] for _ in range(3)]
    now = utcnow()
    await client.delete(
        recorder.LAST_KEY,
        recorder.MARK_KEY,
        recorder.occupancy_key(now.date()),
        recorder.interval_key("arrivals", now),
        recorder.interval_key("waiting", now),
    )
    for k in redis_sync.scan_iter("wallboard:*"):
        redis_sync.delete(k)
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards", channels=[], sl_target_percent=80, sl_threshold_seconds=20)
        working, idle, away = [
            await make_agent(s, user, name=name, presence=presence, teams=[team], queues=[cards])
            for user, name, presence, team in (
                (users[0], "Wes Working", Presence.AVAILABLE, "north"),
                (users[1], "Ida Idle", Presence.AVAILABLE, "south"),
                (users[2], "Al Away", Presence.BREAK, "north"),
            )
        ]
        gold = await make_customer(s, bare=True, display_name="Gil Gold", value_tier=ValueTier.GOLD)
        await make_interaction(
            s, customer=gold, channel=Channel.CHAT, state=State.CONNECTED, agent=working, queue=cards,
            queued_at=now - timedelta(seconds=4), event=False,
        )  # fmt: skip
        # Two answered in time and one late in the current interval; the one before it all late.
        await bump(s, queue="cards", at=now, accepted=3, answered_within_sl=2)
        await bump(s, queue="cards", at=now - timedelta(minutes=15), accepted=1)
        await s.commit()
    await client.set(stats_key(), json.dumps({"queues": {"cards": {"waiting": 7}}}))
    await client.set(recorder.MARK_KEY, (now - timedelta(seconds=10)).isoformat())

    async with db.sessionmaker() as s:
        counted = await recorder.sample(s, client, now=now, elapsed=5.0)
        await s.commit()
    assert counted == {"agents": 2, "arrivals": 1}  # on queue: the two available; break is not
    await client.set(stats_key(), json.dumps({"queues": {"cards": {"waiting": 3}}}))
    async with db.sessionmaker() as s:
        await recorder.sample(s, client, now=now + timedelta(seconds=1), elapsed=5.0)
        await s.commit()

    occupancy = await recorder.occupancy_of(client, [working.id, idle.id, away.id], day=now.date())
    assert occupancy == {working.id: 1.0, idle.id: 0.0}  # the agent on break was never on queue

    async with db.sessionmaker() as s:
        history = await load_history(s, client, now=now)
        snap = await load_snapshot(s)
    assert history.sl_today("cards") == 2 / 4 and history.sl_last_30("cards") == 2 / 4
    chart = history.chart(["cards"])
    assert chart["arrivals"][-1] == 1 and chart["waiting"][-1] == 7  # the interval's peak
    assert chart["service_level"][-1] == round(2 / 3 * 100, 1) and chart["service_level"][-2] == 0.0

    floor = view(snap, now=now, team="north", occupancy=occupancy)
    assert [a.display_name for a in floor.agents] == ["Wes Working", "Al Away"] or [
        a.display_name for a in floor.agents
    ] == ["Al Away", "Wes Working"]
    wes = next(a for a in floor.agents if a.display_name == "Wes Working")
    assert [(w.channel, w.tier) for w in wes.work] == [("chat", "gold")] and wes.occupancy == 1.0
    assert [q.name for q in floor.queues] == ["cards"] and floor.queues[0].staffed == 2
    assert view(snap, now=now, team="nobody").queues == []
    await client.aclose()
