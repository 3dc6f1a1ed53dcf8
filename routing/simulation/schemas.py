"""The simulation API's request and answer (``/api/workforce/simulations``).

One request runs one or two *sides* on the same seeded traffic: each side picks its rule set (a
stored version, one written for the run, or none: every class to its own queue) and may change
the roster (its own groups, or the shared roster scaled by ``staffing_percent``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.rules import RuleSet
from routing.simulation.scenario import (
    MAX_AGENTS,
    MAX_QUEUES,
    AgentGroup,
    ResolutionModel,
    SimQueue,
    Traffic,
)


class SideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, Field(min_length=1, max_length=60)]
    rule_set_version: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    rule_set: RuleSet | None = None
    roster: Annotated[list[AgentGroup] | None, Field(min_length=1, max_length=MAX_AGENTS)] = None
    staffing_percent: Annotated[int, Field(ge=1, le=400)] = 100

    @model_validator(mode="after")
    def one_rule_set(self) -> SideRequest:
        if self.rule_set_version is not None and self.rule_set is not None:
            raise ValueError("rule_set: give a rule_set_version or a rule_set, not both")
        return self


class SimulationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # null: the queues (and their skill membership) in the database
    queues: Annotated[list[SimQueue] | None, Field(min_length=1, max_length=MAX_QUEUES)] = None
    # null: the agents in the database, every one on shift for the whole run
    roster: Annotated[list[AgentGroup] | None, Field(min_length=1, max_length=MAX_AGENTS)] = None
    traffic: Traffic
    resolution: ResolutionModel | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 1
    answer_seconds: Annotated[float, Field(ge=0, le=300)] = 0.0
    warmup_seconds: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    # The wall clock (Unix seconds) of the run's first interval, for rules that read time.hour
    # (null: 2024-01-01 00:00 UTC).
    start_epoch: Annotated[float | None, Field(ge=0, le=4e9)] = None
    sides: Annotated[list[SideRequest], Field(min_length=1, max_length=2)]


class SimulationJob(BaseModel):
    id: str
    status: Literal["queued", "started", "finished", "failed"]
    progress: float = Field(description="0 to 1, across every side")
    url: str
    error: str | None = None
    result: dict[str, Any] | None = Field(
        default=None,
        description="When finished: per side its label, rule set, agents and figures "
        "(overall, by_tier, by_channel, by_queue, by_interval)",
    )
