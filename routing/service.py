"""Routing rule-set versions: draft, validate, publish atomically, roll back — all audited.

A rule set is stored as JSON (``RuleSetVersion.body``) and parsed into ``routing.rules.RuleSet``.
Validation runs against the queues and skills that exist *now*, so a publish re-validates even a
previously valid draft. The live version is a pointer on the partition row: publishing or
rolling back changes that pointer in one transaction, so a failed publish leaves the previous
version live and untouched.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from routing.models import RoutingPartition, RuleSetStatus, RuleSetVersion
from routing.rules import RuleSet, validate_rule_set
from switchboard.audit import record_audit
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from workforce.models import Queue, Skill

DEFAULT_PARTITION = "default"


def _pydantic_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse_rule_set(body: dict[str, Any]) -> tuple[RuleSet | None, list[dict[str, str]]]:
    """Parse the JSON body; structural errors come back with their path (``body.filters[0].steps``)."""
    try:
        return RuleSet.model_validate({**body, "version": body.get("version", 0)}), []
    except PydanticValidationError as exc:
        return None, [
            {"field": "body." + _pydantic_path(tuple(err["loc"])), "message": err["msg"]}
            for err in exc.errors()
        ]


async def routing_catalogue(session: AsyncSession) -> tuple[set[str], set[str], dict[str, str | None]]:
    """Queue names, skill names and the queue overflow map that rules are validated against."""
    overflow = aliased(Queue)
    rows = (
        await session.execute(
            select(Queue.name, overflow.name).outerjoin(overflow, Queue.overflow_queue_id == overflow.id)
        )
    ).all()
    skills = set(await session.scalars(select(Skill.name)))
    return {name for name, _ in rows}, skills, {name: target for name, target in rows}


async def check_rule_set(session: AsyncSession, body: dict[str, Any]) -> list[dict[str, str]]:
    """Every problem in ``body`` as ``{field, message}``; empty means it can be published."""
    ruleset, errors = parse_rule_set(body)
    if ruleset is None:
        return errors
    queues, skills, overflow = await routing_catalogue(session)
    problems = validate_rule_set(
        ruleset, known_queues=queues, known_skills=skills, queue_overflow_map=overflow
    )
    return [{"field": f"body.{p.path}", "message": p.message} for p in problems]


def _raise_if_invalid(errors: list[dict[str, str]]) -> None:
    if errors:
        fields = ", ".join(e["field"] for e in errors[:5])
        raise Invalid(f"The rule set is invalid: {fields}", errors=errors)


async def _partition(session: AsyncSession, name: str) -> RoutingPartition:
    partition = await session.get(RoutingPartition, name, with_for_update=True)
    if partition is None:
        partition = RoutingPartition(name=name, epoch=0)
        session.add(partition)
        await session.flush()
    return partition


async def rule_set_live(session: AsyncSession) -> bool:
    """Whether the default partition has a live rule set (handed to the chat start, which is below
    routing: ``interactions.chat.RulesLive``)."""
    return await live_version_number(session) is not None


async def live_version_number(session: AsyncSession, *, partition: str = DEFAULT_PARTITION) -> int | None:
    row = await session.get(RoutingPartition, partition)
    return row.live_rule_set_version if row else None


async def get_version(
    session: AsyncSession, *, version: int, partition: str = DEFAULT_PARTITION
) -> RuleSetVersion:
    row = await session.scalar(
        select(RuleSetVersion).where(RuleSetVersion.partition == partition, RuleSetVersion.version == version)
    )
    if row is None:
        raise NotFound(f"No rule set version {version}", field="version")
    return row


async def live_rule_set(session: AsyncSession, *, partition: str = DEFAULT_PARTITION) -> RuleSet | None:
    number = await live_version_number(session, partition=partition)
    if number is None:
        return None
    row = await get_version(session, version=number, partition=partition)
    return RuleSet.model_validate({**row.body, "version": row.version})


async def list_versions(session: AsyncSession, *, partition: str = DEFAULT_PARTITION) -> list[RuleSetVersion]:
    rows = await session.scalars(
        select(RuleSetVersion)
        .where(RuleSetVersion.partition == partition)
        .order_by(RuleSetVersion.version.desc())
    )
    return list(rows)


async def create_draft(
    session: AsyncSession,
    *,
    body: dict[str, Any],
    comment: str,
    actor_id: uuid.UUID | None,
    partition: str = DEFAULT_PARTITION,
) -> RuleSetVersion:
    _raise_if_invalid(await check_rule_set(session, body))
    await _partition(session, partition)  # locks the partition row: version numbers never collide
    latest = await session.scalar(
        select(func.max(RuleSetVersion.version)).where(RuleSetVersion.partition == partition)
    )
    row = RuleSetVersion(
        partition=partition,
        version=(latest or 0) + 1,
        status=RuleSetStatus.DRAFT,
        body={k: v for k, v in body.items() if k != "version"},
        comment=comment,
        created_by_id=actor_id,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="rule_set.draft_created",
        entity_type="rule_set",
        entity_id=f"{partition}:{row.version}",
        data={"comment": comment},
    )
    return row


async def update_draft(
    session: AsyncSession,
    *,
    version: int,
    body: dict[str, Any],
    comment: str,
    actor_id: uuid.UUID | None,
    partition: str = DEFAULT_PARTITION,
) -> RuleSetVersion:
    row = await get_version(session, version=version, partition=partition)
    if row.status is not RuleSetStatus.DRAFT:
        raise Conflict(
            f"Version {version} is {row.status.value}; published rule sets are frozen", field="version"
        )
    _raise_if_invalid(await check_rule_set(session, body))
    before = {"comment": row.comment, "body": row.body}
    row.body = {k: v for k, v in body.items() if k != "version"}
    row.comment = comment
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="rule_set.draft_updated",
        entity_type="rule_set",
        entity_id=f"{partition}:{version}",
        data={"comment": comment},
        before=before,
        after={"comment": row.comment, "body": row.body},
    )
    return row


async def _make_live(
    session: AsyncSession, *, row: RuleSetVersion, action: str, actor_id: uuid.UUID | None
) -> RuleSetVersion:
    """Re-validate against today's queues and skills, then move the live pointer; audited."""
    _raise_if_invalid(await check_rule_set(session, row.body))
    part = await _partition(session, row.partition)
    previous = part.live_rule_set_version
    now = utcnow()
    if row.status is RuleSetStatus.DRAFT:
        row.status, row.published_at, row.published_by_id = RuleSetStatus.PUBLISHED, now, actor_id
    part.live_rule_set_version, part.updated_at = row.version, now
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action=action,
        entity_type="rule_set",
        entity_id=f"{row.partition}:{row.version}",
        data={"previous_live_version": previous},
        before={"live_version": previous},
        after={"live_version": row.version},
    )
    return row


async def publish(
    session: AsyncSession, *, version: int, actor_id: uuid.UUID | None, partition: str = DEFAULT_PARTITION
) -> RuleSetVersion:
    """Make ``version`` live, all-or-nothing: on any error the previous version stays live."""
    row = await get_version(session, version=version, partition=partition)
    return await _make_live(session, row=row, action="rule_set.published", actor_id=actor_id)


async def rollback(
    session: AsyncSession, *, to_version: int, actor_id: uuid.UUID | None, partition: str = DEFAULT_PARTITION
) -> RuleSetVersion:
    """Put an earlier published version live again (drafts were never live: publish them instead)."""
    row = await get_version(session, version=to_version, partition=partition)
    if row.status is not RuleSetStatus.PUBLISHED:
        raise Conflict(f"Version {to_version} was never published", field="to_version")
    return await _make_live(session, row=row, action="rule_set.rolled_back", actor_id=actor_id)
