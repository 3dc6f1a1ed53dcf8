"""What the journey API answers (``experience.journey`` computes it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from experience.journey import ResolutionRow, TopicJourneys, Touchpoint


class TouchpointOut(BaseModel):
    interaction_id: uuid.UUID
    at: datetime
    channel: str
    direction: str
    topic: str | None
    state: str
    disposition: str | None
    outcome: str
    reached_agent: bool
    queue: str | None
    agent: str | None
    repeat_of: uuid.UUID | None

    @classmethod
    def of(cls, t: Touchpoint) -> TouchpointOut:
        c = t.contact
        return cls(
            interaction_id=c.id,
            at=c.created_at,
            channel=c.channel.value,
            direction=c.direction,
            topic=c.topic,
            state=c.state.value,
            disposition=c.disposition,
            outcome=t.outcome,
            reached_agent=c.connected,
            queue=t.queue_name,
            agent=t.agent_name,
            repeat_of=t.repeat_of,
        )


class FunnelOut(BaseModel):
    started: int
    reached_agent: int
    resolved_first_time: int
    repeated: int
    still_open: int


class PathOut(BaseModel):
    path: list[str]
    journeys: int
    dropped: int


class ResolutionOut(BaseModel):
    id: uuid.UUID | None
    name: str
    received: int
    handled: int
    judged: int
    resolved_first_time: int
    repeats: int
    first_contact_resolution: float | None
    repeat_contact_rate: float | None

    @classmethod
    def of(cls, r: ResolutionRow) -> ResolutionOut:
        return cls(
            id=r.key,
            name=r.name,
            received=r.received,
            handled=r.handled,
            judged=r.judged,
            resolved_first_time=r.resolved_first_time,
            repeats=r.repeats,
            first_contact_resolution=r.fcr,
            repeat_contact_rate=r.repeat_rate,
        )


class TopicJourneysOut(BaseModel):
    since: datetime
    until: datetime
    topic: str | None
    funnel: FunnelOut
    paths: list[PathOut]
    queues: list[ResolutionOut]
    agents: list[ResolutionOut]
    topics: list[str]

    @classmethod
    def of(cls, j: TopicJourneys) -> TopicJourneysOut:
        return cls(
            since=j.since,
            until=j.until,
            topic=j.topic,
            funnel=FunnelOut(**vars(j.funnel)),
            paths=[PathOut(path=list(p.path), journeys=p.journeys, dropped=p.dropped) for p in j.paths],
            queues=[ResolutionOut.of(r) for r in j.queues],
            agents=[ResolutionOut.of(r) for r in j.agents],
            topics=j.topics,
        )
