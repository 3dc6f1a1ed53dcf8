"""The customer journey (issue #12 item 4): one customer's line across channels, and a topic's
funnel, paths, first-contact resolution and repeat rate, on a small history whose every figure is
worked out by hand below."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select

from experience.journey import topic_journeys
from experience.resolution_rollup import ResolutionDaily, rebuild_resolution, resolution_between
from interactions.states import Channel
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.db import utcnow
from tests.experience.journey_history import lost_card_history

VOICE, CHAT, EMAIL = Channel.VOICE, Channel.CHAT, Channel.EMAIL


async def test_a_topics_funnel_paths_and_first_contact_resolution(db, client, make_user):
    await lost_card_history(db)
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get(
        "/api/experience/journeys", params={"topic": "lost_card", "days": 30}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["funnel"] == {
        "started": 4,
        "reached_agent": 3,
        "resolved_first_time": 1,
        "repeated": 2,
        "still_open": 1,
    }
    assert {tuple(p["path"]): (p["journeys"], p["dropped"]) for p in body["paths"]} == {
        ("voice",): (2, 0),
        ("chat", "voice"): (1, 0),
        ("voice", "chat"): (1, 0),
    }
    agents = {r["name"]: r for r in body["agents"]}
    # Xena: A's voice, B, C's chat; none followed by a repeat; two of them are repeats themselves.
    assert (agents["Xena"]["handled"], agents["Xena"]["judged"], agents["Xena"]["resolved_first_time"]) == (
        3,
        3,
        3,
    )
    assert agents["Xena"]["repeats"] == 2 and agents["Xena"]["first_contact_resolution"] == 1.0
    # Yusuf: C's voice was repeated by chat two days later; D's is too young to judge.
    assert (
        agents["Yusuf"]["handled"],
        agents["Yusuf"]["judged"],
        agents["Yusuf"]["resolved_first_time"],
    ) == (2, 1, 0)
    assert agents["Yusuf"]["first_contact_resolution"] == 0.0
    (queue,) = body["queues"]
    assert (queue["name"], queue["received"], queue["handled"], queue["judged"]) == ("cards", 6, 5, 4)
    assert (queue["resolved_first_time"], queue["repeats"]) == (3, 2)
    assert queue["repeat_contact_rate"] == 2 / 6
    assert body["topics"] == ["lost_card", "mortgage"]

    # Every topic: the mortgage contact is one more journey, resolved first time.
    every = (await client.get("/api/experience/journeys", params={"days": 30}, headers=headers)).json()
    assert every["funnel"]["started"] == 5 and every["funnel"]["resolved_first_time"] == 2
    # The tier and segment are the customer's: only A is gold, and a senior.
    for params in ({"tier": "gold"}, {"segment": "senior"}):
        only_a = (await client.get("/api/experience/journeys", params=params, headers=headers)).json()
        assert only_a["funnel"]["started"] == 1 and only_a["paths"][0]["path"] == ["chat", "voice"]
    # A window of 11 days holds only the journeys that started in it (C's second contact is not one).
    recent = (
        await client.get(
            "/api/experience/journeys", params={"days": 11, "topic": "lost_card"}, headers=headers
        )
    ).json()
    assert recent["funnel"]["started"] == 1 and recent["paths"][0]["path"] == ["voice"]


async def test_bad_filters_name_the_field_and_agents_are_refused(db, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    for params, field in (
        ({"days": 0}, "query.days"),
        ({"days": 93}, "query.days"),
        ({"tier": "diamond"}, "query.tier"),
    ):
        response = await client.get("/api/experience/journeys", params=params, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, response.text
    _, agent = await make_user(Role.AGENT)
    assert (await client.get("/api/experience/journeys", headers=agent)).status_code == 403


async def test_a_customers_line_is_in_time_order_with_repeats_and_the_read_is_audited(db, client, make_user):
    ids = await lost_card_history(db)
    supervisor, headers = await make_user(Role.SUPERVISOR)
    response = await client.get(f"/api/customers/{ids['a']}/journey", headers=headers)
    assert response.status_code == 200, response.text
    line = response.json()
    assert [(t["channel"], t["outcome"], t["reached_agent"], t["agent"]) for t in line] == [
        ("chat", "abandoned", False, None),
        ("voice", "resolved", True, ids["x"]),
    ]
    assert line[0]["repeat_of"] is None and line[1]["repeat_of"] == line[0]["interaction_id"]
    async with db.sessionmaker() as s:
        audited = (await s.scalars(select(AuditEntry).where(AuditEntry.entity_id == str(ids["a"])))).all()
    assert [(e.action, e.actor_id, e.data["what"]) for e in audited] == [
        ("customer.read", supervisor.id, "journey")
    ]

    _, agent = await make_user(Role.AGENT)
    assert (await client.get(f"/api/customers/{ids['a']}/journey", headers=agent)).status_code == 403
    missing = await client.get("/api/customers/00000000-0000-0000-0000-000000000000/journey", headers=headers)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "customer_id"


async def test_the_page_shows_the_funnel_and_exports_every_table(db, client, make_user):
    await lost_card_history(db)
    _, headers = await make_user(Role.SUPERVISOR)
    page = await client.get("/supervisor/journeys", params={"topic": "lost_card"}, headers=headers)
    assert page.status_code == 200, page.text
    assert 'id="journey-funnel-chart"' in page.text and "Voice → Chat" in page.text
    exported = await client.get(
        "/supervisor/journeys", params={"topic": "lost_card", "export": "agents"}, headers=headers
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:2] == ["name", "received"]
    assert sorted(r[0] for r in rows[1:]) == ["Xena", "Yusuf"]
    for table, first in (("funnel", ["started", "4"]), ("paths", ["Voice", "2", "0"]), ("queues", None)):
        got = await client.get(
            "/supervisor/journeys", params={"topic": "lost_card", "export": table}, headers=headers
        )
        assert got.status_code == 200
        if first is not None:
            assert list(csv.reader(io.StringIO(got.text)))[1] == first


async def test_the_daily_rollup_sums_to_the_direct_computation_and_is_idempotent(db):
    await lost_card_history(db)
    now = utcnow()
    async with db.sessionmaker() as s:
        await rebuild_resolution(s, now=now)  # the first run backfills
        before = (await s.execute(select(ResolutionDaily.__table__).order_by("day", "scope", "key"))).all()
        await rebuild_resolution(s, now=now)  # later runs rebuild the last days: the same rows
        after = (await s.execute(select(ResolutionDaily.__table__).order_by("day", "scope", "key"))).all()
        assert before == after and len(before) == 13  # a queue row per contact day, 6 agent rows
        rolled = await resolution_between(s, (now - timedelta(days=30)).date(), now.date())
        direct = await topic_journeys(s, since=now - timedelta(days=30), until=now, now=now)
    assert {r.name: vars_of(r) for r in rolled[0]} == {r.name: vars_of(r) for r in direct.queues}
    assert {r.name: vars_of(r) for r in rolled[1]} == {r.name: vars_of(r) for r in direct.agents}


def vars_of(row):
    return (row.received, row.handled, row.judged, row.resolved_first_time, row.repeats)


async def test_the_experience_dashboard_shows_first_contact_resolution(db, client, make_user):
    await lost_card_history(db)
    async with db.sessionmaker() as s:
        await rebuild_resolution(s, now=utcnow())
    _, headers = await make_user(Role.SUPERVISOR)
    today = utcnow().date()
    page = await client.get(
        "/supervisor/experience",
        params={"from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()},
        headers=headers,
    )
    assert page.status_code == 200, page.text
    queues = page.text[page.text.index('id="experience-fcr-queues"') :]
    # cards: 7 contacts (the mortgage one too), 5 judged, 4 resolved first time (80 %), 2 repeats.
    assert '<th scope="row">cards</th><td>7</td><td>5</td>' in queues and "80.0 %" in queues
