"""The demo bank: deterministic, realistic enough to demo, seeded only into an empty database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity, IdentityKind, ValueTier
from customers.tier_policy import DEFAULT_TIER_POLICY, compute_tier
from demo.bank import build_demo_plan, seed_demo_bank
from demo.bank.specs import ABANDONED_HISTORY, COMPLETED_HISTORY, CUSTOMER_COUNT, DEFAULT_SEED, DEMO_PASSWORD
from interactions.models import Interaction, Message, TimelineEvent
from interactions.states import State
from switchboard.auth.models import Role, User
from switchboard.db import Database, utcnow
from switchboard.security import verify_password
from workforce.models import Agent, AgentSkill, Queue, QueueMember, Skill

TODAY = date(2026, 11, 23)
TABLES = (
    User,
    Agent,
    AgentSkill,
    Skill,
    Queue,
    QueueMember,
    Customer,
    Identity,
    Interaction,
    TimelineEvent,
    Message,
)


async def _counts(db: Database) -> dict[str, int]:
    # A short-lived session: on SQLite an open transaction would hold the write lock the seeder needs.
    async with db.sessionmaker() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model)) or 0
            for model in TABLES
        }


async def _customer_names(db: Database) -> list[str]:
    async with db.sessionmaker() as session:
        return sorted((await session.scalars(select(Customer.display_name))).all())


def test_plan_is_deterministic_and_seed_dependent() -> None:
    a = build_demo_plan(DEFAULT_SEED, today=TODAY)
    b = build_demo_plan(DEFAULT_SEED, today=TODAY)
    assert a == b
    assert [c.display_name for c in a.customers] == [c.display_name for c in b.customers]
    other = build_demo_plan(DEFAULT_SEED + 1, today=TODAY)
    assert [c.display_name for c in other.customers] != [c.display_name for c in a.customers]


def test_plan_shape() -> None:
    plan = build_demo_plan(today=TODAY)
    assert len(plan.customers) == CUSTOMER_COUNT
    assert len({c.display_name for c in plan.customers}) == CUSTOMER_COUNT
    assert len({c.phone for c in plan.customers}) == CUSTOMER_COUNT
    tiers = Counter(compute_tier(c, DEFAULT_TIER_POLICY, today=TODAY).tier for c in plan.customers)
    for tier in ValueTier:
        assert tiers[tier] >= CUSTOMER_COUNT // 10, tiers
    for agent in plan.agents:
        assert 2 <= len(agent.skills) <= 5, agent
        assert all(1 <= p <= 5 for p in agent.skills.values())
        assert "en" in agent.languages
        assert agent.channel_max["voice"] == 1 and 2 <= agent.channel_max["chat"] <= 4
    managers = [a for a in plan.agents if a.relationship_manager]
    assert managers and all(a.team == "Premier" for a in managers)
    assert all(a.skills["private_banking"] >= 4 and a.skills["wealth"] >= 4 for a in managers)
    for customer in plan.customers:
        age = (TODAY - customer.date_of_birth).days // 365
        assert ("senior" in customer.segments) == (age >= 60)
        assert ("new" in customer.segments) == ((TODAY - customer.customer_since).days < 365)


async def test_seed_demo_bank(db: Database) -> None:
    assert await seed_demo_bank(db.url, schema=db.schema) is True
    counts = await _counts(db)
    async with db.sessionmaker() as session:
        await _check_seeded_bank(session, counts)
    # Determinism end to end: the stored names are the plan's for that seed.
    planned = sorted(c.display_name for c in build_demo_plan(DEFAULT_SEED).customers)
    assert await _customer_names(db) == planned


async def _check_seeded_bank(session: AsyncSession, counts: dict[str, int]) -> None:
    users = (await session.scalars(select(User))).all()
    roles = Counter(u.role for u in users)
    assert roles == {Role.ADMIN: 1, Role.SUPERVISOR: 2, Role.AGENT: 30}
    names = {u.username for u in users}
    assert {"admin", "supervisor1", "supervisor2", "agent01", "agent30"} <= names
    admin = next(u for u in users if u.username == "admin")
    assert verify_password(admin.password_hash, DEMO_PASSWORD)
    assert len({u.password_hash for u in users}) == 1  # hashed once

    assert counts["agents"] == 30
    assert counts["skills"] >= 12
    assert counts["queues"] == 6
    assert counts["customers"] == CUSTOMER_COUNT
    assert counts["interactions"] == COMPLETED_HISTORY + ABANDONED_HISTORY
    assert counts["messages"] > 0
    assert counts["timeline_events"] > 4 * counts["interactions"]

    queues = {q.name: q for q in (await session.scalars(select(Queue))).all()}
    assert set(queues) == {"retail", "cards", "mortgages", "private-banking", "seniors", "collections"}
    for name in ("private-banking", "seniors", "cards"):
        assert queues[name].overflow_queue_id == queues["retail"].id
    assert (queues["private-banking"].sl_target_percent, queues["private-banking"].sl_threshold_seconds) == (
        90,
        15,
    )
    assert (queues["seniors"].sl_target_percent, queues["seniors"].sl_threshold_seconds) == (90, 30)
    assert (queues["retail"].sl_target_percent, queues["retail"].sl_threshold_seconds) == (80, 20)
    for queue in queues.values():
        assert 30 <= queue.wrap_up_seconds <= 120
        members = await session.scalar(
            select(func.count()).select_from(QueueMember).where(QueueMember.queue_id == queue.id)
        )
        assert members and members >= 2, queue.name

    customers = (await session.scalars(select(Customer))).all()
    tiers = Counter(c.value_tier for c in customers)
    for tier in ValueTier:
        assert tiers[tier] >= CUSTOMER_COUNT // 10, tiers
    assert all(c.tier_computed_at is not None and c.tier_breakdown for c in customers)
    seniors = [c for c in customers if "senior" in c.segments]
    assert len(seniors) >= CUSTOMER_COUNT // 4
    assert any("vulnerable" in c.segments for c in seniors)
    for segment in ("private-banking", "new", "young", "salaried", "business"):
        assert any(segment in c.segments for c in customers), segment
    rm_ids = set((await session.scalars(select(Agent.id).where(Agent.teams.is_not(None)))).all())
    for customer in customers:
        if customer.value_tier is ValueTier.PLATINUM or "private-banking" in customer.segments:
            assert customer.relationship_manager_id in rm_ids, customer.display_name
    assert any(c.do_not_contact for c in customers)
    assert any(c.quiet_hours_start is not None for c in customers)
    assert any(c.preferred_channel is not None for c in customers)
    assert len({c.language for c in customers}) >= 5

    phones = (await session.scalars(select(Identity).where(Identity.kind == IdentityKind.PHONE))).all()
    assert len({p.customer_id for p in phones}) == CUSTOMER_COUNT
    assert all(p.value.startswith("+447") and len(p.value) == 13 for p in phones)
    emails = await session.scalar(
        select(func.count()).select_from(Identity).where(Identity.kind == IdentityKind.EMAIL)
    )
    assert emails and emails > CUSTOMER_COUNT // 2

    states = Counter((await session.scalars(select(Interaction.state))).all())
    assert states[State.COMPLETED] == COMPLETED_HISTORY
    assert states[State.ABANDONED] == ABANDONED_HISTORY
    channels = Counter((await session.scalars(select(Interaction.channel))).all())
    assert len(channels) == 4

    # The shipped default rule set is live and valid against the seeded queues and skills.
    from routing.service import check_rule_set, live_rule_set

    live = await live_rule_set(session)
    assert live is not None and live.version == 1
    assert await check_rule_set(session, live.model_dump(mode="json")) == []


async def test_second_seed_changes_nothing(db: Database) -> None:
    assert await seed_demo_bank(db.url, schema=db.schema) is True
    before = await _counts(db)
    names = await _customer_names(db)
    assert await seed_demo_bank(db.url, schema=db.schema) is False
    assert await _counts(db) == before
    # force fills in what is missing and never duplicates.
    assert await seed_demo_bank(db.url, schema=db.schema, force=True) is True
    assert await _counts(db) == before
    assert await _customer_names(db) == names


async def test_no_seed_when_users_exist(db: Database, make_user: Callable[..., Any]) -> None:
    await make_user(Role.ADMIN)
    assert await seed_demo_bank(db.url, schema=db.schema) is False
    assert (await _counts(db))["customers"] == 0


async def test_the_demo_bank_brings_the_experience_dashboard_to_life(db: Database):
    """Issue #12 item 5: answers, pulses, check-ins and repeat contacts, rolled up at seeding."""
    from experience import dashboard
    from experience.dashboard_models import Dimension
    from experience.dashboard_schemas import ExperienceQuery

    assert await seed_demo_bank(db.url, schema=db.schema) is True
    async with db.sessionmaker() as s:
        q = ExperienceQuery(start=utcnow().date() - timedelta(days=120), dimension=Dimension.TEAM)
        summary = await dashboard.summary(s, q)
        together = await dashboard.together(s, q)
        rows = (
            await s.execute(select(Interaction.customer_id, Interaction.topic, Interaction.created_at))
        ).all()
        await s.commit()
    assert summary.total.cx.csat_n >= 50 and summary.total.ex.shown
    assert any(r.ex.shown for r in summary.rows) and any(not r.ex.shown for r in summary.rows)
    assert {t.tag for t in together.tags} >= {"system slow", "missing information"}
    slow = next(t for t in together.tags if t.tag == "system slow")
    assert slow.tagged.csat is not None and slow.rest.csat is not None and slow.tagged.csat < slow.rest.csat
    assert {c.group for c in together.service_level} == {"below_target", "met_target"}
    seen: dict[tuple, list] = {}
    for customer_id, topic, at in rows:
        seen.setdefault((customer_id, topic), []).append(at)
    repeats = sum(
        1
        for times in seen.values()
        for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
        if b - a <= timedelta(hours=48)
    )
    assert repeats >= 10


async def test_the_demo_floor_can_be_auto_scheduled_at_once(db: Database) -> None:
    """The demo brings shift templates and a contract per agent (none before: the Schedules page
    had nobody to schedule); auto-scheduling a week covers a weekday requirement within them."""
    from zoneinfo import ZoneInfo

    from workforce import schedule_service
    from workforce.schedule_models import AgentContract, ShiftTemplate
    from workforce.scheduler import Horizon

    assert await seed_demo_bank(db.url, schema=db.schema) is True
    monday = date(2027, 1, 4)
    horizon = Horizon(monday, 7, ZoneInfo("Europe/London"))
    need = []
    for slot in range(horizon.slots):
        at = horizon.at(slot).astimezone(horizon.zone)
        need.append(4 if at.weekday() < 5 and 9 <= at.hour < 17 else 0)
    async with db.sessionmaker() as s:
        assert set(await s.scalars(select(ShiftTemplate.name))) == {"early", "late", "short"}
        contracts = {c.agent_id: c for c in await s.scalars(select(AgentContract))}
        assert len(contracts) == 30
        supervisor = await s.scalar(select(User).where(User.username == "supervisor1"))
        assert supervisor is not None
        schedule = await schedule_service.auto_schedule(
            s, first_day=monday, days=7, time_zone="Europe/London", requirement=need, actor=supervisor,
            time_limit_s=20,
        )  # fmt: skip
        shifts = await schedule_service.shifts_of(s, schedule.id)
        covered = schedule_service.coverage(schedule, shifts)
    assert sum(covered.shortfall) == 0
    assert shifts
    for shift in shifts:
        contract = contracts[shift.agent_id]
        assert shift.template in contract.templates
        if contract.availability:  # the part-timers: weekdays only
            assert shift.start.astimezone(horizon.zone).weekday() < 5
