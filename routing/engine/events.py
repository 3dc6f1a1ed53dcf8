"""Decisions and events returned by every engine command.

Plain frozen dataclasses, so a later step can serialise them straight onto a stream
(``dataclasses.asdict(event) | {"kind": event.kind}``) and tests can compare them for equality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class Queued(Event):
    kind: ClassVar[str] = "queued"
    interaction_id: str
    queue: str
    priority: int
    filter_name: str | None = None
    step_index: int | None = None


@dataclass(frozen=True, slots=True)
class OfferCreated(Event):
    kind: ClassVar[str] = "offer_created"
    offer_id: str
    interaction_id: str
    agent_id: str
    queue: str
    expires_at: float
    trigger: str  # "arrival" (work looked for an agent) | "agent" (an agent looked for work)


@dataclass(frozen=True, slots=True)
class Assigned(Event):
    kind: ClassVar[str] = "assigned"
    offer_id: str
    interaction_id: str
    agent_id: str
    received_at: float | None = None  # when the API received the accept (judged against expiry)


@dataclass(frozen=True, slots=True)
class OfferRejected(Event):
    kind: ClassVar[str] = "offer_rejected"
    offer_id: str
    interaction_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferExpired(Event):
    """The agent missed the offer (no answer before ``expires_at``)."""

    kind: ClassVar[str] = "offer_expired"
    offer_id: str
    interaction_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferRescinded(Event):
    kind: ClassVar[str] = "offer_rescinded"
    offer_id: str
    interaction_id: str
    agent_id: str
    reason: str  # "abandoned" | "agent_offline" | "transferred"


@dataclass(frozen=True, slots=True)
class Requeued(Event):
    kind: ClassVar[str] = "requeued"
    interaction_id: str
    queue: str
    reason: str


@dataclass(frozen=True, slots=True)
class Escalated(Event):
    kind: ClassVar[str] = "escalated"
    interaction_id: str
    from_queue: str
    to_queue: str
    step_index: int
    priority: int


@dataclass(frozen=True, slots=True)
class Diverted(Event):
    """Every step expired and the final action took the interaction out of live routing."""

    kind: ClassVar[str] = "diverted"
    interaction_id: str
    action: str  # "callback" | "voicemail"


@dataclass(frozen=True, slots=True)
class AgentStatusChanged(Event):
    kind: ClassVar[str] = "agent_status_changed"
    agent_id: str
    presence: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class WrapUpStarted(Event):
    kind: ClassVar[str] = "wrap_up_started"
    interaction_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Completed(Event):
    kind: ClassVar[str] = "completed"
    interaction_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Abandoned(Event):
    kind: ClassVar[str] = "abandoned"
    interaction_id: str
    was: str  # "waiting" | "offered"


@dataclass(frozen=True, slots=True)
class Transferred(Event):
    kind: ClassVar[str] = "transferred"
    interaction_id: str
    from_agent: str | None
    to_queue: str | None
    to_agent: str | None


@dataclass(frozen=True, slots=True)
class Reprioritised(Event):
    """A supervisor raised or lowered waiting work's priority (its place in the queue moves)."""

    kind: ClassVar[str] = "reprioritised"
    interaction_id: str
    queue: str
    priority: int


@dataclass(frozen=True, slots=True)
class CommandRejected(Event):
    """A well-formed command that lost a race (stale offer, wrong agent, finished interaction)."""

    kind: ClassVar[str] = "command_rejected"
    command: str
    subject: str
    reason: str
