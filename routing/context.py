"""What routing rules see about an interaction, built from the durable records.

One builder for the engine host (arrivals and rebuilds) and the dry-run API, so a dry-run
answers exactly what the engine would decide.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from interactions.models import Interaction
from interactions.states import State
from switchboard.fastsql import FastStatement


async def last_agent_id(session: AsyncSession, customer_id: Any) -> str | None:
    """The agent who last completed work for this customer (the "last agent" preference)."""
    agent_id = await session.scalar(
        select(Interaction.agent_id)
        .where(
            Interaction.customer_id == customer_id,
            Interaction.agent_id.is_not(None),
            Interaction.state == State.COMPLETED,
        )
        .order_by(Interaction.ended_at.desc())
        .limit(1)
    )
    return str(agent_id) if agent_id else None


def rule_context(interaction: Interaction, customer: Customer, *, last_agent: str | None) -> dict[str, Any]:
    segments = list(customer.segments or [])
    return {
        "channel": interaction.channel.value,
        "direction": interaction.direction.value,
        "customer.id": str(customer.id),
        "customer.tier": customer.value_tier.value,
        "customer.language": customer.language or "",
        "customer.segments": segments,
        "customer.relationship_manager": str(customer.relationship_manager_id)
        if customer.relationship_manager_id
        else "",
        "customer.last_agent": last_agent or "",
        "customer.do_not_contact": bool(customer.do_not_contact),
        "customer.vulnerable": "vulnerable" in segments,
        "interaction.priority": int(interaction.priority),
        "interaction.topic": interaction.topic or "",
        "interaction.intent": str((interaction.attributes or {}).get("intent", "")),
        "interaction.started_at": interaction.virtual_start_at.timestamp(),
    }


async def context_for(session: AsyncSession, interaction: Interaction) -> dict[str, Any]:
    customer = await session.get(Customer, interaction.customer_id)
    assert customer is not None  # FK
    return rule_context(interaction, customer, last_agent=await last_agent_id(session, customer.id))


def _snapshot_statement(*, waiting: bool = False) -> Any:
    it, cu = Interaction.__table__, Customer.__table__
    past = Interaction.__table__.alias("past")
    last_agent = (
        select(past.c.agent_id)
        .where(
            past.c.customer_id == it.c.customer_id,
            past.c.agent_id.is_not(None),
            past.c.state == State.COMPLETED,
        )
        .order_by(past.c.ended_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    columns = [it.c[name] for name in _WAITING_COLUMNS] if waiting else [it]
    statement = select(
        *columns,
        *(cu.c[name].label(f"cust__{name}") for name in _CUSTOMER_COLUMNS),
        last_agent.label("last_agent"),
    ).join_from(it, cu, cu.c.id == it.c.customer_id)
    if waiting:
        # Every interaction waiting for an agent (offered ones too), oldest place first.
        return statement.where(it.c.state.in_((State.QUEUED, State.OFFERED))).order_by(
            it.c.virtual_start_at, it.c.id
        )
    return statement.where(it.c.id == bindparam("interaction_id"))


_CUSTOMER_COLUMNS = ("id", "segments", "value_tier", "language", "relationship_manager_id", "do_not_contact")
# What routing reads of waiting work (a rebuild reads thousands: no column it does not use).
_WAITING_COLUMNS = (
    "id",
    "state",
    "version",
    "channel",
    "direction",
    "priority",
    "topic",
    "attributes",
    "required_skills",
    "queue_id",
    "rule_set_version",
    "parent_id",
    "created_at",
    "virtual_start_at",
)
_ALL_COLUMNS = tuple(column.key for column in Interaction.__table__.c)
_SNAPSHOT = FastStatement(_snapshot_statement())  # built once: building costs more CPU than running it
_WAITING_SNAPSHOTS = _snapshot_statement(waiting=True)


async def routing_snapshot(session: AsyncSession, interaction_id: Any) -> tuple[Any, dict[str, Any]] | None:
    """The interaction (a row with the model's attribute names) and its rule context, in ONE query
    of SQLAlchemy Core (the engine's arrival path; no ORM objects). None if there is no such row."""
    return _snapshot(await _SNAPSHOT.first(session, {"interaction_id": interaction_id}))


async def waiting_snapshots(session: AsyncSession) -> list[tuple[Any, dict[str, Any]]]:
    """``routing_snapshot`` of every queued or offered interaction, oldest place first, in ONE
    query (a rebuild reads all waiting work at once, not one interaction at a time)."""
    rows = (await session.execute(_WAITING_SNAPSHOTS)).all()
    return [snap for row in rows if (snap := _snapshot(row, _WAITING_COLUMNS)) is not None]


async def routing_snapshot_on(
    driver: Any, dialect: Any, interaction_id: Any
) -> tuple[Any, dict[str, Any]] | None:
    """``routing_snapshot`` on a held asyncpg connection (``switchboard.fastsql.held_connection``)."""
    return _snapshot(await _SNAPSHOT.first_on(driver, dialect, {"interaction_id": interaction_id}))


def _snapshot(row: Any, columns: tuple[str, ...] = _ALL_COLUMNS) -> tuple[Any, dict[str, Any]] | None:
    if row is None:
        return None
    # By position, in the statement's order (interaction columns, customer columns, last agent):
    # reading thousands of rows by attribute name cost a take-over ~15 % of its time.
    values, split = tuple(row), len(columns)
    interaction = SimpleNamespace(**dict(zip(columns, values[:split], strict=True)))
    customer = SimpleNamespace(**dict(zip(_CUSTOMER_COLUMNS, values[split:-1], strict=True)))
    last = values[-1]
    return interaction, rule_context(interaction, customer, last_agent=str(last) if last else None)
