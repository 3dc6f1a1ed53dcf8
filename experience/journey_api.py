"""``/api/experience/journeys`` (a topic's paths, funnel and first-contact resolution) and
``/api/customers/{id}/journey`` (one customer's line). Supervisors; a customer's line is a read of
the customer outside held work, so it is audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator

from customers.models import Customer, ValueTier
from experience import journey
from experience.journey_schemas import TopicJourneysOut, TouchpointOut
from interactions.visibility import audit_customer_read
from switchboard.auth.models import User
from switchboard.db import utcnow
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.errors import NotFound

router = APIRouter(tags=["experience"])


@dataclass(frozen=True)
class JourneyFilters:
    """The filters every journey view takes (the page's form, the API's query)."""

    days: int = 30
    topic: str | None = None
    tier: ValueTier | None = None
    segment: str | None = None

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        return now - timedelta(days=self.days), now


def _blank_is_none(value: object) -> object:
    return value or None  # the page's "every tier" option sends tier=


def journey_filters(
    days: Annotated[int, Query(ge=1, le=journey.MAX_DAYS, description="the window, ending now")] = 30,
    topic: Annotated[str | None, Query(max_length=80)] = None,
    tier: Annotated[ValueTier | None, BeforeValidator(_blank_is_none)] = None,
    segment: Annotated[str | None, Query(max_length=80)] = None,
) -> JourneyFilters:
    return JourneyFilters(days=days, topic=topic or None, tier=tier, segment=segment or None)


async def read_topic_journeys(session: DbSession, filters: JourneyFilters) -> journey.TopicJourneys:
    now = utcnow()
    since, until = filters.window(now)
    return await journey.topic_journeys(
        session,
        since=since,
        until=until,
        now=now,
        topic=filters.topic,
        tier=filters.tier,
        segment=filters.segment,
    )


Filters = Annotated[JourneyFilters, Depends(journey_filters)]


@router.get("/api/experience/journeys", response_model=TopicJourneysOut)
async def topic_journeys(session: DbSession, user: RequireSupervisor, filters: Filters) -> TopicJourneysOut:
    """Journeys that started in the last ``days``: the funnel (started, reached an agent, resolved
    first time, repeated within 7 days), the most common channel paths, and first-contact
    resolution and repeat-contact rate per queue and agent."""
    found = await read_topic_journeys(session, filters)
    await session.commit()
    return TopicJourneysOut.of(found)


async def customer_line(session: DbSession, user: User, customer_id: uuid.UUID) -> list[journey.Touchpoint]:
    """The customer's touchpoints, the read audited; NotFound for no such customer."""
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    line = await journey.customer_journey(session, customer_id)
    await audit_customer_read(session, user=user, agent_id=None, customer_id=customer_id, what="journey")
    return line


@router.get("/api/customers/{customer_id}/journey", response_model=list[TouchpointOut])
async def customer_journey(
    customer_id: uuid.UUID, session: DbSession, user: RequireSupervisor
) -> list[TouchpointOut]:
    """The customer's contacts across channels, oldest first, each with its outcome and the
    same-topic contact it repeats (within 7 days)."""
    line = await customer_line(session, user, customer_id)
    await session.commit()
    return [TouchpointOut.of(t) for t in line]
