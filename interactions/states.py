"""The interaction state machine (DESIGN §2). Pure: no database, so routing and tests share it."""

from __future__ import annotations

import enum


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
