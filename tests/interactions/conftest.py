"""Fixtures for interaction tests (the rows themselves come from tests/factories.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import update

from interactions import lean_create
from interactions.voice.api import wall_clock
from switchboard.auth.models import Role, User
from switchboard.db import Database
from tests.factories import make_agent
from workforce.models import Agent


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
    real = lean_create.execute

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

    monkeypatch.setattr(lean_create, "execute", recording)
    return outcomes


@pytest.fixture
def clock(app: Any) -> Iterator[Callable[[datetime], None]]:
    """Set the time the outbound API sees: ``clock(datetime)``."""

    def set_now(now: datetime) -> None:
        app.dependency_overrides[wall_clock] = lambda: now

    yield set_now
    app.dependency_overrides.pop(wall_clock, None)
