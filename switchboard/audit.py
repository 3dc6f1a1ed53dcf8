"""Audit log: who changed what and when (tier policy, merges, rules, schedules).

A change records what it touched as ``data["before"]`` and ``data["after"]`` (JSON objects of the
changed fields); ``changes_of`` turns any entry, older shapes included, into field: before -> after.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.auth.models import User
from switchboard.db import Base, UTCDateTime, utcnow
from switchboard.pii import MaskedJSON
from switchboard.types import BigIntPK


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(80))
    entity_type: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(80))
    # Masked: an entry carries what people typed (a supervisor's reason for ending or moving work).
    data: Mapped[dict[str, Any]] = mapped_column(MaskedJSON, default=dict)


def record_audit(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    entity_type: str,
    entity_id: str | uuid.UUID,
    data: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit row to the caller's transaction (it commits or rolls back with the change).

    ``before``/``after``: the changed fields as they were and as they are now (JSON values)."""
    payload = dict(data or {})
    if before is not None:
        payload["before"] = before
    if after is not None:
        payload["after"] = after
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor_id,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        data=payload,
    )
    session.add(entry)
    return entry


CUSTOMER_READ = "customer.read"


async def record_customer_read(
    session: AsyncSession, *, user_id: uuid.UUID, customer_id: uuid.UUID, basis: str, what: str
) -> None:
    """A read of a customer outside the reader's held work (a supervisor's, an agent's through an
    offer or past work): kept in the audit log, committed at once (the read itself changes
    nothing, so the route has no commit of its own to ride on)."""
    record_audit(
        session,
        actor_id=user_id,
        action=CUSTOMER_READ,
        entity_type="customer",
        entity_id=customer_id,
        data={"basis": basis, "what": what},
    )
    await session.commit()


async def list_audit(
    session: AsyncSession, *, entity_type: str | None = None, entity_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    return list((await session.scalars(query)).all())


# ---------------------------------------------------------------------- reading it back


@dataclass(frozen=True)
class Change:
    """One field of an audited change; ``None`` on a side means "absent" (created or removed)."""

    field: str
    before: Any
    after: Any


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted paths, so a rule-set body diff names the key that moved."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "value": value}


def changes_of(data: dict[str, Any]) -> list[Change]:
    """The fields an entry changed, before -> after, only those that differ; older entries wrote
    ``from``/``to`` (a role) or ``values: {field: {from, to}}`` (a customer's profile)."""
    if "before" in data or "after" in data:
        before = _flatten(data.get("before") or {})
        after = _flatten(data.get("after") or {})
        keys = list(dict.fromkeys([*before, *after]))
        return [Change(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]
    if "from" in data and "to" in data:
        return [Change("value", data["from"], data["to"])]
    values = data.get("values")
    if isinstance(values, dict):
        return [
            Change(str(name), pair.get("from"), pair.get("to"))
            for name, pair in values.items()
            if isinstance(pair, dict)
        ]
    return []


def shown(value: Any) -> str:
    """A changed value as one line of text (JSON for structures, "—" for absent)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class AuditFilter:
    """Every field optional; ``action`` matches an action exactly or as its kind ("user" is user.*)."""

    actor: str | None = None  # a username
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}.%"


async def search_audit(
    session: AsyncSession, where: AuditFilter, *, limit: int, before_id: int | None = None
) -> list[tuple[AuditEntry, str | None]]:
    """Newest first, each with its actor's username; ``before_id`` pages (keyset, ids only fall)."""
    query = (
        select(AuditEntry, User.username)
        .outerjoin(User, User.id == AuditEntry.actor_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if where.actor:
        query = query.where(User.username == where.actor)
    if where.action:
        query = query.where(
            or_(
                AuditEntry.action == where.action,
                AuditEntry.action.like(_like_prefix(where.action), escape="\\"),
            )
        )
    if where.entity_type:
        query = query.where(AuditEntry.entity_type == where.entity_type)
    if where.entity_id:
        query = query.where(AuditEntry.entity_id == where.entity_id)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at < where.until)
    return [(entry, username) for entry, username in (await session.execute(query)).all()]
