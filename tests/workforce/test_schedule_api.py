"""Schedules through the API (issue #13 item 3): templates and contracts, auto-scheduling against a
requirement (given, or the forecast's), hand edits refused with the problem named and nothing
saved, coverage recalculated at once, and publishing telling agents on their desktop."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.events import PREFIX, agent_topic
from tests.factories import make_agent
from tests.workforce.history import HORIZON, seed_history
from tests.workforce.schedule_week import MONDAY, local, requirement
from workforce.schedule_models import ScheduledShift

DAY = {"name": "day", "earliest_start_minute": 540, "latest_start_minute": 540, "length_minutes": 480}


async def floor(db, client, headers, agents: int = 2):
    assert (await client.post("/api/workforce/shift-templates", json=DAY, headers=headers)).status_code == 201
    ids = []
    async with db.sessionmaker() as s:
        for i in range(agents):
            ids.append((await make_agent(s, name=f"Agent {i}")).id)
    for agent_id in ids:
        put = await client.put(
            f"/api/workforce/agents/{agent_id}/contract",
            json={"max_minutes_week": 2400, "min_rest_minutes": 660},
            headers=headers,
        )
        assert put.status_code == 200, put.text
    return ids


async def test_auto_schedule_edit_and_publish(client, db, make_user, redis_handle, redis_sync):
    _, headers = await make_user(Role.SUPERVISOR)
    agents = await floor(db, client, headers)
    need = requirement(2, [(0, 9, 17, 2), (1, 9, 17, 1)])
    created = await client.post(
        "/api/workforce/schedules",
        json={"first_day": MONDAY.isoformat(), "days": 2, "requirement": need, "time_limit_seconds": 10},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft" and body["shortfall_total"] == 0 and len(body["shifts"]) == 3
    assert [i["scheduled"] for i in body["intervals"]] == need
    schedule = body["id"]
    tuesday = next(s for s in body["shifts"] if s["start"].startswith("2027-01-05"))

    # An overlapping shift for the same agent: 409 naming the start, nothing saved.
    async with db.sessionmaker() as s:
        before = await s.scalar(select(func.count()).select_from(ScheduledShift))
    overlap = await client.post(
        f"/api/workforce/schedules/{schedule}/shifts",
        json={
            "agent_id": tuesday["agent_id"],
            "start": local(MONDAY + timedelta(days=1), 12).isoformat(),
            "end": local(MONDAY + timedelta(days=1), 20).isoformat(),
        },
        headers=headers,
    )
    assert overlap.status_code == 409 and overlap.json()["errors"][0]["field"] == "start"
    # Moving the same agent's Monday shift to 15:00-23:00 leaves 10 h before Tuesday's 09:00 start:
    # the 11-hour rest rule refuses it.
    monday = next(
        s
        for s in body["shifts"]
        if s["agent_id"] == tuesday["agent_id"] and s["start"].startswith("2027-01-04")
    )
    rest = await client.patch(
        f"/api/workforce/schedules/{schedule}/shifts/{monday['id']}",
        json={"start": local(MONDAY, 15).isoformat(), "end": local(MONDAY, 23).isoformat()},
        headers=headers,
    )
    assert rest.status_code == 422, rest.text
    assert rest.json()["errors"][0]["field"] == "end" and "rest rule" in rest.json()["detail"]
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(ScheduledShift)) == before
    unchanged = (await client.get(f"/api/workforce/schedules/{schedule}", headers=headers)).json()
    assert unchanged["version"] == body["version"] and unchanged["shortfall_total"] == 0

    # Moving Tuesday's shift an hour later: coverage recalculated in the answer (09:00-10:00 short).
    moved = await client.patch(
        f"/api/workforce/schedules/{schedule}/shifts/{tuesday['id']}",
        json={
            "start": local(MONDAY + timedelta(days=1), 10).isoformat(),
            "end": local(MONDAY + timedelta(days=1), 18).isoformat(),
        },
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["shortfall_total"] == 4 and moved.json()["version"] == body["version"] + 1

    # Publishing tells each agent with shifts on their desktop's topic.
    listener = redis_handle.async_client()
    pubsub = listener.pubsub()
    await pubsub.subscribe(*(PREFIX + agent_topic(a) for a in agents))
    published = await client.post(f"/api/workforce/schedules/{schedule}/publish", headers=headers)
    assert published.status_code == 200 and published.json()["status"] == "published"
    told = []
    async with asyncio.timeout(5):
        while len(told) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message:
                told.append(json.loads(message["data"]))
    assert {m["type"] for m in told} == {"schedule_published"}
    assert any(m["summary"].startswith("2 shifts from Mon 04 Jan 09:00") for m in told)
    await pubsub.aclose()
    async with db.sessionmaker() as s:
        actions = set(
            (await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "schedule"))).all()
        )
    assert {"schedule.created", "schedule.shift_moved", "schedule.published"} <= actions


async def test_requirement_from_the_forecast(client, db, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    await seed_history(db)
    await floor(db, client, headers, agents=6)
    created = await client.post(
        "/api/workforce/schedules",
        json={
            "first_day": HORIZON.isoformat(),
            "days": 1,
            "queue": "cards",
            "channel": "voice",
            "time_limit_seconds": 10,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["queue"] == "cards" and max(i["required"] for i in body["intervals"]) >= 2
    assert body["shortfall_total"] < sum(i["required"] for i in body["intervals"])


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({**DAY, "latest_start_minute": 500}, "latest_start_minute"),
        ({**DAY, "length_minutes": 470}, "length_minutes"),
        ({**DAY, "breaks": [{"minutes": 30, "earliest_after": 460, "latest_after": 470}]}, "breaks.0"),
    ],
)
async def test_bad_template_is_422_naming_the_field(client, db, make_user, template, field):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/workforce/shift-templates", json=template, headers=headers)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == field


async def test_bad_schedule_requests_are_422(client, db, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    await floor(db, client, headers, agents=1)
    short = await client.post(
        "/api/workforce/schedules",
        json={"first_day": MONDAY.isoformat(), "days": 1, "requirement": [1, 2, 3]},
        headers=headers,
    )
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "requirement"
    neither = await client.post(
        "/api/workforce/schedules", json={"first_day": MONDAY.isoformat(), "days": 1}, headers=headers
    )
    assert neither.status_code == 422 and neither.json()["errors"][0]["field"] == "queue"
    too_long = await client.post(
        "/api/workforce/schedules", json={"first_day": MONDAY.isoformat(), "days": 60}, headers=headers
    )
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"].endswith("days")


async def test_hand_edits_keep_the_contract_s_availability_and_working_days(client, db, make_user):
    """What the auto-scheduler keeps, a hand edit keeps too: a shift outside the agent's availability
    or one working day too many in the week is 422 naming the rule, and nothing is saved."""
    _, headers = await make_user(Role.SUPERVISOR)
    (agent,) = await floor(db, client, headers, agents=1)
    weekdays = {str(d): [[8 * 60, 18 * 60]] for d in range(5)}  # Monday to Friday, 08:00-18:00
    put = await client.put(
        f"/api/workforce/agents/{agent}/contract",
        json={
            "max_minutes_week": 2400,
            "min_rest_minutes": 660,
            "max_days_week": 2,
            "availability": weekdays,
        },
        headers=headers,
    )
    assert put.status_code == 200, put.text
    created = await client.post(
        "/api/workforce/schedules",
        json={"first_day": MONDAY.isoformat(), "days": 7, "requirement": requirement(7, [])},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    shifts = f"/api/workforce/schedules/{created.json()['id']}/shifts"

    def shift(day: int, first: int, last: int) -> dict[str, str]:
        on = MONDAY + timedelta(days=day)
        return {
            "agent_id": str(agent),
            "start": local(on, first).isoformat(),
            "end": local(on, last).isoformat(),
        }

    saturday = await client.post(shifts, json=shift(5, 9, 17), headers=headers)
    assert saturday.status_code == 422, saturday.text
    assert saturday.json()["errors"][0]["field"] == "start"
    assert "availability on Saturdays (not available that day)" in saturday.json()["detail"]
    late = await client.post(shifts, json=shift(0, 12, 20), headers=headers)  # ends after 18:00
    assert late.status_code == 422 and "availability on Mondays (08:00-18:00)" in late.json()["detail"]

    for day in (0, 1):
        ok = await client.post(shifts, json=shift(day, 9, 17), headers=headers)
        assert ok.status_code == 201, ok.text
    third = await client.post(shifts, json=shift(3, 9, 17), headers=headers)
    assert third.status_code == 422 and third.json()["errors"][0]["field"] == "start"
    assert "3 working days in that week; the contract allows 2" in third.json()["detail"]
    # Moving one of the two days to another weekday is still two days: allowed.
    first = next(
        s
        for s in (
            await client.get(f"/api/workforce/schedules/{created.json()['id']}", headers=headers)
        ).json()["shifts"]
        if s["start"].startswith(MONDAY.isoformat())
    )
    thursday = {k: v for k, v in shift(3, 9, 17).items() if k != "agent_id"}
    moved = await client.patch(f"{shifts}/{first['id']}", json=thursday, headers=headers)
    assert moved.status_code == 200, moved.text
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(ScheduledShift)) == 2
