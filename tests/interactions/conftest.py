"""Factories for interaction tests: agents, queues, interactions walked to any state."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity
from interactions import lean_create, service
from interactions.models import ActorType, Interaction, Message, TimelineEvent
from interactions.schemas import InteractionCreate
from interactions.states import TRANSITIONS, State
from routing.models import Agent, Queue
from switchboard.auth.models import Role, User
from switchboard.db import Database

PHONE = "+44 7911 123456"
OTHER_PHONE = "+44 7400 123456"


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


async def new_interaction(
    session: AsyncSession,
    *,
    channel: str = "voice",
    kind: str = "phone",
    value: str = PHONE,
    enqueue: bool = False,
    **extra: Any,
) -> Interaction:
    data = InteractionCreate.model_validate(
        {"channel": channel, "identity": {"kind": kind, "value": value}, "enqueue": enqueue, **extra}
    )
    interaction = await service.create_interaction(
        session, data=data, actor=service.Actor.system(), default_region="GB"
    )
    await session.commit()
    return interaction


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
    counts = {}
    for model in (Customer, Identity, Interaction, TimelineEvent, Message):
        counts[model.__tablename__] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    await session.commit()  # end the read transaction (SQLite takes a write lock at BEGIN)
    return counts


async def make_agent(session: AsyncSession, user: User) -> Agent:
    agent = Agent(user_id=user.id, display_name=user.display_name)
    session.add(agent)
    await session.commit()
    return agent


async def make_queue(session: AsyncSession, name: str = "cards") -> Queue:
    queue = Queue(name=name, display_name=name.title(), channels=["voice", "chat"])
    session.add(queue)
    await session.commit()
    return queue


@pytest.fixture
def agent_user(make_user: Callable[..., Any], db: Database) -> Callable[..., Any]:
    """``await agent_user()`` -> (user, headers, agent)."""

    async def factory() -> tuple[User, dict[str, str], Agent]:
        user, headers = await make_user(Role.AGENT)
        async with db.sessionmaker() as s:
            agent = await make_agent(s, user)
        return user, headers, agent

    return factory


@pytest.fixture
def customer_user(make_user: Callable[..., Any], db: Database) -> Callable[..., Any]:
    """``await customer_user(customer_id)`` -> (user, headers) for a customer-role login."""

    async def factory(customer_id: uuid.UUID) -> tuple[User, dict[str, str]]:
        user, headers = await make_user(Role.CUSTOMER)
        async with db.sessionmaker() as s:
            await s.execute(update(User).where(User.id == user.id).values(customer_id=customer_id))
            await s.commit()
        return user, headers

    return factory


@pytest.fixture
def lean_outcomes(monkeypatch: pytest.MonkeyPatch, db: Any) -> list[str]:
    """What each call of the lean statement came to ("created", "fallback", "invalid"); on
    PostgreSQL the API must go through it, on SQLite never."""
    outcomes: list[str] = []
    real = lean_create.create

    async def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            created = await real(*args, **kwargs)
        except lean_create.Fallback:
            outcomes.append("fallback")
            raise
        except Exception:
            outcomes.append("invalid")
            raise
        outcomes.append("created")
        return created

    monkeypatch.setattr(lean_create, "create", recording)
    return outcomes
