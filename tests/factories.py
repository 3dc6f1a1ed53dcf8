"""Rows for tests, built in one place (real rows through the real services where one exists).

Every factory takes the session (or the ``Database``) it writes with and commits, so the app under
test (another session, another process) sees the rows at once, and no write lock is held on SQLite.
Names and phone numbers are unique per call unless given.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity, IdentityKind, ValueTier
from customers.service import resolve_or_create_customer
from customers.timeline import append_event
from demo.rules import DEMO_OVERFLOW, DEMO_SKILLS, ensure_default_rule_set
from interactions import service
from interactions.feedback_models import CustomerFeedback
from interactions.models import ActorType, Interaction, Message, MessageSender, TimelineEvent
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import TRANSITIONS, Channel, State
from routing.models import Offer, OfferState
from switchboard import commands
from switchboard.auth.models import Role, User
from switchboard.auth.service import create_user, token_for
from switchboard.db import Database, utcnow
from switchboard.settings import Settings
from tests.helpers import TEST_PASSWORD
from workforce.models import Agent, AgentSkill, Presence, Queue, QueueMember, Skill, Team
from workforce.schedule_models import Schedule, ScheduledShift, ScheduleStatus

PHONE = "+44 7911 123456"
OTHER_PHONE = "+44 7400 123456"

_counter = iter(range(1, 10**9))


def next_phone() -> str:
    # A valid UK mobile shape (phonenumbers rejects Ofcom's 07700 900xxx drama range as invalid).
    return f"07400 1{next(_counter) % 100000:05d}"


# ------------------------------------------------------------------ people


async def make_staff_user(
    session: AsyncSession,
    role: Role = Role.AGENT,
    *,
    name: str = "Agent",
    username: str | None = None,
    password: str | None = TEST_PASSWORD,
    password_hash: str | None = None,
) -> User:
    """A staff user, flushed (not committed). ``password=None``: a user who never signs in (a
    placeholder hash, none of argon2's deliberate cost); a token still works for them.
    ``password_hash``: one hash computed once for many users who sign in."""
    username = username or f"{role.value}-{uuid.uuid4().hex[:8]}"
    if password is None or password_hash is not None:
        user = User(username=username, display_name=name, role=role, password_hash=password_hash or "x")
        session.add(user)
        await session.flush()
        return user
    return await create_user(session, username=username, display_name=name, role=role, password=password)


async def make_agent(
    session: AsyncSession,
    user: User | None = None,
    *,
    name: str | None = None,
    skills: Mapping[str, int] | None = None,
    queues: Iterable[Queue | uuid.UUID] = (),
    **fields: Any,
) -> Agent:
    """An agent profile (for ``user``, or a new agent-role user), with ``skills`` (name -> level; the
    skill rows must exist) and a member of ``queues`` (rows or ids); ``fields`` set presence,
    channel_max, teams and the like."""
    if user is None:
        user = await make_staff_user(session, Role.AGENT, name=name or "Agent")
    agent = Agent(user_id=user.id, display_name=name or user.display_name, **fields)
    session.add(agent)
    await session.flush()
    for skill, level in (skills or {}).items():
        session.add(AgentSkill(agent_id=agent.id, skill_name=skill, proficiency=level))
    for queue in queues:
        queue_id = queue if isinstance(queue, uuid.UUID) else queue.id
        session.add(QueueMember(queue_id=queue_id, agent_id=agent.id))
    await session.commit()
    return agent


async def agent_profile(db: Database, user: User, **fields: Any) -> Agent:
    """``user``'s agent profile (``make_agent``'s keywords), in a session of its own."""
    async with db.sessionmaker() as s:
        return await make_agent(s, user, **fields)


async def make_team(session: AsyncSession, name: str, lead: User | None = None, **fields: Any) -> Team:
    """The team ``name`` led by ``lead`` (agents join it through ``Agent.teams``)."""
    team = Team(name=name, lead_user_id=lead.id if lead else None, **fields)
    session.add(team)
    await session.commit()
    return team


async def make_skills(session: AsyncSession, *names: str) -> None:
    """The skill catalogue rows ``names`` (an agent's or a queue's skills must name one)."""
    session.add_all(Skill(name=name) for name in names)
    await session.commit()


async def make_queue(
    session: AsyncSession, name: str = "cards", *, members: Iterable[Agent] = (), **fields: Any
) -> Queue:
    """The queue ``name``, created if missing (voice and chat unless ``channels`` is given, shown as
    ``name.title()`` unless ``display_name`` is); ``members`` join it."""
    queue = await session.scalar(select(Queue).where(Queue.name == name))
    if queue is None:
        fields.setdefault("channels", ["voice", "chat"])
        fields.setdefault("display_name", name.title())
        queue = Queue(name=name, **fields)
        session.add(queue)
        await session.flush()
    await join_queue(session, queue, *members)
    return queue


async def join_queue(session: AsyncSession, queue: Queue, *agents: Agent) -> None:
    """``agents`` become members of ``queue`` (committed)."""
    session.add_all(QueueMember(queue_id=queue.id, agent_id=agent.id) for agent in agents)
    await session.commit()


async def agent_in_queue(db: Database, user: User, queue_name: str = "retail") -> uuid.UUID:
    """An offline agent profile for ``user``, member of ``queue_name`` (created if missing)."""
    async with db.sessionmaker() as s:
        queue = await make_queue(s, queue_name)
        agent = await make_agent(s, user, presence=Presence.OFFLINE, queues=[queue])
        return agent.id


async def routing_floor(
    db: Database, *, agents: int = 2, chat_max: int = 3
) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Queue "retail" (chat, voice) with ``agents`` available members: (agent ids, queue id)."""
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "retail")
        ids = []
        for n in range(agents):
            user = await make_staff_user(
                s, name=f"A{n}", username=f"agent{n}-{uuid.uuid4().hex[:6]}", password=None
            )
            agent = await make_agent(
                s,
                user,
                presence=Presence.AVAILABLE,
                channel_max={"voice": 1, "chat": chat_max, "ticket": 5, "email": 5},
                queues=[queue],
            )
            ids.append(agent.id)
        return ids, queue.id


async def demo_catalogue(db: Database) -> None:
    """The demo bank's queues (with their overflow) and skills, committed."""
    async with db.sessionmaker() as s:
        queues = {name: await make_queue(s, name) for name in DEMO_OVERFLOW}
        for name, target in DEMO_OVERFLOW.items():
            if target:
                queues[name].overflow_queue_id = queues[target].id
        await make_skills(s, *DEMO_SKILLS)


# ------------------------------------------------------------------ customers and interactions


async def make_customer(
    session: AsyncSession,
    *,
    phone: str | None = None,
    email: str | None = None,
    verified: bool = False,
    bare: bool = False,
    **fields: Any,
) -> Customer:
    """A customer found by a phone number (``phone``, unique unless given) through the real resolver,
    which also writes the identity and the ``customer_created`` event. ``bare``: the rows written
    directly, no event: the profile alone, plus the identities ``phone`` and ``email`` when given
    (``verified`` marks them), for tests where the resolver's extras would be in the way."""
    if bare:
        customer = Customer(**fields)
        session.add(customer)
        await session.flush()
        for kind, value in ((IdentityKind.PHONE, phone), (IdentityKind.EMAIL, email)):
            if value is not None:
                await add_identity(session, customer.id, kind, value, verified=verified)
        await session.commit()
        return customer
    if email is not None:
        raise TypeError("make_customer: email identities only with bare=True")
    customer, identity, _ = await resolve_or_create_customer(
        session, kind=IdentityKind.PHONE, raw_value=phone or next_phone(), default_region="GB"
    )
    if verified:
        identity.verified = True
    for name, value in fields.items():
        setattr(customer, name, value)
    await session.commit()
    return customer


async def add_identity(
    session: AsyncSession, customer_id: uuid.UUID, kind: IdentityKind, value: str, *, verified: bool = False
) -> Identity:
    """One more way to reach a customer (``value`` as stored: already normalised), committed."""
    identity = Identity(customer_id=customer_id, kind=kind, value=value, verified=verified)
    session.add(identity)
    await session.commit()
    return identity


async def make_interaction(
    session: AsyncSession,
    *,
    customer: Customer,
    agent: Agent | None = None,
    channel: Channel = Channel.CHAT,
    queue: Queue | None = None,
    event: bool = True,
    **fields: Any,
) -> Interaction:
    """An interaction row of ``customer`` (state created unless ``fields`` say otherwise) with its
    created event unless ``event`` is off (a row as a seed or an old import leaves it)."""
    interaction = Interaction(
        customer_id=customer.id,
        channel=channel,
        agent_id=agent.id if agent else None,
        queue_id=queue.id if queue else None,
        **fields,
    )
    session.add(interaction)
    await session.flush()
    if event:
        append_event(
            session,
            customer_id=customer.id,
            interaction_id=interaction.id,
            kind="interaction_created",
            channel=channel.value,
            actor_type=ActorType.CUSTOMER,
        )
    await session.commit()
    return interaction


async def make_message(
    session: AsyncSession,
    interaction: Interaction,
    body: str,
    *,
    sender: MessageSender = MessageSender.CUSTOMER,
) -> Message:
    """A message row in ``interaction``'s thread (the customer's unless ``sender`` says), committed."""
    message = Message(interaction_id=interaction.id, sender=sender, body=body)
    session.add(message)
    await session.commit()
    return message


async def make_offer(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    state: OfferState = OfferState.LIVE,
    expires_at: datetime | None = None,
    **fields: Any,
) -> Offer:
    """An offer row of ``interaction_id`` to ``agent_id`` (live, expiring in 60 s, unless told)."""
    offer = Offer(
        interaction_id=interaction_id,
        agent_id=agent_id,
        state=state,
        expires_at=expires_at or utcnow() + timedelta(seconds=60),
        **fields,
    )
    session.add(offer)
    await session.commit()
    return offer


async def make_feedback(
    session: AsyncSession,
    interaction: Interaction,
    *,
    csat: int,
    nps: int | None = None,
    at: datetime | None = None,
) -> CustomerFeedback:
    """A customer's survey answer on ``interaction`` (the alert rules' feedback signal)."""
    row = CustomerFeedback(
        interaction_id=interaction.id,
        customer_id=interaction.customer_id,
        csat=csat,
        nps=nps,
        created_at=at or utcnow(),
    )
    session.add(row)
    await session.commit()
    return row


async def new_interaction(
    session: AsyncSession,
    *,
    channel: str = "voice",
    kind: str = "phone",
    value: str = PHONE,
    enqueue: bool = False,
    **extra: Any,
) -> Interaction:
    """An interaction through ``service.create_interaction`` (system actor), committed."""
    data = InteractionCreate.model_validate(
        {"channel": channel, "identity": {"kind": kind, "value": value}, "enqueue": enqueue, **extra}
    )
    interaction = await service.create_interaction(
        session, data=data, actor=Actor.system(), default_region="GB"
    )
    await session.commit()
    return interaction


async def queued_chat(db: Database, client: Any, n: int, *, notify: bool = True) -> uuid.UUID:
    """A chat queued in "retail" from phone number ``n``; the engine is told unless ``notify`` is off."""
    async with db.sessionmaker() as s:
        data = InteractionCreate(
            channel="chat", queue="retail", identity={"kind": "phone", "value": f"+4479111{n:05d}"}
        )
        it = await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")
        await s.commit()
    if notify:
        await commands.notify_enqueued(client, it.id)
    return it.id


def path_to(target: State, start: State = State.CREATED) -> list[State]:
    """Shortest legal path of states from ``start`` to ``target`` (BFS over TRANSITIONS)."""
    parents: dict[State, State | None] = {start: None}
    todo = deque([start])
    while todo:
        state = todo.popleft()
        for nxt in sorted(TRANSITIONS[state]):
            if nxt not in parents:
                parents[nxt] = state
                todo.append(nxt)
    steps: list[State] = []
    node: State | None = target
    while node is not None and node is not start:
        steps.append(node)
        node = parents[node]
    return list(reversed(steps))


async def walk_to(
    session: AsyncSession, interaction: Interaction, target: State, *, agent_id: uuid.UUID | None = None
) -> Interaction:
    """Drive an interaction from its current state to ``target`` along legal moves (system actor)."""
    for step in path_to(target, interaction.state):
        # The agent comes with the offer, or with a direct connect (the outbound shortcut).
        changes = {"agent_id": agent_id} if agent_id and step in (State.OFFERED, State.CONNECTED) else None
        interaction = await service.transition(
            session,
            interaction_id=interaction.id,
            to_state=step,
            actor_type=ActorType.SYSTEM,
            actor_id=None,
            changes=changes,
        )
    await session.commit()
    return interaction


async def count_rows(session: AsyncSession) -> dict[str, int]:
    """Rows per table a create may write (to prove a refusal wrote nothing)."""
    counts = {}
    for model in (Customer, Identity, Interaction, TimelineEvent, Message):
        counts[model.__tablename__] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    await session.commit()  # end the read transaction (SQLite takes a write lock at BEGIN)
    return counts


# ------------------------------------------------------------------ shared by several modules

SUMMER_NOON_UTC = datetime(2026, 7, 1, 11, 0, tzinfo=UTC)


async def available_agent(db: Database, make_user: Any) -> tuple[uuid.UUID, dict[str, str]]:
    user, headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, user)
    async with db.sessionmaker() as s:
        await s.execute(update(Agent).where(Agent.id == agent_id).values(presence=Presence.AVAILABLE))
        await s.commit()
    return agent_id, headers


async def contactable_customer(
    db: Database, *, phone: str = "+447911123456", email: str | None = "out.bound@example.com", **profile: Any
) -> Customer:
    """A customer with a phone and (unless ``email=None``) an email identity, committed."""
    async with db.sessionmaker() as s:
        return await make_customer(
            s, bare=True, phone=phone, email=email or None, display_name="Out Bound", language="en", **profile
        )


def outbound_body(customer: Customer, channel: str = "voice", **extra: Any) -> dict[str, Any]:
    return {"customer_id": str(customer.id), "channel": channel, "reason": "Card delivery check", **extra}


async def chat_floor(db: Database, settings: Settings) -> tuple[str, dict[str, str], dict[str, str]]:
    """The shipped rule set with its queues and skills, one retail agent and a supervisor."""
    async with db.sessionmaker() as s:
        queues = {name: await make_queue(s, name) for name in DEMO_OVERFLOW}
        await make_skills(s, *DEMO_SKILLS)
        agent_user = await make_staff_user(s, name="Dana Desk", username="chat-agent")
        supervisor = await make_staff_user(s, Role.SUPERVISOR, name="Sam Sup", username="chat-sup")
        await make_agent(s, agent_user, presence=Presence.OFFLINE, queues=[queues["retail"]])
        await ensure_default_rule_set(s, actor_id=supervisor.id)
        await s.commit()
    return (
        agent_user.username,
        {"Authorization": f"Bearer {token_for(agent_user, settings)[0]}"},
        {"Authorization": f"Bearer {token_for(supervisor, settings)[0]}"},
    )


async def sql_transition(db: Database, interaction_id: uuid.UUID, to: State, **changes) -> None:
    """An edit committed straight to SQL (the agent's own screen, an adapter), racing the engine."""
    async with db.sessionmaker() as s:
        await service.transition(
            s,
            interaction_id=interaction_id,
            to_state=to,
            actor_type=ActorType.AGENT,
            actor_id="racing-edit",
            reason="edited directly",
            changes=changes or None,
        )
        await s.commit()


async def queued(db: Database, count: int, *, first: int = 0) -> list[uuid.UUID]:
    """``count`` chats waiting in the retail queue (no engine told: the rebuild finds them)."""
    ids = []
    async with db.sessionmaker() as s:
        for n in range(first, first + count):
            data = InteractionCreate(
                channel="chat", queue="retail", identity={"kind": "phone", "value": f"+4479222{n:05d}"}
            )
            ids.append((await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")).id)
        await s.commit()
    return ids


async def declined_by(db: Database, interaction_ids: list[uuid.UUID], agent_id: uuid.UUID) -> None:
    """The agent missed these once: an expired offer row each, and the version an offer leaves."""
    async with db.sessionmaker() as s:
        now = utcnow()
        for interaction_id in interaction_ids:
            s.add(
                Offer(
                    interaction_id=interaction_id,
                    agent_id=agent_id,
                    state=OfferState.EXPIRED,
                    expires_at=now,
                    decided_at=now,
                    reason="expired",
                )
            )
        await s.execute(
            update(Interaction)
            .where(Interaction.id.in_(interaction_ids))
            .values(version=Interaction.version + 2)
        )
        await s.commit()


async def set_presence(db, client, agent_id: uuid.UUID, presence: Presence) -> None:
    """As the presence route does: SQL first, then the engine is told."""
    async with db.sessionmaker() as s:
        await s.execute(update(Agent).where(Agent.id == agent_id).values(presence=presence))
        await s.commit()
    await commands.send(client, {"type": "agent_changed", "agent_id": str(agent_id)})


DESK_CUSTOMER_PHONE = "+447400123456"


async def desk_floor(db: Database, settings: Settings) -> tuple[str, str, dict[str, str]]:
    """The desktop browser tests' floor: queue "cards", an agent (offline), a supervisor, a gold customer;
    the agent's username and token and the supervisor's headers."""
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "cards", channels=["chat", "voice"])
        agent_user = await make_staff_user(s, name="Dana Desk", username="desk-agent")
        supervisor = await make_staff_user(s, Role.SUPERVISOR, name="Sam Sup", username="desk-sup")
        await make_agent(s, agent_user, presence=Presence.OFFLINE, queues=[queue])
        await make_customer(
            s,
            bare=True,
            phone=DESK_CUSTOMER_PHONE,
            verified=True,
            display_name="Margaret Hale",
            segments=["senior", "private-banking"],
            value_tier=ValueTier.GOLD,
            products_held=4,
            marketing_consent=True,
            tier_breakdown={
                "policy_version": 1,
                "tier": "gold",
                "points_total": 62,
                "inputs": {
                    "relationship_balance": {"raw": "250000.00", "points": 40, "clamped": False},
                    "products_held": {"raw": "4", "points": 12, "clamped": False},
                    "tenure_years": {"raw": "12", "points": 10, "clamped": True},
                },
            },
            relationship_balance=Decimal("250000.00"),
        )
    return (
        agent_user.username,
        token_for(agent_user, settings)[0],
        {"Authorization": f"Bearer {token_for(supervisor, settings)[0]}"},
    )


# ------------------------------------------------------------------ rule sets


def everything_to(queue: str) -> dict[str, Any]:
    """A rule-set body sending every contact to ``queue``."""
    return {
        "filters": [{"name": "everything", "when": 'channel != ""', "steps": [{"queue": queue}]}],
        "default_filter": {"name": "default", "steps": [{"queue": queue}]},
        "on_final_timeout": "callback",
    }


async def past_contact(
    session: AsyncSession,
    *,
    customer: Customer,
    at: datetime,
    topic: str | None,
    channel: Channel = Channel.VOICE,
    state: State = State.COMPLETED,
    agent: Agent | None = None,
    queue: Queue | None = None,
    disposition: str | None = None,
) -> Interaction:
    """A finished contact of ``customer`` made at ``at`` (history for journeys and reports): it
    reached an agent when ``agent`` is given (connected a minute after it was made)."""
    interaction = Interaction(
        customer_id=customer.id,
        channel=channel,
        state=state,
        topic=topic,
        disposition=disposition,
        agent_id=agent.id if agent else None,
        queue_id=queue.id if queue else None,
        created_at=at,
        virtual_start_at=at,
        connected_at=at + timedelta(minutes=1) if agent else None,
        ended_at=at + timedelta(minutes=6),
        updated_at=at + timedelta(minutes=6),
    )
    session.add(interaction)
    await session.commit()
    return interaction


async def published_shift(
    session: AsyncSession,
    agent: Agent,
    *,
    start: datetime,
    end: datetime,
    breaks: tuple[tuple[datetime, datetime], ...] = (),
) -> ScheduledShift:
    """A one-shift published schedule for ``agent`` (adherence, the wallboard)."""
    schedule = Schedule(
        first_day=start.date(),
        days=1,
        time_zone="UTC",
        status=ScheduleStatus.PUBLISHED,
        published_at=utcnow(),
    )
    session.add(schedule)
    await session.flush()
    shift = ScheduledShift(
        schedule_id=schedule.id,
        agent_id=agent.id,
        start=start,
        end=end,
        breaks=[[b.isoformat(), e.isoformat()] for b, e in breaks],
    )
    session.add(shift)
    await session.commit()
    return shift
