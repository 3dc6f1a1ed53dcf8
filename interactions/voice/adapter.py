"""The carrier adapter interface: what Switchboard asks of any telephony provider.

The call flow (``calls.py``) is provider-neutral: it turns carrier events into interaction
changes and answers with an ``Instruction``. An adapter (``twilio.py``) only translates: its
webhooks into ``CallStatus``/digits, and instructions into the provider's markup (TwiML). A second
carrier is a second adapter, not a second call flow.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol


class CallStatus(enum.StrEnum):
    """Call progress as carriers report it (Twilio's CallStatus values)."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


# Twilio reports an answered call as CallStatus=in-progress, but its event name is "answered";
# other Twilio-compatible carriers send the event name. Both mean the same thing.
STATUS_ALIASES = {"answered": CallStatus.IN_PROGRESS}

# The call is over: whoever was waiting has gone, whoever was talking has hung up.
CALL_ENDED = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED}
)


def parse_call_status(raw: str) -> CallStatus | None:
    value = raw.strip().lower()
    if value in STATUS_ALIASES:
        return STATUS_ALIASES[value]
    try:
        return CallStatus(value)
    except ValueError:
        return None


# ------------------------------------------------------------------ instructions to the carrier


@dataclass(frozen=True)
class Menu:
    """Play the IVR menu and collect one digit (``attempt`` counts re-prompts)."""

    prompt: str
    attempt: int = 1


@dataclass(frozen=True)
class Hold:
    """Keep the caller waiting: say the queue position, play hold audio, offer a callback, loop."""

    position: int
    offer_callback: bool = True


@dataclass(frozen=True)
class Connecting:
    """Keep the caller on hold audio while their agent's device is being reached (and loop): no
    queue position, which would mislead someone already given to an agent, and no callback offer."""

    message: str = "Connecting you to an adviser. Please stay on the line."


@dataclass(frozen=True)
class Bridge:
    """Connect the caller to the agent (a transfer is a bridge to another agent): through the
    interaction's ``conference`` when the agent has been added to it (the carrier's REST API is
    configured: call control, mute and hold need it), else straight to the agent's device."""

    agent_id: uuid.UUID
    announcement: str = "Connecting you to an adviser now."
    conference: str | None = None


@dataclass(frozen=True)
class HangUp:
    """Say something (or nothing) and end the call."""

    message: str | None = None


Instruction = Menu | Hold | Connecting | Bridge | HangUp


class CarrierAdapter(Protocol):
    """What a provider adapter implements. Webhook routing (URLs, verification) is its own business."""

    provider: str

    def render(self, instruction: Instruction, *, base_url: str) -> str:
        """The provider's markup for one instruction; links are absolute under ``base_url``."""
        ...

    def verify(self, *, url: str, params: list[tuple[str, str]], signature: str | None) -> bool:
        """True when the request really came from the carrier (constant-time compare)."""
        ...
