"""The interaction state machine (DESIGN §2). Pure: no database, so routing and tests share it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any


class Channel(enum.StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    TICKET = "ticket"
    EMAIL = "email"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class State(enum.StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap_up"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    TRANSFERRED = "transferred"
    FAILED = "failed"


TERMINAL_STATES = frozenset({State.COMPLETED, State.ABANDONED, State.TRANSFERRED, State.FAILED})

# Every legal move. Notes on the less obvious ones:
# - offered -> queued: the offer was rejected, timed out or rescinded; the interaction keeps its place.
# - created -> connected: an agent-initiated outbound contact is connected without queueing.
# - connected -> transferred: the interaction ends here and a child (parent link) carries on.
# - wrap-up is mandatory: capacity is released only when wrap-up completes.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.QUEUED, State.CONNECTED, State.ABANDONED, State.FAILED}),
    State.QUEUED: frozenset({State.OFFERED, State.ABANDONED, State.TRANSFERRED, State.FAILED}),
    State.OFFERED: frozenset({State.CONNECTED, State.QUEUED, State.ABANDONED, State.FAILED}),
    State.CONNECTED: frozenset({State.WRAP_UP, State.TRANSFERRED, State.FAILED}),
    State.WRAP_UP: frozenset({State.COMPLETED}),
    State.COMPLETED: frozenset(),
    State.ABANDONED: frozenset(),
    State.TRANSFERRED: frozenset(),
    State.FAILED: frozenset(),
}


def can_transition(current: State, target: State) -> bool:
    return target in TRANSITIONS[current]


def illegal_transitions() -> list[tuple[State, State]]:
    """Every (from, to) pair that is not allowed, self-loops included."""
    return [(a, b) for a in State for b in State if b not in TRANSITIONS[a]]


# Timeline convention: an event whose data names an agent under this key involved that agent in
# the interaction, which makes it visible to them for good (DESIGN §6 "offered or assigned").
AGENT_KEY = "agent_id"


def transition_data(
    from_state: State,
    to_state: State,
    reason: str | None,
    version: int,
    changes: dict[str, Any],
    agent_id: uuid.UUID | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "from": from_state.value,
        "to": to_state.value,
        "reason": reason,
        "version": version,
    }
    if changes:
        data["changes"] = {k: _json_safe(v) for k, v in changes.items()}
    if agent_id is not None:
        data[AGENT_KEY] = str(agent_id)
    return data


def _json_safe(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
