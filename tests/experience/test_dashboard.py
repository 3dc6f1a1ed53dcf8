"""The experience dashboard (issue #12 item 2): rollup figures equal a direct computation over the
raw rows and do not change when the rollup runs again; agents' EX of a group under the minimum
size is never shown; every table exports as CSV; bad filters are a 422 naming the field."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, func, select

from customers.models import ValueTier
from experience.dashboard_models import ExperienceDaily, ExperienceRespondent, ExperienceTagDaily
from experience.jobs import experience_rollup_job
from experience.rollup import run_rollup
from interactions.feedback_models import CustomerFeedback
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.states import Channel, State
from routing.history import bump
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import make_agent, make_customer, make_interaction, make_queue

PROBLEM_JSON = "application/problem+json"
DAY1 = date(2026, 3, 2)
DAY2 = date(2026, 3, 3)
RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def _world(session) -> dict:
    """Team alpha: 6 agents who all answer pulses; team beta: 2 agents (under the minimum).
    Customers gold and standard; CSAT/NPS/CES answers; pulses tagged "system slow" on some
    interactions; service level below target on DAY1 in cards, met on DAY2."""
    cards = await make_queue(session, "cards", sl_target_percent=80)
    loans = await make_queue(session, "loans", sl_target_percent=80)
    alpha = [await make_agent(session, name=f"Alpha {n}", teams=["alpha"]) for n in range(6)]
    beta = [await make_agent(session, name=f"Beta {n}", teams=["beta"]) for n in range(2)]
    gold = await make_customer(session, value_tier=ValueTier.GOLD)
    standard = await make_customer(session, value_tier=ValueTier.STANDARD)
    n = 0
    for day in (DAY1, DAY2):
        for agent in alpha + beta:
            n += 1
            queue = cards if agent in alpha else loans
            customer = gold if n % 3 == 0 else standard
            interaction = await make_interaction(
                session, customer=customer, agent=agent, channel=Channel.VOICE if n % 2 else Channel.CHAT
            )
            interaction.queue_id, interaction.state = queue.id, State.COMPLETED
            session.add(
                CustomerFeedback(
                    interaction_id=interaction.id,
                    customer_id=customer.id,
                    csat=1 + n % 5,
                    nps=(n * 3) % 11,
                    ces=1 + n % 7 if n % 4 else None,
                    created_at=_at(day, 11),
                )
            )
            session.add(
                AgentPulse(
                    agent_id=agent.id,
                    interaction_id=interaction.id,
                    kind=PulseKind.INTERACTION,
                    score=1 + (n * 2) % 5,
                    tags=["system slow"] if n % 3 == 1 else ["great teamwork"],
                    queue=queue.name,
                    team=agent.teams[0],
                    day=day,
                    created_at=_at(day, 12),
                )
            )
            session.add(
                AgentPulse(
                    agent_id=agent.id,
                    interaction_id=None,
                    kind=PulseKind.SHIFT,
                    score=1 + n % 5,
                    workload=1 + (n + 1) % 5,
                    tags=[],
                    team=agent.teams[0],
                    day=day,
                    created_at=_at(day, 18),
                )
            )
    # cards: 50 % within target on DAY1 (below 80 %), 90 % on DAY2; loans 100 % both days.
    await bump(session, queue="cards", at=_at(DAY1), accepted=10, answered_within_sl=5)
    await bump(session, queue="cards", at=_at(DAY2), accepted=10, answered_within_sl=9)
    await bump(session, queue="loans", at=_at(DAY1), accepted=4, answered_within_sl=4)
    await bump(session, queue="loans", at=_at(DAY2), accepted=4, answered_within_sl=4)
    await session.commit()
    return {"alpha": alpha, "beta": beta, "cards": cards, "gold": gold}


async def _snapshot(session) -> list[tuple]:
    rows = []
    for model in (ExperienceDaily, ExperienceRespondent, ExperienceTagDaily):
        found = (await session.execute(select(model.__table__))).all()
        rows.append(sorted(tuple(str(v) for v in r) for r in found))
    await session.commit()
    return rows


async def _raw_team_figures(session) -> dict[str, dict]:
    """CSAT and pulse averages per home team straight from the raw rows (the reference)."""
    out: dict[str, dict] = {}
    feedback = (await session.execute(select(CustomerFeedback))).scalars().all()
    pulses = (await session.execute(select(AgentPulse))).scalars().all()
    await session.commit()
    from interactions.models import Interaction
    from workforce.models import Agent

    teams = {a.id: a.teams[0] for a in (await session.scalars(select(Agent))).all()}
    agent_of = {i.id: i.agent_id for i in (await session.scalars(select(Interaction))).all()}
    await session.commit()
    for f in feedback:
        team = teams[agent_of[f.interaction_id]]
        bucket = out.setdefault(team, {"csat": [], "nps": [], "pulse": [], "energy": []})
        bucket["csat"].append(f.csat)
        bucket["nps"].append(f.nps)
    for p in pulses:
        out[p.team]["pulse" if p.kind is PulseKind.INTERACTION else "energy"].append(p.score)
    return out


async def test_rollup_equals_the_raw_rows_and_running_it_again_changes_nothing(
    app, client, db: Database, session, make_user
):
    await _world(session)
    first = await run_rollup(session)
    assert first.days == 2 and first.ranges == [(DAY1, DAY2)]
    before = await _snapshot(session)
    again = await run_rollup(session)  # incremental: nothing new since the watermark
    assert again.days == 0
    assert await _snapshot(session) == before
    rebuilt = await run_rollup(session, full=True)  # every day rebuilt from scratch: the same rows
    assert rebuilt.days == 2
    assert await _snapshot(session) == before

    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get(
        "/api/experience/summary", params={**RANGE, "dimension": "team"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    raw = await _raw_team_figures(session)
    by_team = {row["key"]: row for row in body["rows"]}
    assert set(by_team) == {"alpha", "beta"}
    for team, figures in raw.items():
        cx = by_team[team]["cx"]
        assert cx["csat_n"] == len(figures["csat"])
        assert cx["csat"] == round(sum(figures["csat"]) / len(figures["csat"]), 2)
        promoters = sum(1 for v in figures["nps"] if v >= 9)
        detractors = sum(1 for v in figures["nps"] if v <= 6)
        assert cx["nps"] == round(100 * (promoters - detractors) / len(figures["nps"]), 1)
    alpha = by_team["alpha"]["ex"]
    assert alpha["shown"] and alpha["respondents"] == 6
    assert alpha["pulse_n"] == len(raw["alpha"]["pulse"])
    assert alpha["pulse"] == round(sum(raw["alpha"]["pulse"]) / len(raw["alpha"]["pulse"]), 2)
    assert alpha["energy"] == round(sum(raw["alpha"]["energy"]) / len(raw["alpha"]["energy"]), 2)
    total = body["total"]
    assert total["cx"]["csat_n"] == 16 and total["ex"]["respondents"] == 8

    # The job wrapper (what the worker runs) is idempotent too.
    experience_rollup_job(db.url, db.schema)
    assert await _snapshot(session) == before


async def test_new_answers_reach_the_rollup_on_the_next_run(app, client, db, session, make_user):
    world = await _world(session)
    await run_rollup(session)
    later = DAY2 + timedelta(days=3)
    interaction = await make_interaction(session, customer=world["gold"], agent=world["alpha"][0])
    session.add(
        CustomerFeedback(
            interaction_id=interaction.id, customer_id=world["gold"].id, csat=5, created_at=datetime.now(UTC)
        )
    )
    await session.commit()
    result = await run_rollup(session)
    assert result.days == 1  # only today's answers (and the overlap's) are rebuilt
    _, headers = await make_user(Role.SUPERVISOR)
    today = datetime.now(UTC).date()
    body = (
        await client.get(
            "/api/experience/summary",
            params={
                "from": (today - timedelta(days=1)).isoformat(),
                "to": today.isoformat(),
                "dimension": "tier",
            },
            headers=headers,
        )
    ).json()
    assert [(r["key"], r["cx"]["csat_n"], r["cx"]["csat"]) for r in body["rows"]] == [("gold", 1, 5.0)]
    assert later  # the first run's days are untouched
    count = await session.scalar(
        select(func.count()).select_from(ExperienceDaily).where(ExperienceDaily.day == DAY1)
    )
    await session.commit()
    assert count and count > 0


async def test_ex_of_a_group_under_five_is_not_shown(app, client, session, make_user):
    world = await _world(session)
    await run_rollup(session)
    _, headers = await make_user(Role.SUPERVISOR)
    teams = (
        await client.get("/api/experience/summary", params={**RANGE, "dimension": "team"}, headers=headers)
    ).json()
    beta = next(r for r in teams["rows"] if r["key"] == "beta")
    assert beta["ex"] == {
        "shown": False,
        "note": "fewer than 5 responses from different agents",
        "respondents": None,
        "pulse_n": None,
        "pulse": None,
        "shift_n": None,
        "energy": None,
        "workload": None,
    }
    assert beta["cx"]["csat_n"] == 4  # customers' answers about the team are still shown

    # Per agent EX is never shown (a group of one), whatever the agent's number of pulses.
    agents = (
        await client.get("/api/experience/summary", params={**RANGE, "dimension": "agent"}, headers=headers)
    ).json()
    assert len(agents["rows"]) == 8
    assert all(not r["ex"]["shown"] and r["ex"]["pulse"] is None for r in agents["rows"])
    names = {r["label"] for r in agents["rows"]}
    assert "Alpha 0" in names

    # A single agent's trend: no EX either; one team's day with 2 respondents: hidden.
    agent_id = str(world["beta"][0].id)
    trend = (
        await client.get(
            "/api/experience/trend", params={**RANGE, "dimension": "agent", "key": agent_id}, headers=headers
        )
    ).json()
    assert [d["ex"]["shown"] for d in trend["days"]] == [False, False]
    beta_days = (
        await client.get(
            "/api/experience/trend", params={**RANGE, "dimension": "team", "key": "beta"}, headers=headers
        )
    ).json()
    assert all(d["ex"]["pulse"] is None for d in beta_days["days"])
    alpha_days = (
        await client.get(
            "/api/experience/trend", params={**RANGE, "dimension": "team", "key": "alpha"}, headers=headers
        )
    ).json()
    assert [d["ex"]["respondents"] for d in alpha_days["days"]] == [6, 6]

    # The CSV says so too, with no figure.
    text = (
        await client.get(
            "/api/experience/summary", params={**RANGE, "dimension": "team", "format": "csv"}, headers=headers
        )
    ).text
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["key"] == "beta")
    assert row["ex_pulse"] == "" and row["ex_note"] == "fewer than 5 responses from different agents"

    # Deleting pulses until alpha has 4 respondents hides alpha as well.
    await session.execute(
        delete(AgentPulse).where(AgentPulse.agent_id.in_([a.id for a in world["alpha"][:2]]))
    )
    await session.commit()
    await run_rollup(session, full=True)
    teams = (
        await client.get("/api/experience/summary", params={**RANGE, "dimension": "team"}, headers=headers)
    ).json()
    alpha = next(r for r in teams["rows"] if r["key"] == "alpha")
    assert not alpha["ex"]["shown"] and alpha["ex"]["pulse"] is None


async def test_how_they_move_together_with_counts(app, client, session, make_user):
    await _world(session)
    await run_rollup(session)
    _, headers = await make_user(Role.SUPERVISOR)
    body = (await client.get("/api/experience/together", params=RANGE, headers=headers)).json()
    tags = {t["tag"]: t for t in body["tags"]}
    feedback = (await session.execute(select(CustomerFeedback.interaction_id, CustomerFeedback.csat))).all()
    pulses = (await session.execute(select(AgentPulse.interaction_id, AgentPulse.tags))).all()
    await session.commit()
    slow = {i for i, tags_ in pulses if i is not None and "system slow" in tags_}
    tagged = [c for i, c in feedback if i in slow]
    rest = [c for i, c in feedback if i not in slow]
    assert tags["system slow"]["tagged"]["csat_n"] == len(tagged)
    assert tags["system slow"]["tagged"]["csat"] == round(sum(tagged) / len(tagged), 2)
    assert tags["system slow"]["rest"]["csat_n"] == len(rest)
    assert tags["system slow"]["rest"]["csat"] == round(sum(rest) / len(rest), 2)

    levels = {(c["scope"], c["group"]): c for c in body["service_level"]}
    # Queue-days: cards DAY1 below target; cards DAY2, loans both days met. Pulses in cards on
    # DAY1 come from the 6 alpha agents (shown); the met group has alpha and beta.
    below = levels[("queue_days", "below_target")]
    assert below["days"] == 1 and below["ex"]["pulse_n"] == 6 and below["ex"]["respondents"] == 6
    met = levels[("queue_days", "met_target")]
    assert met["days"] == 3 and met["ex"]["pulse_n"] == 10
    # The centre: DAY1 (9 of 14 = 64 %) below its blended 80 %, DAY2 (13 of 14) met.
    assert levels[("centre_days", "below_target")]["days"] == 1
    assert levels[("centre_days", "below_target")]["ex"]["shift_n"] == 8

    text = (
        await client.get(
            "/api/experience/together",
            params={**RANGE, "format": "csv", "table": "service_level"},
            headers=headers,
        )
    ).text
    assert text.splitlines()[0].startswith("scope,group,days,csat_n")
    assert len(text.splitlines()) == 1 + len(body["service_level"])


async def test_every_table_exports_as_csv_and_the_drill_down_links_to_interactions(
    app, client, session, make_user
):
    world = await _world(session)
    await run_rollup(session)
    _, headers = await make_user(Role.SUPERVISOR)
    for path, params, first_column, rows in (
        ("summary", {"dimension": "queue"}, "key", 4),  # cards, loans, none (shift check-ins), total
        ("trend", {}, "day", 2),
        ("together", {"table": "tags"}, "tag", 2),
        ("interactions", {"dimension": "team", "key": "alpha"}, "interaction_id", 12),
    ):
        response = await client.get(
            f"/api/experience/{path}", params={**RANGE, **params, "format": "csv"}, headers=headers
        )
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        parsed = list(csv.reader(io.StringIO(response.text)))
        assert parsed[0][0] == first_column and len(parsed) == 1 + rows, (path, parsed)

    drill = (
        await client.get(
            "/api/experience/interactions",
            params={**RANGE, "tag": "system slow", "dimension": "tier"},
            headers=headers,
        )
    ).json()
    assert drill["rows"] and all(r["interaction_url"].startswith("/api/interactions/") for r in drill["rows"])
    one = drill["rows"][0]
    detail = await client.get(one["interaction_url"], headers=headers)
    assert detail.status_code == 200 and detail.json()["id"] == one["interaction_id"]
    gold = (
        await client.get(
            "/api/experience/interactions",
            params={**RANGE, "dimension": "tier", "key": "gold"},
            headers=headers,
        )
    ).json()
    assert gold["rows"] and {r["tier"] for r in gold["rows"]} == {"gold"}
    assert {r["customer_id"] for r in gold["rows"]} == {str(world["gold"].id)}


async def test_bad_filters_are_422_naming_the_field_and_agents_are_refused(app, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    for params, field in (
        ({"dimension": "planet"}, "dimension"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "to"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"format": "xlsx"}, "format"),
        ({"dimension": "agent", "key": "not-an-id"}, "key"),
        ({"key": "x" * 81}, "key"),
    ):
        response = await client.get("/api/experience/summary", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert [e["field"] for e in response.json()["errors"]] == [f"query.{field}"], response.json()
    bad_limit = await client.get("/api/experience/interactions", params={"limit": 0}, headers=headers)
    assert bad_limit.status_code == 422 and bad_limit.json()["errors"][0]["field"] == "query.limit"

    _, agent_headers = await make_user(Role.AGENT)
    assert (await client.get("/api/experience/summary", headers=agent_headers)).status_code == 403
    assert (await client.get("/api/experience/summary")).status_code == 401
