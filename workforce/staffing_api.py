"""``POST /api/workforce/staffing``: Erlang C (or Erlang A with ``patience_seconds``) for one
interval — the fewest agents meeting a service-level target, or the service a given number gives.

The console's staffing page (console/staffing_pages.py) reads through the same ``answer``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from switchboard.deps import RequireSupervisor
from switchboard.errors import Invalid
from workforce.staffing import (
    MAX_OFFERED_LOAD,
    Demand,
    ImpossibleTarget,
    TooLarge,
    evaluate,
    fewest_agents,
)

router = APIRouter(tags=["workforce"])

# Upper bounds keep one request's work bounded (the Erlang A chain grows with the load).
MAX_CONTACTS = 1_000_000
MAX_AGENTS = 50_000


class StaffingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: Annotated[float, Field(ge=0, le=MAX_CONTACTS, description="Contacts offered in the interval")]
    interval_minutes: Annotated[int, Field(gt=0, le=1440, description="Length of the interval")] = 30
    aht_seconds: Annotated[float, Field(gt=0, le=86_400, description="Average handle time")]
    service_level_target: Annotated[
        float, Field(gt=0, le=1, description="Share of contacts to answer within target_answer_seconds")
    ] = 0.8
    target_answer_seconds: Annotated[float, Field(ge=0, le=3_600)] = 20
    shrinkage: Annotated[
        float,
        Field(ge=0, lt=1, description="Share of paid time not on the phones (breaks, training, absence)"),
    ] = 0.3
    patience_seconds: Annotated[
        float | None,
        Field(
            gt=0,
            le=86_400,
            description="Mean caller patience: set for Erlang A (callers abandon), null for Erlang C",
        ),
    ] = None
    agents: Annotated[
        int | None, Field(ge=0, le=MAX_AGENTS, description="Evaluate this many agents; null finds the fewest")
    ] = None

    @model_validator(mode="after")
    def bounded_load(self) -> StaffingRequest:
        load = self.contacts * self.aht_seconds / (self.interval_minutes * 60)
        if load > MAX_OFFERED_LOAD:
            raise ValueError(
                f"contacts: {load:,.0f} Erlangs offered (contacts x handle time / interval) is over "
                f"the {MAX_OFFERED_LOAD:,.0f} this calculator handles"
            )
        return self

    def demand(self) -> Demand:
        return Demand(
            contacts=self.contacts,
            interval_minutes=self.interval_minutes,
            aht_seconds=self.aht_seconds,
            service_level_target=self.service_level_target,
            target_answer_seconds=self.target_answer_seconds,
            shrinkage=self.shrinkage,
            patience_seconds=self.patience_seconds,
        )


class StaffingResponse(BaseModel):
    model: str = Field(description="erlang_c or erlang_a")
    offered_load_erlangs: float
    agents: int
    scheduled_agents: int = Field(description="Agents to schedule so that `agents` remain after shrinkage")
    probability_of_waiting: float
    service_level: float = Field(description="Share of offered contacts answered within the target time")
    asa_seconds: float | None = Field(
        description="Mean wait over offered contacts; null when the queue grows without limit"
    )
    occupancy: float
    abandon_rate: float


def answer(request: StaffingRequest) -> StaffingResponse:
    demand = request.demand()
    try:
        result = fewest_agents(demand) if request.agents is None else evaluate(demand, request.agents)
    except ImpossibleTarget as exc:
        raise Invalid(str(exc), field="service_level_target") from exc
    except TooLarge as exc:
        raise Invalid(str(exc), field=exc.field) from exc
    return StaffingResponse(
        model="erlang_c" if request.patience_seconds is None else "erlang_a",
        offered_load_erlangs=round(demand.offered_load, 6),
        agents=result.agents,
        scheduled_agents=result.scheduled_agents,
        probability_of_waiting=float(result.probability_of_waiting),
        service_level=float(result.service_level),
        asa_seconds=None if result.asa_seconds is None else float(result.asa_seconds),
        occupancy=float(result.occupancy),
        abandon_rate=float(result.abandon_rate),
    )


@router.post("/api/workforce/staffing", response_model=StaffingResponse)
def staffing(body: StaffingRequest, _user: RequireSupervisor) -> StaffingResponse:
    """Agents needed for one interval (Erlang C; Erlang A when ``patience_seconds`` is set).

    Runs in FastAPI's thread pool (a plain ``def``): an Erlang A search at thousands of agents
    takes a few hundred milliseconds and must not hold the event loop."""
    return answer(body)
