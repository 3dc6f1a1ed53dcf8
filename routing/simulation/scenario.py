"""What a what-if simulation is asked to run (issue #13 item 6), as bounded Pydantic models.

A *scenario* is the centre (queues and a roster), its traffic and an optional resolution model;
the rule set that routes it is given separately (a published version, or one written for the
run), so two rule sets or two rosters can be run on the same seeded traffic.

Bounds keep one run's work bounded: an API or console request past them is refused (422 naming
the field) rather than simulated for minutes.

Lookups "by channel and tier" (handle time, patience) use keys ``"voice"`` or ``"voice/platinum"``:
the channel-and-tier key wins over the channel's.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routing.engine.state import CHANNELS
from workforce.models import SelectionStrategy

MAX_INTERVALS = 7 * 96  # a week of 15-minute intervals
MAX_CONTACTS = 300_000  # per run (one side of a comparison)
MAX_AGENTS = 5_000
MAX_CLASSES = 20_000
MAX_QUEUES = 200
DAY = 86_400.0

Seconds = Annotated[float, Field(gt=0, le=DAY)]


def _check_keys(table: dict[str, float], field: str) -> dict[str, float]:
    for key in table:
        channel, _, tier = key.partition("/")
        if channel not in CHANNELS or (tier == "" and "/" in key):
            raise ValueError(
                f"{field}: {key!r} is not a channel or channel/tier (channels: {', '.join(CHANNELS)})"
            )
    return table


class SimQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=60)]
    strategy: SelectionStrategy = SelectionStrategy.LONGEST_IDLE
    sl_threshold_seconds: Annotated[float, Field(ge=0, le=DAY)] = 20.0
    # Skill-based membership, as in the product: an agent holding all of these serves the queue
    # (and best-proficiency ranks on them).
    required_skills: dict[str, Annotated[int, Field(ge=0, le=5)]] = Field(default_factory=dict)
    one_offer_at_a_time: bool = True


class AgentGroup(BaseModel):
    """``count`` agents alike (named ``{name}-{n}``), on shift from ``shift_start_minutes`` to
    ``shift_end_minutes`` of the run (null: the whole run)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.:-]+$")]
    count: Annotated[int, Field(ge=0, le=MAX_AGENTS)] = 1
    skills: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=lambda: ["en"], max_length=20)
    teams: list[str] = Field(default_factory=list, max_length=20)
    channel_max: dict[str, Annotated[int, Field(ge=0, le=50)]] = Field(
        default_factory=lambda: {"voice": 1, "chat": 3, "ticket": 5, "email": 5}
    )
    capacity_units: Annotated[int, Field(ge=1, le=10_000)] = 100
    queues: list[str] = Field(default_factory=list, max_length=MAX_QUEUES)  # besides skill membership
    shift_start_minutes: Annotated[float, Field(ge=0, le=MAX_INTERVALS * 15)] = 0.0
    shift_end_minutes: Annotated[float | None, Field(gt=0, le=MAX_INTERVALS * 15)] = None

    @field_validator("channel_max")
    @classmethod
    def known_channels(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channels {unknown}")
        return value

    @model_validator(mode="after")
    def shift_order(self) -> AgentGroup:
        if self.shift_end_minutes is not None and self.shift_end_minutes <= self.shift_start_minutes:
            raise ValueError("shift_end_minutes: the shift must end after it starts")
        return self


class TrafficClass(BaseModel):
    """One kind of contact: its channel, what the rules see (tier, segments, language, topic) and,
    for the resolution model, the skill the work really needs."""

    model_config = ConfigDict(extra="forbid")

    share: Annotated[float, Field(ge=0, le=1e9)] = 1.0  # relative weight among the classes
    channel: str = "voice"
    tier: str = "standard"
    segments: list[str] = Field(default_factory=list, max_length=20)
    language: str = "en"
    topic: str = ""
    relationship_manager: str = ""  # an agent name from the roster ("" none)
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    # Where the class goes when no rule set routes the run (and where a misrouted contact is sent).
    queue: str | None = None
    needs_skill: str | None = None
    # The class's own expected contacts per interval (e.g. its queue and channel's forecast). When
    # every class has one, the traffic's volumes are their sums and the shares are not used.
    volumes: Annotated[
        list[Annotated[float, Field(ge=0, le=MAX_CONTACTS)]] | None, Field(max_length=MAX_INTERVALS)
    ] = None

    @field_validator("channel")
    @classmethod
    def known_channel(cls, value: str) -> str:
        if value not in CHANNELS:
            raise ValueError(f"unknown channel {value!r} (one of {', '.join(CHANNELS)})")
        return value


class Traffic(BaseModel):
    """Arrivals: a Poisson process whose rate is constant within each interval (``volumes``: the
    expected contacts per interval), each contact of a class drawn by ``share``."""

    model_config = ConfigDict(extra="forbid")

    interval_minutes: Annotated[int, Field(ge=1, le=1440)] = 30
    # Expected contacts per interval; may be left out when every class has its own volumes.
    volumes: list[Annotated[float, Field(ge=0, le=MAX_CONTACTS)]] = Field(default_factory=list)
    classes: Annotated[list[TrafficClass], Field(min_length=1, max_length=MAX_CLASSES)]
    handle_seconds: dict[str, Seconds] = Field(
        default_factory=lambda: {"voice": 300.0, "chat": 600.0, "email": 900.0, "ticket": 900.0}
    )
    # Mean patience (exponential); a channel absent here never abandons.
    patience_seconds: dict[str, Seconds] = Field(default_factory=dict)
    wrap_seconds: dict[str, Annotated[float, Field(ge=0, le=DAY)]] = Field(default_factory=dict)
    # The service-level threshold per channel (one for every strategy compared, so it is fair).
    sl_seconds: dict[str, Annotated[float, Field(ge=0, le=DAY)]] = Field(
        default_factory=lambda: {"voice": 20.0, "chat": 30.0, "email": 3600.0, "ticket": 3600.0}
    )

    @field_validator("volumes")
    @classmethod
    def bounded_volumes(cls, value: list[float]) -> list[float]:
        if len(value) > MAX_INTERVALS:
            raise ValueError(f"at most {MAX_INTERVALS} intervals")
        total = sum(value)
        if total > MAX_CONTACTS:
            raise ValueError(f"{total:,.0f} contacts is over the {MAX_CONTACTS:,} one run simulates")
        return value

    @field_validator("handle_seconds")
    @classmethod
    def handle_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_keys(value, "handle_seconds")

    @field_validator("patience_seconds")
    @classmethod
    def patience_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_keys(value, "patience_seconds")

    @field_validator("wrap_seconds", "sl_seconds")
    @classmethod
    def channel_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_keys(value, "channel table")

    @model_validator(mode="after")
    def handled_channels(self) -> Traffic:
        own = [c.volumes for c in self.classes if c.volumes is not None]
        if own:
            if len(own) != len(self.classes):
                raise ValueError("classes: give volumes for every class or for none")
            length = len(own[0])
            if any(len(v) != length for v in own) or (self.volumes and len(self.volumes) != length):
                raise ValueError("classes: every class's volumes need one figure per interval")
            self.volumes = [sum(column) for column in zip(*own, strict=True)]
            if sum(self.volumes) > MAX_CONTACTS:
                raise ValueError(
                    f"classes: {sum(self.volumes):,.0f} contacts is over the {MAX_CONTACTS:,} "
                    "one run simulates"
                )
        elif not any(c.share > 0 for c in self.classes):
            raise ValueError("classes: at least one class needs a share above 0")
        if not self.volumes:
            raise ValueError("volumes: give the expected contacts per interval")
        for c in self.classes:
            if c.channel not in self.handle_seconds and f"{c.channel}/{c.tier}" not in self.handle_seconds:
                raise ValueError(f"handle_seconds: no handle time for channel {c.channel!r}")
        return self

    @property
    def horizon_seconds(self) -> float:
        return len(self.volumes) * self.interval_minutes * 60.0


class ResolutionModel(BaseModel):
    """First-contact resolution: the chance an agent resolves a contact, by their proficiency
    (0-5) in the skill the contact needs (``by_proficiency[level]``; a queue's own list in
    ``by_queue`` wins). An agent below ``transfer_below`` in that skill cannot help: after
    ``misroute_handle_share`` of the handle time they transfer it (a misroute) to the class's
    queue, asking for that skill at ``transfer_below``; the next agent's resolution counts."""

    model_config = ConfigDict(extra="forbid")

    by_proficiency: Annotated[
        list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=6, max_length=6)
    ] = Field(default_factory=lambda: [0.3, 0.7, 0.76, 0.82, 0.88, 0.93])
    by_queue: dict[
        str, Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=6, max_length=6)]
    ] = Field(default_factory=dict)
    transfer_below: Annotated[int, Field(ge=0, le=5)] = 1
    misroute_handle_share: Annotated[float, Field(ge=0, le=1)] = 0.4


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queues: Annotated[list[SimQueue], Field(min_length=1, max_length=MAX_QUEUES)]
    roster: Annotated[list[AgentGroup], Field(min_length=1, max_length=MAX_AGENTS)]
    traffic: Traffic
    resolution: ResolutionModel | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 1
    # Seconds an agent takes to accept an offer (0: at once).
    answer_seconds: Annotated[float, Field(ge=0, le=300)] = 0.0
    # Contacts arriving before this are simulated but not counted (the centre starts empty).
    warmup_seconds: Annotated[float, Field(ge=0, le=DAY)] = 0.0
    # After the last interval the run continues (no new arrivals) at most this long to finish work.
    drain_seconds: Annotated[float, Field(ge=0, le=DAY)] = 4 * 3600.0
    # The wall clock the run's second 0 stands for (rules reading time.hour see it): 2024-01-01 00:00 UTC.
    start_epoch: Annotated[float, Field(ge=0, le=4e9)] = 1_704_067_200.0

    @model_validator(mode="after")
    def consistent(self) -> Scenario:
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queues: queue names must be unique")
        known = set(names)
        agents = sum(g.count for g in self.roster)
        if agents > MAX_AGENTS:
            raise ValueError(f"roster: {agents:,} agents is over the {MAX_AGENTS:,} one run simulates")
        groups = [g.name for g in self.roster]
        if len(set(groups)) != len(groups):
            raise ValueError("roster: group names must be unique")
        for g in self.roster:
            unknown = sorted(set(g.queues) - known)
            if unknown:
                raise ValueError(f"roster: group {g.name!r} serves unknown queues {unknown}")
        for c in self.traffic.classes:
            if c.queue is not None and c.queue not in known:
                raise ValueError(f"traffic: class queue {c.queue!r} is not one of the queues")
        if self.resolution is not None:
            unknown = sorted(set(self.resolution.by_queue) - known)
            if unknown:
                raise ValueError(f"resolution: by_queue names unknown queues {unknown}")
        return self
