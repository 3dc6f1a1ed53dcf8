"""Writing the demo bank: ``seed_demo_bank`` and ``seed_into`` put a plan in a database.

A plan goes through the domain services (``customers.service.create_customer``,
``interactions.service.create_interaction`` / ``transition`` / ``post_message``), so the rows,
timeline events and tiers are exactly what the running system would have produced; then every
customer is re-scored (``recompute_all_tiers``). Rows that already exist are left alone, so
seeding twice adds nothing.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity, IdentityKind, ValueTier
from customers.schemas import CustomerCreate, IdentityCreate
from customers.service import create_customer, recompute_all_tiers
from demo.bank.catalogue import DESKTOP_CANNED, TOPICS
from demo.bank.plan import build_demo_plan, serves
from demo.bank.specs import (
    DEFAULT_REGION,
    DEFAULT_SEED,
    DEMO_PASSWORD,
    CustomerSpec,
    DemoPlan,
    QueueSpec,
    SeedReport,
)
from demo.experience import seed_experience
from demo.rules import ensure_default_rule_set
from interactions.models import ActorType, MessageSender
from interactions.schemas import IdentityRef, InteractionCreate
from interactions.service import (
    Actor,
    add_note,
    create_interaction,
    post_message,
    set_disposition,
    transition,
)
from interactions.states import Channel, State
from switchboard.auth.models import Role, User
from switchboard.db import Database
from switchboard.security import hash_password
from workforce.models import Agent, AgentSkill, Presence, Queue, QueueMember, Skill, Team
from workforce.schedule_models import AgentContract, ShiftTemplate

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Writing a plan


async def _has_users(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(User)))


async def _seed_staff(session: AsyncSession, plan: DemoPlan, report: SeedReport) -> dict[str, Agent]:
    password_hash = hash_password(DEMO_PASSWORD)  # argon2 is slow on purpose: hash once, reuse
    existing_users = {u.username: u for u in (await session.scalars(select(User))).all()}
    for spec in plan.users:
        if spec.username in existing_users:
            continue
        user = User(
            username=spec.username,
            display_name=spec.display_name,
            email=spec.email,
            role=spec.role,
            password_hash=password_hash,
            is_active=True,
        )
        session.add(user)
        existing_users[spec.username] = user
        report.users += 1
    await session.flush()

    existing_skills = set((await session.scalars(select(Skill.name))).all())
    for name, description in plan.skills:
        if name not in existing_skills:
            session.add(Skill(name=name, description=description))
            report.skills += 1
    await session.flush()

    agents: dict[str, Agent] = {}
    by_user = {a.user_id: a for a in (await session.scalars(select(Agent))).all()}
    for agent_spec in plan.agents:
        user = existing_users[agent_spec.username]
        agent = by_user.get(user.id)
        if agent is None:
            agent = Agent(
                user_id=user.id,
                display_name=agent_spec.display_name,
                languages=list(agent_spec.languages),
                teams=[agent_spec.team],
                capacity_units=100,
                channel_max=dict(agent_spec.channel_max),
                presence=Presence.OFFLINE,
                skills=[
                    AgentSkill(skill_name=s, proficiency=p) for s, p in sorted(agent_spec.skills.items())
                ],
            )
            session.add(agent)
            report.agents += 1
        agents[agent_spec.username] = agent
    await session.flush()
    return agents


async def _seed_queues(
    session: AsyncSession, plan: DemoPlan, agents: dict[str, Agent], report: SeedReport
) -> None:
    queues = {q.name: q for q in (await session.scalars(select(Queue))).all()}
    created: list[QueueSpec] = []
    for spec in plan.queues:
        if spec.name in queues:
            continue
        queue = Queue(
            name=spec.name,
            display_name=spec.display_name,
            channels=list(spec.channels),
            sl_target_percent=spec.sl_target_percent,
            sl_threshold_seconds=spec.sl_threshold_seconds,
            strategy=spec.strategy,
            required_skills=dict(spec.required_skills),
            wrap_up_seconds=spec.wrap_up_seconds,
            settings=dict(spec.settings),
        )
        session.add(queue)
        queues[spec.name] = queue
        created.append(spec)
        report.queues += 1
    await session.flush()
    for spec in created:
        if spec.overflow is not None:
            queues[spec.name].overflow_queue_id = queues[spec.overflow].id
    rows = await session.execute(select(QueueMember.queue_id, QueueMember.agent_id))
    members = {(queue_id, agent_id) for queue_id, agent_id in rows.all()}
    for spec in plan.queues:
        queue = queues[spec.name]
        for agent_spec in plan.agents:
            agent = agents[agent_spec.username]
            if serves(agent_spec, spec) and (queue.id, agent.id) not in members:
                session.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
                members.add((queue.id, agent.id))
                report.queue_members += 1
    await session.flush()


async def _seed_customers(
    session: AsyncSession, plan: DemoPlan, agents: dict[str, Agent], report: SeedReport
) -> dict[int, Customer]:
    """Create the customers whose phone number is not known yet; returns the new ones by index."""
    known_phones = set(
        (await session.scalars(select(Identity.value).where(Identity.kind == IdentityKind.PHONE))).all()
    )
    created: dict[int, Customer] = {}
    for index, spec in enumerate(plan.customers):
        if spec.phone in known_phones:
            continue
        identities = [IdentityCreate(kind=IdentityKind.PHONE, value=spec.phone, verified=True)]
        if spec.email:
            identities.append(IdentityCreate(kind=IdentityKind.EMAIL, value=spec.email, verified=True))
        if spec.app_id:
            identities.append(IdentityCreate(kind=IdentityKind.APP, value=spec.app_id, verified=True))
        manager = agents[spec.relationship_manager].id if spec.relationship_manager else None
        data = CustomerCreate(
            display_name=spec.display_name,
            language=spec.language,
            timezone=spec.timezone,
            date_of_birth=spec.date_of_birth,
            segments=list(spec.segments),
            relationship_balance=spec.relationship_balance,
            products_held=spec.products_held,
            annual_profit=spec.annual_profit,
            cost_to_serve=spec.cost_to_serve,
            customer_since=spec.customer_since,
            relationship_manager_id=manager,
            preferred_channel=spec.preferred_channel,
            do_not_contact=spec.do_not_contact,
            marketing_consent=spec.marketing_consent,
            quiet_hours_start=spec.quiet_hours[0] if spec.quiet_hours else None,
            quiet_hours_end=spec.quiet_hours[1] if spec.quiet_hours else None,
            identities=identities,
        )
        customer = await create_customer(session, data=data, actor=None, default_region=DEFAULT_REGION)
        created[index] = customer
        report.customers += 1
    await session.flush()
    return created


async def _seed_history(
    session: AsyncSession,
    plan: DemoPlan,
    agents: dict[str, Agent],
    customers: dict[int, Customer],
    now: datetime,
    report: SeedReport,
) -> None:
    """Past interactions for newly created customers, walked through the real state machine."""
    users_by_agent = {agent.id: agent.user_id for agent in agents.values()}
    for spec in plan.interactions:
        if spec.customer not in customers:
            continue
        customer_spec = plan.customers[spec.customer]
        identity = _identity_for(customer_spec, spec.channel)
        started = now - timedelta(seconds=spec.started_seconds_ago)
        interaction = await create_interaction(
            session,
            data=InteractionCreate(
                channel=spec.channel,
                identity=IdentityRef(kind=identity[0], value=identity[1]),
                queue=spec.queue,
                subject=spec.subject,
                topic=spec.topic,
                language=customer_spec.language,
                attributes={"demo": True},
            ),
            actor=Actor(ActorType.CUSTOMER, None),
            default_region=DEFAULT_REGION,
            now=started,
        )
        report.interactions += 1
        at = started + timedelta(seconds=spec.wait_seconds)
        if spec.abandoned or spec.agent is None:
            await transition(
                session,
                interaction_id=interaction.id,
                to_state=State.ABANDONED,
                actor_type=ActorType.CUSTOMER,
                actor_id=None,
                reason="caller_hung_up",
                now=at,
            )
            continue
        agent = agents[spec.agent]
        agent_actor = Actor(ActorType.AGENT, str(users_by_agent[agent.id]))
        await transition(
            session,
            interaction_id=interaction.id,
            to_state=State.OFFERED,
            actor_type=ActorType.SYSTEM,
            actor_id="routing",
            changes={"agent_id": agent.id},
            now=at,
        )
        at += timedelta(seconds=3)
        await transition(
            session,
            interaction_id=interaction.id,
            to_state=State.CONNECTED,
            actor_type=agent_actor.type,
            actor_id=agent_actor.id,
            reason="accepted",
            now=at,
        )
        step = spec.handle_seconds // max(1, len(spec.messages) + 1)
        for sender, body in spec.messages:
            at += timedelta(seconds=step)
            author = agent_actor.id if sender is MessageSender.AGENT else str(customers[spec.customer].id)
            await post_message(
                session, interaction_id=interaction.id, sender=sender, author_id=author, body=body, now=at
            )
        at = started + timedelta(seconds=spec.wait_seconds + 3 + spec.handle_seconds)
        await transition(
            session,
            interaction_id=interaction.id,
            to_state=State.WRAP_UP,
            actor_type=agent_actor.type,
            actor_id=agent_actor.id,
            now=at,
        )
        if spec.note:
            await add_note(session, interaction_id=interaction.id, actor=agent_actor, body=spec.note, now=at)
        if spec.disposition:
            await set_disposition(
                session,
                interaction_id=interaction.id,
                disposition=spec.disposition,
                actor=agent_actor,
                now=at,
            )
        await transition(
            session,
            interaction_id=interaction.id,
            to_state=State.COMPLETED,
            actor_type=agent_actor.type,
            actor_id=agent_actor.id,
            now=at + timedelta(seconds=spec.wrap_seconds),
        )
    await session.flush()


def _identity_for(customer: CustomerSpec, channel: Channel) -> tuple[IdentityKind, str]:
    if channel in (Channel.EMAIL, Channel.TICKET) and customer.email:
        return IdentityKind.EMAIL, customer.email
    if channel is Channel.CHAT and customer.app_id:
        return IdentityKind.APP, customer.app_id
    return IdentityKind.PHONE, customer.phone


async def _ensure_platinum_managers(session: AsyncSession, agents: dict[str, Agent], seed: int) -> None:
    """Every platinum or private-banking customer gets a relationship manager (Premier RMs)."""
    managers = sorted(
        (a for a in agents.values() if a.skill_levels().get("private_banking", 0) >= 4),
        key=lambda a: a.display_name,
    )
    if not managers:
        return
    rng = random.Random(seed + 1)
    rows = await session.scalars(
        select(Customer)
        .where(Customer.relationship_manager_id.is_(None), Customer.merged_into_id.is_(None))
        .order_by(Customer.display_name)
    )
    for customer in rows.all():
        if customer.value_tier is ValueTier.PLATINUM or "private-banking" in (customer.segments or []):
            customer.relationship_manager_id = rng.choice(managers).id
    await session.flush()


async def _seed_desktop_settings(session: AsyncSession) -> None:
    """Give each queue its wrap-up codes and canned responses, keeping any a supervisor set."""
    for queue in (await session.scalars(select(Queue))).all():
        codes = list(dict.fromkeys(code for _, _, codes in TOPICS.get(queue.name, ()) for code in codes))
        extra: dict[str, object] = {}
        if codes and "dispositions" not in (queue.settings or {}):
            extra["dispositions"] = [*codes, *(c for c in ("follow_up_needed", "referred") if c not in codes)]
        if queue.name in DESKTOP_CANNED and "canned" not in (queue.settings or {}):
            extra["canned"] = [{"title": t, "body": b} for t, b in DESKTOP_CANNED[queue.name]]
        if extra:
            queue.settings = {**(queue.settings or {}), **extra}  # reassigned: JSON columns are not mutable
    await session.flush()


async def _seed_owners(session: AsyncSession) -> None:
    """Who alert follow-ups go to (issue #12): each team a lead and each queue an owner, taken in
    turn from the supervisors; what a supervisor already set is kept."""
    leads = list(
        await session.scalars(select(User.id).where(User.role == Role.SUPERVISOR).order_by(User.username))
    )
    if not leads:
        return
    names = sorted({team for teams in await session.scalars(select(Agent.teams)) for team in teams or []})
    present = set(await session.scalars(select(Team.name)))
    for n, name in enumerate(names):
        if name not in present:
            session.add(Team(name=name, lead_user_id=leads[n % len(leads)]))
    for n, queue in enumerate(await session.scalars(select(Queue).order_by(Queue.name))):
        if queue.owner_user_id is None:
            queue.owner_user_id = leads[n % len(leads)]
    await session.flush()


# The demo's shift templates (name, earliest and latest start in local minutes, length, breaks as
# the scheduler places them: minutes, and the window after the shift's start they may begin in).
DEMO_SHIFTS = (
    ("early", 7 * 60, 9 * 60, 8 * 60 + 30, [(15, 90, 150), (30, 210, 300), (15, 360, 420)]),
    ("late", 11 * 60, 13 * 60, 8 * 60 + 30, [(15, 90, 150), (30, 210, 300), (15, 360, 420)]),
    ("short", 9 * 60, 16 * 60, 4 * 60, [(15, 90, 150)]),
)
WEEKDAYS = {str(day): [[7 * 60, 21 * 60]] for day in range(5)}  # Monday to Friday, 07:00-21:00


async def _seed_workforce(session: AsyncSession) -> None:
    """Shift templates and a contract per agent, so that the Schedules page can auto-schedule the
    demo floor at once (issue #13): most agents full time (37.5 h, five days), every fifth part
    time on weekdays only. What a supervisor already set is kept."""
    present = set(await session.scalars(select(ShiftTemplate.name)))
    for name, earliest, latest, length, breaks in DEMO_SHIFTS:
        if name not in present:
            session.add(
                ShiftTemplate(
                    name=name,
                    earliest_start_minute=earliest,
                    latest_start_minute=latest,
                    length_minutes=length,
                    start_step_minutes=30,
                    breaks=[{"minutes": m, "earliest_after": a, "latest_after": b} for m, a, b in breaks],
                )
            )
    contracted = set(await session.scalars(select(AgentContract.agent_id)))
    agents = (await session.scalars(select(Agent.id).order_by(Agent.id))).all()
    for n, agent_id in enumerate(agents):
        if agent_id in contracted:
            continue
        part_time = n % 5 == 4
        session.add(
            AgentContract(
                agent_id=agent_id,
                min_minutes_week=12 * 60 if part_time else 30 * 60,
                max_minutes_week=20 * 60 if part_time else 37 * 60 + 30,
                max_days_week=3 if part_time else 5,
                min_rest_minutes=11 * 60,
                templates=["short"] if part_time else ["early", "late"],
                availability=WEEKDAYS if part_time else {},
            )
        )
    await session.flush()


async def seed_into(session: AsyncSession, plan: DemoPlan, *, now: datetime | None = None) -> SeedReport:
    """Write ``plan`` into ``session`` (commits). Rows that already exist (by username, skill or
    queue name, customer phone number) are left alone, so running it twice adds nothing."""
    now = now or datetime.now(UTC)
    report = SeedReport()
    agents = await _seed_staff(session, plan, report)
    await _seed_queues(session, plan, agents, report)
    await _seed_desktop_settings(session)
    await _seed_owners(session)
    await _seed_workforce(session)
    await session.commit()
    customers = await _seed_customers(session, plan, agents, report)
    await session.commit()
    await _seed_history(session, plan, agents, customers, now, report)
    await session.commit()
    # Survey answers, pulses, check-ins and service level, then the dashboard's rollup (issue #12).
    report.experience = await seed_experience(session, seed=plan.seed, now=now)
    await recompute_all_tiers(session)
    await _ensure_platinum_managers(session, agents, plan.seed)
    # Routing needs a live rule set: publish the shipped default (queues and skills exist now).
    report.rule_set_published = await ensure_default_rule_set(session)
    await session.commit()
    tiers = await session.execute(
        select(Customer.value_tier, func.count()).group_by(Customer.value_tier).order_by(Customer.value_tier)
    )
    report.tiers = {tier.value: count for tier, count in tiers.all()}
    return report


async def seed_demo_bank(
    database_url: str, *, schema: str | None = None, force: bool = False, seed: int = DEFAULT_SEED
) -> bool:
    """Seed the demo bank. Without ``force`` nothing happens if any user exists (returns False).

    With ``force`` the missing parts are filled in: existing users, skills, queues and customers
    (matched by username, name and phone number) are kept as they are, never duplicated.
    """
    database = Database(database_url, schema=schema)
    try:
        async with database.sessionmaker() as session:
            if not force and await _has_users(session):
                return False
            plan = build_demo_plan(seed)
            report = await seed_into(session, plan)
        log.info(
            "demo bank seeded: %d users, %d agents, %d queues, %d customers, %d interactions; tiers %s; "
            "experience %s",
            report.users,
            report.agents,
            report.queues,
            report.customers,
            report.interactions,
            report.tiers,
            report.experience,
        )
        return True
    finally:
        await database.dispose()
