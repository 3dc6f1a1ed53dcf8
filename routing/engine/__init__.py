"""The pure routing core: an in-memory, single-writer, deterministic matching engine."""

from routing.engine.core import Engine
from routing.engine.events import (
    Abandoned,
    AgentStatusChanged,
    Assigned,
    CommandRejected,
    Completed,
    Diverted,
    Escalated,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    OfferRescinded,
    Queued,
    Requeued,
    Transferred,
    WrapUpStarted,
)
from routing.engine.indexes import compile_target
from routing.engine.state import CHANNELS, EngineConfig, QueueConfig, Status
from routing.engine.stats import QueueStats, Stats

__all__ = [
    "CHANNELS",
    "Abandoned",
    "AgentStatusChanged",
    "Assigned",
    "CommandRejected",
    "Completed",
    "Diverted",
    "Engine",
    "EngineConfig",
    "Escalated",
    "Event",
    "OfferCreated",
    "OfferExpired",
    "OfferRejected",
    "OfferRescinded",
    "QueueConfig",
    "QueueStats",
    "Queued",
    "Requeued",
    "Stats",
    "Status",
    "Transferred",
    "WrapUpStarted",
    "compile_target",
]
