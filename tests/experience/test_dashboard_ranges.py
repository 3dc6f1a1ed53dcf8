"""The experience dashboard's respondents over ranges of days (issue #12 item 2): whole months are
read from the monthly rollup and the ragged ends per day, and the answer must be what the daily
rows alone give, for any range; the drill-down for one agent is that agent's answers, newest first.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from experience.dashboard import split_months
from experience.dashboard_models import ExperienceDaily, ExperienceRespondent
from experience.dashboard_schemas import MIN_GROUP
from experience.rollup import run_rollup
from interactions.feedback_models import CustomerFeedback
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.states import State
from routing.history import bump
from switchboard.auth.models import Role
from tests.factories import make_agent, make_customer, make_interaction, make_queue

# Both ends of months, and days inside them.
DAYS = [
    date(2026, 1, 30),
    date(2026, 1, 31),
    date(2026, 2, 1),
    date(2026, 2, 14),
    date(2026, 2, 28),
    date(2026, 3, 1),
    date(2026, 3, 15),
    date(2026, 3, 31),
    date(2026, 4, 1),
    date(2026, 4, 2),
]
RANGES = [
    (date(2026, 1, 30), date(2026, 4, 2)),  # ragged both ends, February and March whole
    (date(2026, 2, 1), date(2026, 3, 31)),  # whole months only
    (date(2026, 2, 2), date(2026, 3, 31)),  # ragged start: 1 February's only answerer is out
    (date(2026, 2, 1), date(2026, 3, 30)),  # ragged end: 31 March's only answerer is out
    (date(2026, 2, 14), date(2026, 3, 15)),  # no whole month
    (date(2026, 3, 1), date(2026, 3, 1)),
]


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_a_range_splits_into_whole_months_and_ragged_days():
    assert split_months(date(2026, 1, 30), date(2026, 4, 2)) == (
        (date(2026, 2, 1), date(2026, 3, 1)),
        [(date(2026, 1, 30), date(2026, 1, 31)), (date(2026, 4, 1), date(2026, 4, 2))],
    )
    assert split_months(date(2026, 2, 1), date(2026, 2, 28)) == ((date(2026, 2, 1), date(2026, 2, 1)), [])
    assert split_months(date(2026, 2, 2), date(2026, 2, 28)) == (
        None,
        [(date(2026, 2, 2), date(2026, 2, 28))],
    )
    assert split_months(date(2026, 2, 14), date(2026, 3, 15)) == (
        None,
        [(date(2026, 2, 14), date(2026, 3, 15))],
    )
    assert split_months(date(2024, 2, 1), date(2024, 2, 29)) == ((date(2024, 2, 1), date(2024, 2, 1)), [])
    assert split_months(date(2025, 12, 31), date(2026, 1, 31)) == (
        (date(2026, 1, 1), date(2026, 1, 1)),
        [(date(2025, 12, 31), date(2025, 12, 31))],
    )


async def _world(session) -> None:
    """Six agents answer every day in both queues; three answer once only: 1 February (cards),
    31 March (loans), 30 January (cards). Service level below or met by queue and day."""
    await make_queue(session, "cards", sl_target_percent=80)
    await make_queue(session, "loans", sl_target_percent=80)
    regulars = [await make_agent(session, name=f"Regular {n}", teams=["alpha"]) for n in range(6)]
    once = {
        date(2026, 2, 1): ("cards", await make_agent(session, name="Only Feb 1", teams=["alpha"])),
        date(2026, 3, 31): ("loans", await make_agent(session, name="Only Mar 31", teams=["beta"])),
        date(2026, 1, 30): ("cards", await make_agent(session, name="Only Jan 30", teams=["alpha"])),
    }
    for i, day in enumerate(DAYS):
        answers = [(queue, agent) for agent in regulars for queue in ("cards", "loans")]
        if day in once:
            answers.append(once[day])
        for n, (queue, agent) in enumerate(answers):
            session.add(
                AgentPulse(
                    agent_id=agent.id,
                    interaction_id=None,
                    kind=PulseKind.INTERACTION,
                    score=1 + (i + n) % 5,
                    tags=[],
                    queue=queue,
                    team=agent.teams[0],
                    day=day,
                    created_at=_at(day, 12),
                )
            )
        within = {0: (5, 9), 1: (9, 9), 2: (9, 5)}[i % 3]  # cards, loans out of 10 (target 80 %)
        await bump(session, queue="cards", at=_at(day, 10), accepted=10, answered_within_sl=within[0])
        await bump(session, queue="loans", at=_at(day, 10), accepted=10, answered_within_sl=within[1])
    await session.commit()


async def _per_day(
    session, dimension: str, first: date, last: date
) -> tuple[dict[str, int], dict[bool, int]]:
    """The reference, from the daily rows only: distinct respondents per group, and per side of
    the service-level target (group-days with a service level)."""
    R, D = ExperienceRespondent, ExperienceDaily
    respondents = (
        await session.execute(
            select(R.key, R.day, R.agent_id).where(R.dimension == dimension, R.day >= first, R.day <= last)
        )
    ).all()
    levels = {
        (d.key, d.day): d.sl_answered * 100 < d.sl_target_weight
        for d in (
            await session.execute(
                select(D).where(D.dimension == dimension, D.day >= first, D.day <= last, D.sl_denominator > 0)
            )
        ).scalars()
    }
    await session.commit()
    groups: dict[str, set] = {}
    sides: dict[bool, set] = {}
    for key, day, agent_id in respondents:
        groups.setdefault(key, set()).add(agent_id)
        if (key, day) in levels:
            sides.setdefault(levels[(key, day)], set()).add(agent_id)
    return {k: len(v) for k, v in groups.items()}, {k: len(v) for k, v in sides.items()}


def _shown(n: int | None) -> int | None:
    return n if n is not None and n >= MIN_GROUP else None


async def _check_every_range(client, session, headers) -> set[tuple]:
    """Every range's respondents through the API equal the per-day reference; returns what was seen."""
    seen = set()
    for first, last in RANGES:
        params = {"from": first.isoformat(), "to": last.isoformat()}
        for dimension in ("queue", "team", "channel", "tier"):
            body = (
                await client.get(
                    "/api/experience/summary", params={**params, "dimension": dimension}, headers=headers
                )
            ).json()
            expected, _ = await _per_day(session, dimension, first, last)
            got = {r["key"]: r["ex"]["respondents"] for r in body["rows"]}
            assert got == {k: _shown(expected.get(k)) for k in got}, (dimension, first, last)
            total, _ = await _per_day(session, "all", first, last)
            assert body["total"]["ex"]["respondents"] == _shown(total.get("")), (first, last)
            seen |= {(dimension, first, k, n) for k, n in got.items()}
        together = (await client.get("/api/experience/together", params=params, headers=headers)).json()
        for scope, dimension in (("queue_days", "queue"), ("centre_days", "all")):
            _, sides = await _per_day(session, dimension, first, last)
            got = {
                c["group"] == "below_target": c["ex"]["respondents"]
                for c in together["service_level"]
                if c["scope"] == scope
            }
            assert got == {k: _shown(sides.get(k)) for k in got}, (scope, first, last)
            assert set(got) == set(sides), (scope, first, last)
            seen |= {(scope, first, k, n) for k, n in got.items()}
    return seen


async def test_respondents_of_any_range_equal_the_per_day_computation(app, client, session, make_user):
    await _world(session)
    await run_rollup(session)
    _, headers = await make_user(Role.SUPERVISOR)
    seen = await _check_every_range(client, session, headers)
    # The ranges tell the one-day answerers apart (reading a ragged end's whole month would not).
    team_counts = {n for (dimension, _, key, n) in seen if dimension == "team" and key == "alpha"}
    assert team_counts == {6, 7, 8}, team_counts
    assert {n for (scope, _, _, n) in seen if scope == "queue_days"} >= {6, 7}

    # A late answer in a month already rolled up reaches the month on the next (incremental) run.
    late = await make_agent(session, name="Late", teams=["alpha"])
    session.add(
        AgentPulse(
            agent_id=late.id,
            interaction_id=None,
            kind=PulseKind.INTERACTION,
            score=3,
            tags=[],
            queue="loans",
            team="alpha",
            day=date(2026, 2, 14),
            created_at=datetime.now(UTC),
        )
    )
    await session.commit()
    assert (await run_rollup(session)).ranges == [(date(2026, 2, 14), date(2026, 2, 14))]
    after = await _check_every_range(client, session, headers)
    assert ("team", date(2026, 2, 1), "alpha", 8) in after  # whole months: the late answerer counts


async def test_the_drill_down_for_one_agent_is_their_answers_newest_first(app, client, session, make_user):
    queue = await make_queue(session, "cards")
    mine, other = await make_agent(session, name="Mine"), await make_agent(session, name="Other")
    customer = await make_customer(session)
    expected = []
    for n in range(12):
        agent = mine if n % 3 else other
        interaction = await make_interaction(session, customer=customer, agent=agent, queue=queue)
        interaction.state = State.COMPLETED
        answered = _at(date(2026, 2, 27) + timedelta(days=n // 2), 9 + n % 2)  # 27 Feb .. 4 Mar
        session.add(
            CustomerFeedback(
                interaction_id=interaction.id, customer_id=customer.id, csat=1 + n % 5, created_at=answered
            )
        )
        if n % 2:
            session.add(
                AgentPulse(
                    agent_id=agent.id,
                    interaction_id=interaction.id,
                    kind=PulseKind.INTERACTION,
                    score=3,
                    tags=["system slow"],
                    day=answered.date(),
                    created_at=answered,
                )
            )
        if agent is mine and date(2026, 3, 1) <= answered.date() <= date(2026, 3, 31):
            expected.append((answered, str(interaction.id), bool(n % 2)))
    await session.commit()
    _, headers = await make_user(Role.SUPERVISOR)
    params = {"from": "2026-03-01", "to": "2026-03-31", "dimension": "agent", "key": str(mine.id)}
    body = (await client.get("/api/experience/interactions", params=params, headers=headers)).json()
    expected.sort(reverse=True)
    assert len(expected) == 6
    assert [r["interaction_id"] for r in body["rows"]] == [i for _, i, _ in expected]
    assert {r["agent"] for r in body["rows"]} == {"Mine"}
    newest = (
        await client.get("/api/experience/interactions", params={**params, "limit": 3}, headers=headers)
    ).json()
    assert [r["interaction_id"] for r in newest["rows"]] == [i for _, i, _ in expected[:3]]
    # With a tag: the agent's newest answers on interactions they tagged, not the newest filtered.
    slow = (
        await client.get(
            "/api/experience/interactions",
            params={**params, "tag": "system slow", "limit": 2},
            headers=headers,
        )
    ).json()
    tagged = [i for _, i, is_tagged in expected if is_tagged]
    assert len(tagged) == 3
    assert [r["interaction_id"] for r in slow["rows"]] == tagged[:2]
