"""The audit log's query (shared by ``GET /api/audit``, its CSV export and ``/supervisor/audit``)
and its JSON shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from switchboard.audit import AuditEntry, AuditFilter, changes_of
from switchboard.bounds import ApiDateTime

MAX_PAGE = 500
INT64_MAX = 2**63 - 1

Text = Annotated[str | None, Field(default=None, max_length=80)]


class AuditQuery(BaseModel):
    """Filters (all optional, combined with AND) and the page. Times without an offset are UTC."""

    actor: Text = Field(default=None, description="Username of whoever made the change")
    action: Text = Field(
        default=None, description='An action ("user.disabled") or a kind of action ("user" is user.*)'
    )
    entity_type: Annotated[str | None, Field(default=None, max_length=60)] = None
    entity_id: Text = None
    since: ApiDateTime | None = Field(default=None, description="From this time (inclusive)")
    until: ApiDateTime | None = Field(default=None, description="Before this time")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: int | None = Field(
        default=None, ge=1, le=INT64_MAX, description="next_cursor of the previous page: older entries"
    )

    @field_validator("actor", "action", "entity_type", "entity_id", "since", "until", "cursor", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # An HTML form sends every field, empty ones as "".
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("until")
    @classmethod
    def _after_since(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if value is not None and since is not None and value <= since:
            raise ValueError("must be after since")
        return value

    def filter(self) -> AuditFilter:
        return AuditFilter(
            actor=self.actor,
            action=self.action,
            entity_type=self.entity_type,
            entity_id=self.entity_id,
            since=self.since,
            until=self.until,
        )


class ChangeRead(BaseModel):
    field: str
    before: Any = None
    after: Any = None


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor_id: uuid.UUID | None
    actor: str | None = Field(description="The actor's username (null: the system, or a deleted user)")
    action: str
    entity_type: str
    entity_id: str
    changes: list[ChangeRead] = Field(description="Each changed field, before -> after")
    data: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry, username: str | None) -> AuditRead:
        return cls(
            id=entry.id,
            at=entry.at,
            actor_id=entry.actor_id,
            actor=username,
            action=entry.action,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            changes=[
                ChangeRead(field=c.field, before=c.before, after=c.after) for c in changes_of(entry.data)
            ],
            data=entry.data,
        )


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_cursor: int | None = Field(description="Pass as cursor for the next (older) page; null at the end")
