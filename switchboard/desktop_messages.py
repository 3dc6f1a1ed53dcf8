"""What an agent's desktops are told on the agent's topic (``switchboard.events.agent_topic``).

The protocol is this file, as ``switchboard.commands`` is the engine's: every message the routing
engine (and the adapters that change held work) publishes to an agent is one dataclass below,
sent as its JSON (``{"type": ..., fields...}``) and parsed back into the same class by the desktop
(``agent_desktop.ws``), which renders it. Live timeline and web-chat events travel on the same
topic but belong to their own modules (``customers.timeline``, ``interactions.chat``): ``parse``
answers None for them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from switchboard.events import agent_topic

_FIELDS: dict[type, tuple[dataclasses.Field[Any], ...]] = {}


def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = dataclasses.fields(cls)
    return found


def _plain(value: Any) -> Any:
    """A message field as JSON takes it: a nested card as a dict of its (flat) fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in _fields(type(value))}
    return value


@dataclass(frozen=True, kw_only=True)
class DesktopMessage:
    type: ClassVar[str]

    def as_json(self) -> dict[str, Any]:
        # One level down by hand: dataclasses.asdict deep-copies every value (lists included),
        # ~15 ms of a take-over's install that offers to 1,000 agents.
        return {"type": self.type, **{f.name: _plain(getattr(self, f.name)) for f in _fields(type(self))}}

    def to(self, agent_id: object) -> tuple[str, dict[str, Any]]:
        """(the agent's topic, this message): what ``publish_many`` takes."""
        return agent_topic(agent_id), self.as_json()


@dataclass(frozen=True, kw_only=True)
class OfferCard:
    """Everything the offer toast shows, sent with the offer so no socket reads SQL for it."""

    channel: str
    customer_name: str
    tier: str
    segments: list[str]
    topic: str | None
    subject: str | None
    queue: str | None  # the queue's display name
    waiting_since: str  # ISO 8601: the interaction's place in line (virtual start)
    # A colleague transferred it: the toast asks from whom and with what note. None (an older
    # publisher) is asked too; False, the common case, needs no request.
    transferred: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Offer(DesktopMessage):
    """Work offered to this agent until ``expires_at`` (ISO 8601); accept or reject it by ``offer_id``."""

    type: ClassVar[str] = "offer"
    offer_id: str  # the durable (SQL) offer id
    interaction_id: str
    queue: str  # the queue's name
    expires_at: str
    card: OfferCard | None = None  # absent from an older publisher: the desktop reads the offer


@dataclass(frozen=True, kw_only=True)
class OfferClosed(DesktopMessage):
    """The offer is gone: rejected, expired (missed), rescinded (``conflict``, ``engine_failover``,
    the customer left...); ``reason`` says which."""

    type: ClassVar[str] = "offer_closed"
    offer_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Assigned(DesktopMessage):
    """The agent holds this work now (accepted, adopted, or back after a cancelled consult)."""

    type: ClassVar[str] = "assigned"
    interaction_id: str


@dataclass(frozen=True, kw_only=True)
class WrapUpStarted(DesktopMessage):
    type: ClassVar[str] = "wrap_up_started"
    interaction_id: str


@dataclass(frozen=True, kw_only=True)
class Completed(DesktopMessage):
    """Wrap-up done: the work leaves the desktop and its capacity is free."""

    type: ClassVar[str] = "completed"
    interaction_id: str


@dataclass(frozen=True, kw_only=True)
class CustomerChanged(DesktopMessage):
    """Who the customer of this held work is changed (a chat visitor verified themselves)."""

    type: ClassVar[str] = "customer_changed"
    interaction_id: str


@dataclass(frozen=True, kw_only=True)
class Presence(DesktopMessage):
    """The engine changed the agent's presence (e.g. not responding after a missed offer)."""

    type: ClassVar[str] = "presence"
    agent_id: str
    presence: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class SchedulePublished(DesktopMessage):
    """A supervisor published a schedule with shifts for this agent (workforce.schedule_service)."""

    type: ClassVar[str] = "schedule_published"
    schedule_id: str
    shifts: int
    first_shift: str  # ISO 8601 start of the agent's first shift in it
    summary: str  # e.g. "3 shifts from Mon 04 Jan 07:00", in the centre's time zone


@dataclass(frozen=True, kw_only=True)
class ShiftRequestChanged(DesktopMessage):
    """A shift swap or time-off request this agent made or is named in changed state
    (workforce.swap_service): requested, accepted by the peer, approved, refused or cancelled."""

    type: ClassVar[str] = "shift_request_changed"
    request_id: str
    kind: str  # swap, time_off
    state: str
    summary: str  # e.g. "Time off for Ann Tue 05 Jan 09:00 to 13:00: approved"


CATALOGUE: dict[str, type[DesktopMessage]] = {
    cls.type: cls
    for cls in (
        Offer,
        OfferClosed,
        Assigned,
        WrapUpStarted,
        Completed,
        CustomerChanged,
        Presence,
        SchedulePublished,
        ShiftRequestChanged,
    )
}

# The messages after which the desktop shows the work the agent holds again.
HELD_WORK_CHANGED = frozenset(cls.type for cls in (Assigned, WrapUpStarted, Completed, CustomerChanged))


def parse(raw: dict[str, Any]) -> DesktopMessage | None:
    """The message a topic event carries; None for another module's event type or a malformed
    one (missing or mistyped fields). Unknown fields are ignored."""
    kind = raw.get("type")
    cls = CATALOGUE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None
    values = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}
    if cls is Offer:
        card = values.get("card")
        try:
            values["card"] = OfferCard(**card) if isinstance(card, dict) else None
        except TypeError:
            values["card"] = None
    try:
        message = cls(**values)
    except TypeError:  # a required field missing
        return None
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if f.type == "str" and not isinstance(value, str):
            return None
    return message
