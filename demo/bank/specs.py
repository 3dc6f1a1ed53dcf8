"""The demo bank's plan as plain data: the shapes ``build_demo_plan`` returns and ``seed_into`` writes.

Frozen dataclasses only (users, agents, queues, customers, past interactions), plus the sizes and
the seed every demo uses, so the generator and the writer share one vocabulary and nothing here
touches a database or a random number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal

from customers.models import ContactChannel, ValueTier
from interactions.models import MessageSender
from interactions.states import Channel
from switchboard.auth.models import Role
from workforce.models import SelectionStrategy

DEFAULT_SEED = 20261123
DEMO_PASSWORD = "switchboard"
DEFAULT_REGION = "GB"
CUSTOMER_COUNT = 200
COMPLETED_HISTORY = 150
ABANDONED_HISTORY = 8
HISTORY_DAYS = 120

# --------------------------------------------------------------------------------------------
# Plan shapes (pure data)


@dataclass(frozen=True)
class UserSpec:
    username: str
    display_name: str
    role: Role
    email: str


@dataclass(frozen=True)
class AgentSpec:
    username: str
    display_name: str
    team: str
    languages: tuple[str, ...]
    skills: dict[str, int]
    channel_max: dict[str, int]
    relationship_manager: bool = False


@dataclass(frozen=True)
class QueueSpec:
    name: str
    display_name: str
    channels: tuple[str, ...]
    sl_target_percent: int
    sl_threshold_seconds: int
    strategy: SelectionStrategy
    required_skills: dict[str, int]
    overflow: str | None
    wrap_up_seconds: int
    settings: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerSpec:
    display_name: str
    language: str
    timezone: str
    date_of_birth: date
    segments: tuple[str, ...]
    relationship_balance: Decimal
    products_held: int
    annual_profit: Decimal
    cost_to_serve: Decimal
    customer_since: date
    intended_tier: ValueTier
    phone: str
    email: str | None
    app_id: str | None
    relationship_manager: str | None  # an agent username
    preferred_channel: ContactChannel | None
    do_not_contact: bool
    marketing_consent: bool
    quiet_hours: tuple[time, time] | None


@dataclass(frozen=True)
class InteractionSpec:
    customer: int  # index into DemoPlan.customers
    channel: Channel
    queue: str
    topic: str
    subject: str
    agent: str | None  # agent username; None for an abandoned contact
    started_seconds_ago: int
    wait_seconds: int
    handle_seconds: int
    wrap_seconds: int
    messages: tuple[tuple[MessageSender, str], ...]
    note: str | None
    disposition: str | None
    abandoned: bool = False


@dataclass(frozen=True)
class DemoPlan:
    seed: int
    today: date
    users: tuple[UserSpec, ...]
    skills: tuple[tuple[str, str], ...]
    agents: tuple[AgentSpec, ...]
    queues: tuple[QueueSpec, ...]
    customers: tuple[CustomerSpec, ...]
    interactions: tuple[InteractionSpec, ...]


@dataclass
class SeedReport:
    users: int = 0
    agents: int = 0
    skills: int = 0
    queues: int = 0
    queue_members: int = 0
    customers: int = 0
    interactions: int = 0
    tiers: dict[str, int] = field(default_factory=dict)
    rule_set_published: bool = False
    experience: dict[str, int] = field(default_factory=dict)
