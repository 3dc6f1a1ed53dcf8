"""The building blocks of administration (issue #11): one way to create, change and delete a
row, audited before -> after in the same transaction, and routing told after the commit.

A domain describes an entity once (``Entity``: its write schema, how to read a row as JSON, how
to apply a validated write, what refuses a delete, which engine commands a change needs); the
console mounts the same description as JSON API and pages (``console.admin.kit``). So the seven
administered entities share one code path for validation, audit, conflicts and engine notices.

A change is validated whole: a PATCH is merged onto the row's current values and the merge is
validated with the write schema, so a partial change can never leave a row no create could make.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard import commands
from switchboard.audit import record_audit
from switchboard.auth.models import Role, User
from switchboard.errors import OUTAGE_ERRORS, Conflict, Invalid, NotFound, ServiceUnavailable
from switchboard.settings import Settings


def json_value(value: Any) -> Any:
    """A column value as the JSON the API answers and the audit log keeps."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that differ, as they were and as they are."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def validation_errors(exc: ValidationError, prefix: str = "body") -> list[dict[str, str]]:
    """Pydantic's errors named as the API names them (``body.display_name``)."""
    found = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err.get("loc", ()))
        found.append({"field": f"{prefix}.{path}" if prefix else path, "message": err.get("msg", "invalid")})
    return found


class Service(Protocol):
    """What an entity's domain service offers the kit (rows are whatever the domain stores)."""

    async def list(self, session: AsyncSession) -> Sequence[Any]: ...
    async def get(self, session: AsyncSession, key: str) -> Any: ...
    def read(self, row: Any) -> dict[str, Any]: ...
    async def create(self, session: AsyncSession, data: BaseModel, actor: User) -> Any: ...
    async def update(self, session: AsyncSession, row: Any, data: BaseModel, actor: User) -> Any: ...
    async def delete(self, session: AsyncSession, row: Any, actor: User) -> None: ...


InUse = Callable[[AsyncSession, Any], Awaitable[str | None]]
Notices = Callable[[Any], Iterable[commands.Command]]


@dataclass(frozen=True)
class Entity:
    """One administered kind of thing (see the module docstring)."""

    slug: str  # the URL piece: /api/<slug>, /supervisor/<slug>
    noun: str  # "queue"
    title: str  # "Queues"
    entity_type: str  # the audit log's entity_type, and its actions' prefix ("queue.created")
    write: type[BaseModel]
    service: Service
    create_only: frozenset[str] = frozenset()  # identities other rows and the rules refer to
    role: Role = Role.SUPERVISOR  # the least role that may administer it
    in_use: tuple[InUse, ...] = ()  # each answers why a delete is refused, or None
    notices: Notices = field(default=lambda row: ())  # engine commands after a committed change
    secret: frozenset[str] = frozenset()  # written but never read back nor audited (a password)
    # Checks that need the app's settings (the password policy), before anything is written.
    policy: Callable[[Settings, Any, Any], None] | None = None  # (settings, data, row or None)

    def key_of(self, row: Any) -> str:
        return str(self.service.read(row)["id"])

    def label_of(self, row: Any) -> str:
        return label_of_read(self.service.read(row))

    def audited(self, read: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in read.items() if k in self.write.model_fields and k not in self.secret}


def label_of_read(read: Mapping[str, Any]) -> str:
    """What a person calls a row: its display name, title, name or code."""
    for key in ("display_name", "title", "name", "code"):
        if read.get(key):
            return str(read[key])
    return str(read["id"])


def validate_create(entity: Entity, body: Mapping[str, Any], prefix: str = "body") -> BaseModel:
    try:
        return entity.write.model_validate(dict(body))
    except ValidationError as exc:
        raise Invalid(f"Check the {entity.noun}'s fields", errors=validation_errors(exc, prefix)) from None


def validate_patch(entity: Entity, row: Any, patch: Mapping[str, Any], prefix: str = "body") -> BaseModel:
    """The row's current values with ``patch`` on top, validated whole."""
    editable = set(entity.write.model_fields) - entity.create_only
    refused = [k for k in patch if k not in editable]
    if refused:
        errors = [
            {
                "field": f"{prefix}.{k}" if prefix else k,
                "message": "cannot be changed once created" if k in entity.create_only else "no such field",
            }
            for k in refused
        ]
        raise Invalid(f"Check the {entity.noun}'s fields", errors=errors)
    current = {k: v for k, v in entity.service.read(row).items() if k in entity.write.model_fields}
    return validate_create(entity, {**current, **patch}, prefix)


async def create(session: AsyncSession, entity: Entity, data: BaseModel, actor: User) -> Any:
    row = await entity.service.create(session, data, actor)
    after = entity.audited(entity.service.read(row))
    record_audit(
        session,
        actor_id=actor.id,
        action=f"{entity.entity_type}.created",
        entity_type=entity.entity_type,
        entity_id=entity.key_of(row),
        data={"name": entity.label_of(row)},
        before={},
        after=after,
    )
    return row


async def update(session: AsyncSession, entity: Entity, row: Any, data: BaseModel, actor: User) -> Any:
    before = entity.audited(entity.service.read(row))
    row = await entity.service.update(session, row, data, actor)
    changed_before, changed_after = diff(before, entity.audited(entity.service.read(row)))
    written_secrets = [k for k in entity.secret if getattr(data, k, None)]
    if changed_after or written_secrets:
        record_audit(
            session,
            actor_id=actor.id,
            action=f"{entity.entity_type}.updated",
            entity_type=entity.entity_type,
            entity_id=entity.key_of(row),
            data={"name": entity.label_of(row), **({"set": written_secrets} if written_secrets else {})},
            before=changed_before,
            after=changed_after,
        )
    return row


async def delete(session: AsyncSession, entity: Entity, row: Any, actor: User) -> None:
    for check in entity.in_use:
        reason = await check(session, row)
        if reason:
            raise Conflict(f"{entity.label_of(row)} is in use: {reason}", field="id")
    before = entity.audited(entity.service.read(row))
    key, label = entity.key_of(row), entity.label_of(row)
    try:
        await entity.service.delete(session, row, actor)
    except IntegrityError:
        # Something no check above knows still points at it (the database's foreign keys).
        raise Conflict(f"{label} is in use: other records still refer to it", field="id") from None
    record_audit(
        session,
        actor_id=actor.id,
        action=f"{entity.entity_type}.deleted",
        entity_type=entity.entity_type,
        entity_id=key,
        data={"name": label},
        before=before,
        after={},
    )


async def get(session: AsyncSession, entity: Entity, key: str) -> Any:
    row = await entity.service.get(session, key)
    if row is None:
        raise NotFound(f"No such {entity.noun}", field="id")
    return row


async def routing_reachable(redis: Redis) -> None:
    """Asked before a change is committed: with Redis down routing cannot be told, so the change
    is refused (503) with nothing saved rather than saved where routing never sees it."""
    try:
        await redis.ping()
    except OUTAGE_ERRORS as exc:
        raise ServiceUnavailable("Routing is unavailable: nothing was changed. Retry shortly.") from exc


async def commit_and_tell(session: AsyncSession, redis: Redis, notices: Iterable[commands.Command]) -> None:
    """Commit, then send routing its commands (it re-reads SQL, so they follow the commit). A
    failure in the moment between the check and the send is a 503 saying so: saving again sends
    the commands again (a save without changes still tells routing)."""
    await session.commit()
    try:
        for command in notices:
            await commands.send(redis, command)
    except OUTAGE_ERRORS as exc:
        raise ServiceUnavailable(
            "Saved, but routing could not be told; save again shortly so it applies the change."
        ) from exc


Check = Callable[[AsyncSession, Any, Any], Awaitable[None]]  # (session, data, row or None)
Apply = Callable[[Any, Any], None]  # (row, data): set the row's columns from a validated write


def set_columns(row: Any, data: BaseModel) -> None:
    for name, value in data.model_dump().items():
        setattr(row, name, value)  # JSON columns are reassigned whole, so the change is seen


class OrmService:
    """``Service`` for an ORM model whose write schema's fields are its columns (``apply`` for
    the others); ``check`` raises ``Invalid``/``Conflict`` naming the field before anything is written."""

    def __init__(
        self,
        model: type[Any],
        *,
        order_by: Any,
        read: Callable[[Any], dict[str, Any]],
        check: Check | None = None,
        apply: Apply = set_columns,
    ) -> None:
        self.model, self.order_by, self._read, self._check, self._apply = model, order_by, read, check, apply

    async def list(self, session: AsyncSession) -> Sequence[Any]:
        return list((await session.scalars(select(self.model).order_by(self.order_by))).all())

    async def get(self, session: AsyncSession, key: str) -> Any:
        try:
            return await session.get(self.model, uuid.UUID(key), populate_existing=True)
        except ValueError:
            return None

    def read(self, row: Any) -> dict[str, Any]:
        return self._read(row)

    async def create(self, session: AsyncSession, data: BaseModel, actor: User) -> Any:
        if self._check is not None:
            await self._check(session, data, None)
        row = self.model()
        self._apply(row, data)
        session.add(row)
        await session.flush()
        return row

    async def update(self, session: AsyncSession, row: Any, data: BaseModel, actor: User) -> Any:
        if self._check is not None:
            await self._check(session, data, row)
        self._apply(row, data)
        await session.flush()
        return row

    async def delete(self, session: AsyncSession, row: Any, actor: User) -> None:
        await session.delete(row)
        await session.flush()
