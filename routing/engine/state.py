"""In-memory state of the matching engine: configuration, agents, interactions and offers.

Mutable ``__slots__`` classes owned by :class:`routing.engine.core.Engine`; nothing here is
shared with other threads (single writer).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routing.capacity import DEFAULT_CHANNEL_COST  # one table for the engine and the SQL check
from workforce.models import DEFAULT_CHANNEL_MAX, Presence, SelectionStrategy

# Fixed iteration order everywhere (determinism): never iterate a set of strings.
CHANNELS: tuple[str, ...] = ("voice", "chat", "ticket", "email")

DEFAULT_OFFER_TTL: Mapping[str, float] = {"voice": 20.0, "chat": 30.0, "ticket": 120.0, "email": 120.0}


@dataclass(frozen=True)
class EngineConfig:
    channel_cost: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_COST))
    offer_ttl: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_OFFER_TTL))
    default_channel_max: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_MAX))
    # Effective priority = priority + ageing_per_second * wait. One rate for the whole partition,
    # which is what makes the order of waiting work time-invariant (see core.py).
    ageing_per_second: float = 1 / 30
    # Voice is exclusive: an agent on a call gets nothing else, and only an agent with no other
    # work gets a call (DESIGN §2 "voice blocks other work unless configured").
    voice_blocks_other_work: bool = True
    missed_offer_presence: Presence = Presence.NOT_RESPONDING
    # An offer stays live this long past its expiry for answers already on their way: an accept
    # or reject is judged by when the API received it (``received_at``), not when it is processed,
    # so one clicked in time but queued behind other commands is still honoured. The host sets it;
    # the pure engine expires offers on the dot.
    answer_grace_seconds: float = 0.0


@dataclass(frozen=True)
class QueueConfig:
    name: str
    strategy: SelectionStrategy = SelectionStrategy.LONGEST_IDLE
    sl_threshold_seconds: float = 20.0
    # Skills summed to rank agents for best_proficiency (e.g. ("mortgages",)).
    rank_skills: tuple[str, ...] = ()
    # The queue's offer policy (workforce.models.OfferPolicy): True, the default, offers its work
    # only to an agent holding no pending offer; False offers up to the agent's free capacity.
    one_offer_at_a_time: bool = True
    # Seconds an agent has to answer an offer of this queue's work; None: the channel's default.
    offer_ttl_seconds: float | None = None


class Status(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap_up"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    DIVERTED = "diverted"  # final timeout -> callback / voicemail


ASSIGNED = frozenset({Status.CONNECTED, Status.WRAP_UP})
FINISHED = frozenset({Status.COMPLETED, Status.ABANDONED, Status.DIVERTED})

# A bucket entry is a sort key tuple whose last element is the id; entries are kept in sorted lists.
Entry = tuple[Any, ...]


@dataclass(frozen=True)
class LiveOffer:
    """An offer a previous engine made that SQL still holds live, as a rebuild reads it: the new
    engine keeps it (``Engine.enqueue(offered=...)``) rather than withdrawing it and offering again."""

    agent_id: str
    queue: str
    created_at: float
    expires_at: float


class Offer:
    __slots__ = (
        "id",
        "interaction_id",
        "agent_id",
        "channel",
        "cost",
        "created_at",
        "expires_at",
        "live",
        "answered",
        "inherited",
    )

    def __init__(
        self,
        id: str,
        interaction_id: str,
        agent_id: str,
        channel: str,
        cost: int,
        created_at: float,
        expires_at: float,
    ) -> None:
        self.id = id
        self.interaction_id = interaction_id
        self.agent_id = agent_id
        self.channel = channel
        self.cost = cost
        self.created_at = created_at
        self.expires_at = expires_at
        self.live = True
        self.answered = False  # the agent's desktop answered (if too late): it was not unresponsive
        # Made by a previous engine and kept through a take-over or rebuild: the desktop may have
        # lost its socket meanwhile, so a miss does not mark the agent not-responding.
        self.inherited = False


class AgentState:
    __slots__ = (
        "id",
        "seq",
        "skills",
        "languages",
        "teams",
        "capacity",
        "channel_max",
        "presence",
        "reason",
        "queues",
        "idle_since",
        "used",
        "counts",
        "offers",
        "work",
        "pending",
        "ctx",
        "entries",
        "slots",
    )

    def __init__(self, id: str, seq: int, now: float) -> None:
        self.id = id
        self.seq = seq
        self.skills: dict[str, int] = {}
        self.languages: tuple[str, ...] = ()
        self.teams: tuple[str, ...] = ()
        self.capacity = 100
        self.channel_max: dict[str, int] = {}
        self.presence = Presence.OFFLINE
        self.reason: str | None = None
        self.queues: tuple[str, ...] = ()
        self.idle_since = now
        self.used = 0  # capacity units held by live offers and assigned work
        self.counts: dict[str, int] = dict.fromkeys(CHANNELS, 0)  # per channel, offers + work
        self.offers: dict[str, Offer] = {}  # live offers by id
        self.work: dict[str, str] = {}  # assigned interaction id -> channel
        # A status asked for while an offer was pending (a break): it takes effect once the
        # agent's offers are answered or expire; meanwhile no new offer is made.
        self.pending: tuple[Presence, str | None] | None = None
        self.ctx: dict[str, Any] = {}  # what agent predicates read
        self.entries: list[tuple[list[Entry], Entry]] = []  # where this agent sits in the indexes
        self.slots: list[Any] = []  # (key id, strategy, queue config, bucket per channel), see core

    @property
    def busy(self) -> bool:
        return self.used > 0

    def refresh_ctx(self) -> None:
        self.ctx = {
            "agent.id": self.id,
            "languages": self.languages,
            "teams": self.teams,
            "skills": self.skills,
        }


class Item:
    """One interaction as the engine sees it."""

    __slots__ = (
        "id",
        "seq",
        "channel",
        "queue",
        "base_priority",
        "priority",
        "vs",
        "key",
        "required_skills",
        "target",
        "target_fn",
        "preferred",
        "preferred_required",
        "preferred_until",
        "order_by",
        "ctx",
        "declined",
        "status",
        "offer",
        "agent_id",
        "filter_name",
        "step_index",
        "ruleset_version",
        "step_deadline",
        "timer_token",
        "entries",
        "queued_at",
        "queue_token",
        "assigned_at",
    )

    def __init__(self, id: str, seq: int, channel: str, vs: float, ctx: Mapping[str, Any]) -> None:
        self.id = id
        self.seq = seq
        self.channel = channel
        self.queue = ""
        self.base_priority = 0
        self.priority = 0
        self.vs = vs  # virtual start: kept across requeues and transfers
        self.key: Entry = ()
        self.required_skills: dict[str, int] = {}
        self.target: str | None = None
        self.target_fn: Callable[[Mapping[str, Any]], Any] | None = None
        self.preferred: str | None = None
        self.preferred_required = False
        self.preferred_until: float | None = None
        self.order_by: SelectionStrategy | None = None
        self.ctx: dict[str, Any] = dict(ctx)
        self.declined: set[str] = set()  # agents who rejected or missed it: never offered again
        self.status = Status.WAITING
        self.offer: Offer | None = None
        self.agent_id: str | None = None
        self.filter_name: str | None = None
        self.step_index: int | None = None
        self.ruleset_version: int | None = None
        self.step_deadline: float | None = None  # absolute time the rule step expires
        self.timer_token = 0  # bumps invalidate scheduled step / preference timers
        self.entries: list[tuple[list[Entry], Entry]] = []
        self.queued_at = vs
        self.queue_token = 0  # identifies the current stay in a queue (for longest-wait stats)
        self.assigned_at: float | None = None
