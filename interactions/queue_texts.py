"""Wrap-up codes and canned responses: short lists each queue keeps for its agents.

Stored in the queue's settings (``Queue.settings["dispositions"]``: codes; ``["canned"]``:
``{"id", "title", "body"}``), where the agent desktop reads them (``codes_for``, ``canned_for``); a
queue without its own gets the bank-wide defaults below. Supervisors administer them as rows
(``/api/wrap-up-codes``, ``/api/canned-responses``) through ``QueueListService``: an entry's id is
stable (a code's is derived from the queue and the code, a response keeps the id it was given).

Canned responses may hold placeholders (``{customer_first_name}`` …), filled in when an agent
inserts one (``fill``); an unknown placeholder is refused when the response is saved.
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth.models import User
from switchboard.errors import Conflict, Invalid
from workforce.models import Queue

# Used when a queue configures none: codes every bank reports on.
DEFAULT_DISPOSITIONS: tuple[str, ...] = (
    "resolved",
    "follow_up_needed",
    "referred",
    "complaint_logged",
    "no_action_needed",
)

# What a canned response may say about the conversation it is inserted into.
PLACEHOLDERS: dict[str, str] = {
    "customer_first_name": "the customer's first name",
    "customer_name": "the customer's full name",
    "agent_name": "the agent's name",
    "queue_name": "the queue's display name",
}


@dataclass(frozen=True)
class CannedResponse:
    title: str
    body: str


DEFAULT_CANNED: tuple[CannedResponse, ...] = (
    CannedResponse("Greeting", "Hello, thank you for contacting us. How can I help you today?"),
    CannedResponse("Security check", "Before we go on, I need to ask you a couple of security questions."),
    CannedResponse("Hold", "Thank you for your patience, I'm checking that for you now."),
    CannedResponse("Anything else", "Is there anything else I can help you with today?"),
    CannedResponse("Closing", "Thank you for banking with us. Have a lovely day."),
)


def _configured(queue: Queue | None, key: str) -> list[Any] | None:
    raw: Any = (queue.settings or {}).get(key) if queue is not None else None
    return raw if isinstance(raw, list) else None


def _codes(queue: Queue) -> list[str]:
    return [c.strip() for c in _configured(queue, "dispositions") or [] if isinstance(c, str) and c.strip()]


def _canned(queue: Queue) -> list[dict[str, str]]:
    items = []
    for item in _configured(queue, "canned") or []:
        if (
            isinstance(item, dict)
            and str(item.get("title", "")).strip()
            and str(item.get("body", "")).strip()
        ):
            title = str(item["title"]).strip()
            key = str(item.get("id") or uuid.uuid5(queue.id, f"canned:{title}"))
            items.append({"id": key, "title": title, "body": str(item["body"]).strip()})
    return items


def codes_for(queue: Queue | None) -> tuple[str, ...]:
    """The queue's wrap-up codes; malformed settings fall back to the defaults rather than leave
    the agent unable to complete anything."""
    return tuple(_codes(queue)) if queue is not None and _codes(queue) else DEFAULT_DISPOSITIONS


def canned_for(queue: Queue | None) -> tuple[CannedResponse, ...]:
    """The queue's responses (malformed entries skipped), or the bank-wide defaults."""
    items = _canned(queue) if queue is not None else []
    return tuple(CannedResponse(i["title"], i["body"]) for i in items) or DEFAULT_CANNED


def placeholders_in(text: str) -> list[str]:
    """The ``{names}`` in ``text``; a lone or unbalanced brace is an error (ValueError)."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with its placeholders replaced; one without a value is left as written."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


# ------------------------------------------------------------------------------ administration

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$", min_length=2, max_length=60)]


class WrapUpCodeWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: uuid.UUID = Field(description="The queue whose agents choose this code at wrap-up")
    code: Code = Field(description="As reports use it: lower case, digits and _ (e.g. card_replaced)")


class CannedResponseWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: uuid.UUID = Field(description="The queue whose agents may insert this response")
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] = Field(
        description="The text; placeholders: " + ", ".join(f"{{{k}}}" for k in PLACEHOLDERS)
    )

    @field_validator("body")
    @classmethod
    def _known_placeholders(cls, body: str) -> str:
        try:
            names = placeholders_in(body)
        except ValueError:
            raise ValueError(
                "a brace without its pair: placeholders are written {customer_first_name}"
            ) from None
        unknown = [n for n in names if n not in PLACEHOLDERS]
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; use one of "
                + ", ".join(f"{{{k}}}" for k in PLACEHOLDERS)
            )
        return body


@dataclass
class QueueEntry:
    """One code or response of one queue: what the kit handles as a row."""

    queue: Queue
    item: dict[str, Any]


class QueueListService:
    """``switchboard.crud.Service`` over one list in each queue's settings."""

    def __init__(self, key: str, *, label: str, unique: str) -> None:
        self.key, self.label, self.unique = key, label, unique

    def entries(self, queue: Queue) -> list[dict[str, Any]]:
        if self.key == "dispositions":
            return [{"id": str(uuid.uuid5(queue.id, f"code:{c}")), "code": c} for c in _codes(queue)]
        return _canned(queue)

    def _store(self, queue: Queue, entries: Sequence[dict[str, Any]]) -> None:
        stored: list[Any] = [e["code"] for e in entries] if self.key == "dispositions" else list(entries)
        queue.settings = {**(queue.settings or {}), self.key: stored}  # reassigned: JSON is not mutable

    def _new(self, queue: Queue, data: Any) -> dict[str, Any]:
        if self.key == "dispositions":
            return {"id": str(uuid.uuid5(queue.id, f"code:{data.code}")), "code": data.code}
        return {"id": str(uuid.uuid4()), "title": data.title, "body": data.body}

    async def list(self, session: AsyncSession) -> list[QueueEntry]:
        queues = (await session.scalars(select(Queue).order_by(Queue.display_name))).all()
        return [QueueEntry(q, e) for q in queues for e in self.entries(q)]

    async def get(self, session: AsyncSession, key: str) -> QueueEntry | None:
        return next((row for row in await self.list(session) if row.item["id"] == key), None)

    def read(self, row: QueueEntry) -> dict[str, Any]:
        return {**row.item, "queue_id": str(row.queue.id), "queue": row.queue.display_name}

    async def _queue(self, session: AsyncSession, queue_id: uuid.UUID) -> Queue:
        queue = await session.get(Queue, queue_id, populate_existing=True)
        if queue is None:
            raise Invalid("No such queue", field="queue_id")
        return queue

    def _check_unique(self, queue: Queue, value: str, except_id: str | None) -> None:
        for entry in self.entries(queue):
            if entry[self.unique] == value and entry["id"] != except_id:
                raise Conflict(
                    f"{queue.display_name} already has the {self.label} {value!r}", field=self.unique
                )

    async def create(self, session: AsyncSession, data: Any, actor: User) -> QueueEntry:
        queue = await self._queue(session, data.queue_id)
        self._check_unique(queue, getattr(data, self.unique), None)
        entry = self._new(queue, data)
        self._store(queue, [*self.entries(queue), entry])
        await session.flush()
        return QueueEntry(queue, entry)

    async def update(self, session: AsyncSession, row: QueueEntry, data: Any, actor: User) -> QueueEntry:
        queue = row.queue
        self._check_unique(queue, getattr(data, self.unique), row.item["id"])
        changed = self._new(queue, data)
        if self.key != "dispositions":
            changed["id"] = row.item["id"]  # a response keeps its id; a code's id is the code's
        self._store(queue, [changed if e["id"] == row.item["id"] else e for e in self.entries(queue)])
        await session.flush()
        return QueueEntry(queue, changed)

    async def delete(self, session: AsyncSession, row: QueueEntry, actor: User) -> None:
        """Removed from the queue's list; interactions wrapped up with a code keep it."""
        self._store(row.queue, [e for e in self.entries(row.queue) if e["id"] != row.item["id"]])
        await session.flush()


wrap_up_codes = QueueListService("dispositions", label="wrap-up code", unique="code")
canned_responses = QueueListService("canned", label="canned response", unique="title")
