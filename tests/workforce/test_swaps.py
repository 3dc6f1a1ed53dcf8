"""Shift swaps and time off (issue #13 item 5): an agent asks, the named peer accepts (swaps), a
supervisor approves only when coverage and every contract rule still hold; a refusal names the
short intervals and by how much, and nothing is saved. Agents act only on their own requests."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.errors import Conflict
from switchboard.events import PREFIX, agent_topic
from tests.workforce.swap_floor import local, published_floor, requirement
from workforce import swap_service as swaps
from workforce.schedule_models import Schedule, ScheduledShift
from workforce.swap_models import RequestState, ShiftRequest

MY = "/api/workforce/my/shift-requests"
ALL = "/api/workforce/shift-requests"


async def _shift_rows(db, schedule_id):
    async with db.sessionmaker() as s:
        rows = (
            await s.scalars(select(ScheduledShift).where(ScheduledShift.schedule_id == schedule_id))
        ).all()
        return sorted(((r.agent_id, r.start, r.end) for r in rows), key=lambda r: (r[1], str(r[0])))


async def test_swap_requested_accepted_approved_exchanges_the_shifts(client, db, make_user, redis_handle):
    _, boss = await make_user(Role.SUPERVISOR)
    floor = await published_floor(
        db,
        make_user,
        need=requirement([(0, 9, 17, 1), (1, 9, 17, 1)]),
        shifts={"ann-mon": ("Ann", 0, 9, 17), "bob-tue": ("Bob", 1, 9, 17), "cat-mon": ("Cat", 0, 12, 20)},
    )
    ann, bob, cat = (floor.headers[n] for n in ("Ann", "Bob", "Cat"))
    listener = redis_handle.async_client()
    pubsub = listener.pubsub()
    await pubsub.subscribe(PREFIX + agent_topic(floor.agents["Bob"]))

    asked = await client.post(
        MY,
        json={
            "kind": "swap",
            "shift_id": str(floor.shifts["ann-mon"]),
            "peer_shift_id": str(floor.shifts["bob-tue"]),
        },
        headers=ann,
    )
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert request["state"] == "requested" and request["peer"] == "Bob" and not request["awaits_supervisor"]
    rid = request["id"]

    # Bob is told on his desktop.
    message = None
    for _ in range(50):
        got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if got:
            message = json.loads(got["data"])
            break
        await asyncio.sleep(0.02)
    assert message and message["type"] == "shift_request_changed" and message["state"] == "requested"
    await pubsub.aclose()
    await listener.aclose()

    # Not yet accepted: the supervisor cannot approve it.
    early = await client.post(f"{ALL}/{rid}/approve", headers=boss)
    assert early.status_code == 409 and early.json()["errors"][0]["field"] == "state"

    # Only the parties see it; only the peer accepts; only the requester cancels.
    assert (await client.post(f"{MY}/{rid}/accept", headers=cat)).status_code == 404
    assert (await client.post(f"{MY}/{rid}/cancel", headers=cat)).status_code == 404
    assert (await client.post(f"{MY}/{rid}/accept", headers=ann)).status_code == 403
    assert (await client.post(f"{MY}/{rid}/cancel", headers=bob)).status_code == 403
    assert (await client.post(f"{ALL}/{rid}/approve", headers=ann)).status_code == 403
    assert [r["id"] for r in (await client.get(MY, headers=cat)).json()] == []
    assert [r["id"] for r in (await client.get(MY, headers=bob)).json()] == [rid]

    accepted = await client.post(f"{MY}/{rid}/accept", headers=bob)
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    pending = (await client.get(ALL, headers=boss)).json()
    assert [(r["id"], r["awaits_supervisor"]) for r in pending] == [(rid, True)]

    approved = await client.post(f"{ALL}/{rid}/approve", headers=boss)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    rows = await _shift_rows(db, floor.schedule_id)
    assert (floor.agents["Bob"], local(0, 9), local(0, 17)) in rows
    assert (floor.agents["Ann"], local(1, 9), local(1, 17)) in rows
    assert (await client.get(ALL, headers=boss)).json() == []
    # Every change audited.
    async with db.sessionmaker() as s:
        actions = list(
            await s.scalars(
                select(AuditEntry.action).where(AuditEntry.entity_id == rid).order_by(AuditEntry.id)
            )
        )
        assert actions == ["shift_request.requested", "shift_request.accepted", "shift_request.approved"]
        assert (await s.get(Schedule, floor.schedule_id)).version == 2
    # Decided: nobody acts on it again.
    assert (await client.post(f"{MY}/{rid}/cancel", headers=ann)).status_code == 409


async def test_time_off_refused_when_coverage_breaks_and_approved_when_it_holds(client, db, make_user):
    _, boss = await make_user(Role.SUPERVISOR)
    floor = await published_floor(
        db,
        make_user,
        need=requirement([(0, 9, 17, 1)]),
        shifts={"ann-mon": ("Ann", 0, 9, 17), "cat-mon": ("Cat", 0, 12, 20)},
    )
    ann, cat = floor.headers["Ann"], floor.headers["Cat"]
    whole = await client.post(
        MY, json={"kind": "time_off", "shift_id": str(floor.shifts["ann-mon"])}, headers=ann
    )
    assert whole.status_code == 201, whole.text
    assert whole.json()["awaits_supervisor"] is True
    before = await _shift_rows(db, floor.schedule_id)

    refused = await client.post(f"{ALL}/{whole.json()['id']}/approve", headers=boss)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("coverage-short") and problem["errors"][0]["field"] == "coverage"
    # Ann's 09:00-12:00 is nobody else's: twelve 15-minute intervals, each one agent short.
    intervals = problem["intervals"]
    assert [i["start"] for i in intervals] == [
        (local(0, 9) + timedelta(minutes=15 * k)).isoformat() for k in range(12)
    ]
    assert {(i["required"], i["scheduled"], i["short_by"], i["worse_by"]) for i in intervals} == {
        (1, 0, 1, 1)
    }
    # Nothing saved.
    assert await _shift_rows(db, floor.schedule_id) == before
    # The console page says the same: the short intervals, by how much, nothing saved.
    page = await client.post(
        f"/supervisor/workforce/requests/{whole.json()['id']}/approve",
        headers={**boss, "Accept": "text/html"},
    )
    assert page.status_code == 409 and 'id="short-intervals"' in page.text
    assert page.text.count('<tr><th scope="row">') == 12  # one row per short interval
    assert f'id="request-{whole.json()["id"]}"' in page.text  # still open
    assert await _shift_rows(db, floor.schedule_id) == before
    mine = (await client.get(MY, headers=ann)).json()
    assert [r["state"] for r in mine] == ["requested"]

    # Cat's evening after 17:00 is not needed: time off approved, her shift cut to 12:00-17:00.
    part = await client.post(
        MY,
        json={
            "kind": "time_off",
            "shift_id": str(floor.shifts["cat-mon"]),
            "start": local(0, 17).isoformat(),
            "end": local(0, 20).isoformat(),
        },
        headers=cat,
    )
    assert part.status_code == 201, part.text
    ok = await client.post(f"{ALL}/{part.json()['id']}/approve", headers=boss)
    assert ok.status_code == 200, ok.text
    assert (floor.agents["Cat"], local(0, 12), local(0, 17)) in await _shift_rows(db, floor.schedule_id)

    # The supervisor refuses Ann's instead.
    no = await client.post(
        f"{ALL}/{whole.json()['id']}/refuse", json={"note": "Short that morning"}, headers=boss
    )
    assert no.status_code == 200 and no.json()["state"] == "refused"
    assert no.json()["decision_note"] == "Short that morning"


async def test_swap_refused_when_it_breaks_a_contract_rule(client, db, make_user):
    _, boss = await make_user(Role.SUPERVISOR)
    floor = await published_floor(
        db,
        make_user,
        need=requirement([]),
        shifts={"ann-mon": ("Ann", 0, 9, 17), "ann-tue": ("Ann", 1, 9, 17), "bob-mon": ("Bob", 0, 15, 23)},
        rest_minutes={"Ann": 11 * 60},
    )
    asked = await client.post(
        MY,
        json={
            "kind": "swap",
            "shift_id": str(floor.shifts["ann-mon"]),
            "peer_shift_id": str(floor.shifts["bob-mon"]),
        },
        headers=floor.headers["Ann"],
    )
    rid = asked.json()["id"]
    assert (await client.post(f"{MY}/{rid}/accept", headers=floor.headers["Bob"])).status_code == 200
    before = await _shift_rows(db, floor.schedule_id)
    # Ann would end at 23:00 and start again at 09:00: 10 h, her contract's rest rule needs 11.
    refused = await client.post(f"{ALL}/{rid}/approve", headers=boss)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "agent_id"
    assert "Ann's contract" in refused.json()["detail"] and "rest rule" in refused.json()["detail"]
    assert await _shift_rows(db, floor.schedule_id) == before
    async with db.sessionmaker() as s:
        assert (
            await s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity_id == rid))
            == 2
        )


async def test_bad_requests_name_the_field(client, db, make_user):
    floor = await published_floor(
        db,
        make_user,
        need=requirement([]),
        shifts={"ann-mon": ("Ann", 0, 9, 17), "bob-mon": ("Bob", 0, 9, 17)},
    )
    ann = floor.headers["Ann"]
    # Someone else's shift as mine.
    other = await client.post(
        MY, json={"kind": "time_off", "shift_id": str(floor.shifts["bob-mon"])}, headers=ann
    )
    assert other.status_code == 404 and other.json()["errors"][0]["field"] == "shift_id"
    no_peer = await client.post(
        MY, json={"kind": "swap", "shift_id": str(floor.shifts["ann-mon"])}, headers=ann
    )
    assert no_peer.status_code == 422 and no_peer.json()["errors"][0]["field"] == "peer_shift_id"
    outside = await client.post(
        MY,
        json={
            "kind": "time_off",
            "shift_id": str(floor.shifts["ann-mon"]),
            "start": local(0, 8).isoformat(),
            "end": local(0, 10).isoformat(),
        },
        headers=ann,
    )
    assert outside.status_code == 422 and outside.json()["errors"][0]["field"] == "start"
    first = await client.post(
        MY, json={"kind": "time_off", "shift_id": str(floor.shifts["ann-mon"])}, headers=ann
    )
    assert first.status_code == 201
    again = await client.post(
        MY, json={"kind": "time_off", "shift_id": str(floor.shifts["ann-mon"])}, headers=ann
    )
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "shift_id"


async def test_two_supervisors_approving_at_once_apply_it_once(client, db, make_user):
    """A second approval of a request another supervisor just approved is refused (409), and the
    swap is applied once. (The compare-and-set on the request's version in swap_service._moved
    closes the window between an approval's reads and its write on PostgreSQL; SQLite's
    BEGIN IMMEDIATE serialises the two outright.)"""
    boss, _ = await make_user(Role.SUPERVISOR)
    floor = await published_floor(
        db,
        make_user,
        need=requirement([]),
        shifts={"ann-mon": ("Ann", 0, 9, 17), "bob-tue": ("Bob", 1, 9, 17)},
    )
    asked = await client.post(
        MY,
        json={
            "kind": "swap",
            "shift_id": str(floor.shifts["ann-mon"]),
            "peer_shift_id": str(floor.shifts["bob-tue"]),
        },
        headers=floor.headers["Ann"],
    )
    rid = uuid.UUID(asked.json()["id"])
    assert (await client.post(f"{MY}/{rid}/accept", headers=floor.headers["Bob"])).status_code == 200
    async with db.sessionmaker() as late:
        stale = await late.get(ShiftRequest, rid)
        assert stale is not None and stale.state == RequestState.ACCEPTED
        await late.commit()
        async with db.sessionmaker() as first:
            await swaps.approve(first, request_id=rid, actor_id=boss.id)
            await first.commit()
        with pytest.raises(Conflict):
            await swaps.approve(late, request_id=rid, actor_id=boss.id)
        await late.rollback()
    ann, bob = floor.agents["Ann"], floor.agents["Bob"]
    assert await _shift_rows(db, floor.schedule_id) == [
        (bob, local(0, 9), local(0, 17)),
        (ann, local(1, 9), local(1, 17)),
    ]
