"""The floor as the console's home shows it (issue #11 item 1): per queue how many agents are
staffed (explicit members signed in, any state but offline) and the queue's colours, per agent the
state, reason, time in it, the work held (channel and the customer's tier), occupancy today and
whether they are out of adherence to the published schedule (``workforce.adherence``), with the
agents scheduled now who are not signed in.

A large floor is read once per process per second at most (``FloorCache``): every supervisor
socket in the process pages that one snapshot in memory, so 5,000 agents and many wallboards cost
one set of reads a second, not one per socket. The snapshot indexes its agents by team and by
queue, and keeps each filter's agents and staffed counts once worked out (``Snapshot.filtered``):
a view is then a slice of a list, not a scan of the floor. Filters: a queue (its members) and a
team (``Agent.teams``; the queues are those the team's agents are members of)."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from urllib.parse import urlencode

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from console.thresholds import Thresholds, all_thresholds
from customers.models import Customer
from interactions.models import Interaction
from interactions.states import State
from switchboard.db import utcnow
from workforce.adherence import (
    ACTUAL,
    DEFAULT_THRESHOLD,
    Activity,
    Span,
    out_since,
    planned_spans,
    scheduled_at,
)
from workforce.adherence_service import published_shifts
from workforce.models import Agent, Presence, Queue, QueueMember, Team

PAGE_SIZE = 50  # agents per page of the wallboard's table: the page, not the floor, is rendered
MAX_AGENTS_SHOWN = PAGE_SIZE  # kept for callers that size a summary


@dataclass(frozen=True)
class Work:
    channel: str
    tier: str | None
    wrapping: bool = False


@dataclass(frozen=True)
class QueueRow:
    name: str
    display_name: str
    staffed: int
    sl_threshold_seconds: int  # the service-level objective's "answered within"
    sl_target_percent: int = 80
    thresholds: Thresholds | None = None  # the wallboard's colours (console.thresholds)


@dataclass(frozen=True)
class AgentRow:
    display_name: str
    presence: Presence
    reason: str | None
    since: datetime
    seconds_in_state: int
    talking: tuple[str, ...] = ()  # the channels of the work held connected
    wrapping: int = 0  # work held in after-contact work
    agent_id: uuid.UUID | None = None  # links the row to the agent's page (state, sign-out)
    work: tuple[Work, ...] = ()  # every interaction held: channel, the customer's tier
    occupancy: float | None = None  # today, 0..1 (console.recorder); None before any sample
    teams: tuple[str, ...] = ()
    out_of_adherence: timedelta | None = None  # doing other than the schedule asks, beyond the grace
    asked: Activity | None = None  # what the published schedule asks now (None: no shift today)

    @property
    def state(self) -> str:
        """What a supervisor reads: the engine keeps an agent "available" while capacity lasts,
        so one holding work shows busy (or wrap-up) rather than idle."""
        if self.presence is not Presence.AVAILABLE:
            return self.presence.value
        if self.talking:
            return Presence.BUSY.value
        return Presence.WRAP_UP.value if self.wrapping else self.presence.value


@dataclass(frozen=True)
class Floor:
    queues: list[QueueRow]
    agents: list[AgentRow]
    signed_in: int  # all agents not offline that the filter keeps, shown or not
    queue: str | None = None  # the filter: one queue's figures and members only
    team: str | None = None  # the filter: one team's agents and the queues they serve
    page: int = 1
    pages: int = 1
    first: int = 1  # the 1-based position of the page's first agent
    # Scheduled now but not signed in, beyond the grace: (name, for how long), longest first.
    absent: tuple[tuple[str, timedelta], ...] = ()

    @property
    def staffed(self) -> dict[str, int]:
        return {q.name: q.staffed for q in self.queues}

    @property
    def thresholds(self) -> dict[str, int]:
        return {q.name: q.sl_threshold_seconds for q in self.queues}

    @property
    def colours(self) -> dict[str, Thresholds]:
        return {q.name: q.thresholds for q in self.queues if q.thresholds is not None}

    def query(self, **change: object) -> str:
        """The page's query string with ``change`` applied (filters stay in the URL: shareable)."""
        values: dict[str, object] = {"queue": self.queue, "team": self.team, "page": self.page} | change
        return urlencode({k: v for k, v in values.items() if v and not (k == "page" and v == 1)})


def in_state(seconds: int) -> str:
    """Time in state as H:MM:SS (or M:SS under an hour)."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


async def queue_names(session: AsyncSession) -> list[tuple[str, str]]:
    """Every queue (name, display name): the wallboard's filter."""
    return [
        (n, d)
        for n, d in (await session.execute(select(Queue.name, Queue.display_name).order_by(Queue.name)))
    ]


async def team_names(session: AsyncSession) -> list[tuple[str, str]]:
    rows = await session.execute(select(Team.name, Team.display_name).order_by(Team.name))
    return [(n, d or n) for n, d in rows]


# ---------------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)  # 5,000 of them per floor read: no __dict__ each
class SnapshotAgent:
    id: uuid.UUID
    display_name: str
    presence: Presence
    reason: str | None
    since: datetime
    teams: tuple[str, ...]
    queues: frozenset[str]


@dataclass(frozen=True)
class QueueInfo:
    name: str
    display_name: str
    sl_threshold_seconds: int
    sl_target_percent: int


@dataclass(frozen=True)
class Filtered:
    """One filter's part of a snapshot: its agents (the snapshot's order) and queues."""

    agents: list[SnapshotAgent]
    names: list[str]  # the queues shown, by name
    staffed: dict[str, int]  # per queue shown: its members among ``agents``


@dataclass(frozen=True)
class Snapshot:
    """Everything the wallboard shows from SQL, for every filter, read in four queries."""

    queues: list[QueueInfo]
    online: list[SnapshotAgent]  # not offline, longest in their state first
    work: Mapping[uuid.UUID, tuple[Work, ...]]
    thresholds: Mapping[str, Thresholds]
    team_queues: Mapping[str, frozenset[str]]  # queues any agent of the team is a member of
    # Today's published schedule per agent (workforce.adherence) and the names of those scheduled.
    planned: Mapping[uuid.UUID, list[Span]] = field(default_factory=dict)
    scheduled: Mapping[uuid.UUID, tuple[str, tuple[str, ...], datetime]] = field(default_factory=dict)
    # When the reads began (monotonic): a change told before then is in the snapshot.
    taken_at: float = field(default_factory=time.monotonic)
    # Each filter worked out once per snapshot (the sockets of a process share the snapshot).
    _filtered: dict[tuple[str | None, str | None], Filtered] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @cached_property
    def online_ids(self) -> frozenset[uuid.UUID]:
        """Who is signed in (the absent are the scheduled not in it): once per snapshot, not per view."""
        return frozenset(a.id for a in self.online)

    @cached_property
    def by_team(self) -> Mapping[str, list[SnapshotAgent]]:
        """The online agents of each team, in the snapshot's order (built once per snapshot)."""
        index: dict[str, list[SnapshotAgent]] = {}
        for a in self.online:
            for team in set(a.teams):  # a team named twice is still one membership
                index.setdefault(team, []).append(a)
        return index

    @cached_property
    def by_queue(self) -> Mapping[str, list[SnapshotAgent]]:
        """The online members of each queue, in the snapshot's order."""
        index: dict[str, list[SnapshotAgent]] = {}
        for a in self.online:
            for name in a.queues:
                index.setdefault(name, []).append(a)
        return index

    def filtered(self, queue: str | None, team: str | None) -> Filtered:
        """The agents and queues one filter keeps, worked out on first use per snapshot."""
        key = (queue, team)
        found = self._filtered.get(key)
        if found is not None:
            return found
        if queue is None and team is None:
            agents = self.online
        elif team is None:
            agents = self.by_queue.get(str(queue), [])
        elif queue is None:
            agents = self.by_team.get(team, [])
        else:  # both: walk the shorter list (each keeps the snapshot's order)
            of_queue, of_team = self.by_queue.get(queue, []), self.by_team.get(team, [])
            if len(of_queue) <= len(of_team):
                agents = [a for a in of_queue if team in a.teams]
            else:
                agents = [a for a in of_team if queue in a.queues]
        names = [q.name for q in self.queues]
        if queue is not None:
            names = [n for n in names if n == queue]
        if team is not None:
            served = self.team_queues.get(team, frozenset())
            names = [n for n in names if n in served]
        if queue is None and team is None:
            staffed = {n: len(self.by_queue.get(n, ())) for n in names}
        else:
            staffed = {n: 0 for n in names}
            for a in agents:
                for n in a.queues:
                    if n in staffed:
                        staffed[n] += 1
        found = Filtered(agents, names, staffed)
        self._filtered[key] = found
        return found


# An agent's teams as the stored JSON text, decoded once per distinct value (``_teams_of``): a
# floor's 5,000 agents carry about a hundred distinct lists, and decoding every row's JSON (twice:
# memberships and agents) was about half of a 5,000-agent floor read's CPU.
_TEAMS_TEXT = cast(Agent.teams, String)


@lru_cache(maxsize=4096)
def _teams_of(raw: str | None) -> tuple[str, ...]:
    return tuple(str(t) for t in json.loads(raw) or ()) if raw else ()


async def load_snapshot(session: AsyncSession) -> Snapshot:
    # Stamped before the first read: a notice that came while reading must not count as seen.
    began = time.monotonic()
    queues = [
        QueueInfo(*row)
        for row in await session.execute(
            select(
                Queue.name, Queue.display_name, Queue.sl_threshold_seconds, Queue.sl_target_percent
            ).order_by(Queue.name)
        )
    ]
    # The floor's two large reads (a row per agent and per membership) run as Core statements on
    # the session's connection: the ORM's result machinery adds nothing to rows of plain columns.
    core = await session.connection()
    memberships: dict[uuid.UUID, set[str]] = {}
    team_queues: dict[str, set[str]] = {}
    member_rows = await core.execute(
        select(QueueMember.agent_id, Queue.name, _TEAMS_TEXT)
        .join(Queue, Queue.id == QueueMember.queue_id)
        .join(Agent, Agent.id == QueueMember.agent_id)
    )
    for agent_id, queue_name, teams in member_rows:
        memberships.setdefault(agent_id, set()).add(queue_name)
        for team in _teams_of(teams):
            team_queues.setdefault(team, set()).add(queue_name)
    # Agents share a few queue sets: one frozenset each (fewer objects for the collector to walk).
    queue_sets: dict[frozenset[str], frozenset[str]] = {}

    def queues_of(agent_id: uuid.UUID) -> frozenset[str]:
        queues = frozenset(memberships.get(agent_id, ()))
        return queue_sets.setdefault(queues, queues)

    online = [
        SnapshotAgent(agent_id, name, presence, reason, since, _teams_of(teams), queues_of(agent_id))
        for agent_id, name, presence, reason, since, teams in await core.execute(
            select(
                Agent.id,
                Agent.display_name,
                Agent.presence,
                Agent.presence_reason,
                Agent.presence_since,
                _TEAMS_TEXT,
            )
            .where(Agent.presence != Presence.OFFLINE)
            .order_by(Agent.presence_since, Agent.display_name)
        )
    ]
    work: dict[uuid.UUID, list[Work]] = {}
    held = await session.execute(
        select(Interaction.agent_id, Interaction.state, Interaction.channel, Customer.value_tier)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.state.in_([State.CONNECTED, State.WRAP_UP]), Interaction.agent_id.is_not(None))
    )
    for holder, state, channel, tier in held:
        if holder is None:
            continue
        work.setdefault(holder, []).append(
            Work(str(channel.value), tier.value if tier is not None else None, state is State.WRAP_UP)
        )
    planned, scheduled = await _todays_schedule(session)
    return Snapshot(
        planned=planned,
        scheduled=scheduled,
        queues=queues,
        online=online,
        work={k: tuple(sorted(v, key=lambda w: (w.wrapping, w.channel))) for k, v in work.items()},
        thresholds=await all_thresholds(session),
        team_queues={k: frozenset(v) for k, v in team_queues.items()},
        taken_at=began,
    )


async def _todays_schedule(
    session: AsyncSession,
) -> tuple[dict[uuid.UUID, list[Span]], dict[uuid.UUID, tuple[str, tuple[str, ...], datetime]]]:
    """Published shifts overlapping the last and next 24 hours, as planned spans per agent, and
    the name, teams and presence-since of the agents they belong to (offline ones too: an
    absence shows)."""
    now = utcnow()
    shifts = await published_shifts(session, since=now - timedelta(days=1), until=now + timedelta(days=1))
    if not shifts:
        return {}, {}
    people = await session.execute(
        select(Agent.id, Agent.display_name, _TEAMS_TEXT, Agent.presence_since).where(
            Agent.id.in_(list(shifts))
        )
    )
    scheduled = {agent_id: (name, _teams_of(teams), since) for agent_id, name, teams, since in people}
    return {agent_id: planned_spans(s) for agent_id, s in shifts.items()}, scheduled


def _out_of_adherence(
    planned: list[Span] | None, presence: Presence, since: datetime, now: datetime
) -> tuple[timedelta | None, Activity | None]:
    if planned is None:
        return None, None
    actual = [Span(ACTUAL[presence], since, now)]
    asked, _ = scheduled_at(planned, now)
    began = out_since(planned, actual, now)
    lasted = now - began if began is not None else None
    return (lasted if lasted is not None and lasted > DEFAULT_THRESHOLD else None), asked


class FloorCache:
    """One snapshot per process, re-read at most every ``max_age`` seconds; concurrent callers
    wait for the same read instead of starting their own."""

    def __init__(self, sessionmaker: Callable[[], AsyncSession], *, max_age: float = 1.0) -> None:
        self._sessionmaker = sessionmaker
        self.max_age = max_age
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()
        self.reads = 0

    async def get(self, *, fresh_after: float = 0.0) -> Snapshot:
        """A snapshot taken after ``fresh_after`` (monotonic) if one can be, at most ``max_age`` old."""
        async with self._lock:
            snap = self._snapshot
            now = time.monotonic()
            if snap is None or now - snap.taken_at >= self.max_age or snap.taken_at < fresh_after:
                async with self._sessionmaker() as session:
                    snap = await load_snapshot(session)
                    await session.commit()
                self._snapshot, self.reads = snap, self.reads + 1
            return snap


def view(
    snap: Snapshot,
    *,
    now: datetime,
    queue: str | None = None,
    team: str | None = None,
    page: int = 1,
    occupancy: Mapping[uuid.UUID, float] | None = None,
) -> Floor:
    """The floor as one filter and page show it (the filter from the snapshot's index)."""
    kept = snap.filtered(queue, team)
    agents, names, staffed = kept.agents, kept.names, kept.staffed
    info = {q.name: q for q in snap.queues}
    pages = max(1, math.ceil(len(agents) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = agents[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    occupancy = occupancy or {}
    rows = []
    for a in shown:
        work = snap.work.get(a.id, ())
        out, asked = _out_of_adherence(snap.planned.get(a.id), a.presence, a.since, now)
        rows.append(
            AgentRow(
                a.display_name,
                a.presence,
                a.reason,
                a.since,
                int((now - a.since).total_seconds()),
                tuple(sorted(w.channel for w in work if not w.wrapping)),
                sum(1 for w in work if w.wrapping),
                a.id,
                work,
                occupancy.get(a.id),
                a.teams,
                out,
                asked,
            )
        )
    absent = []
    for agent_id, (name, teams, off_since) in snap.scheduled.items():
        if agent_id in snap.online_ids or (team is not None and team not in teams):
            continue
        lasted, _ = _out_of_adherence(snap.planned.get(agent_id), Presence.OFFLINE, off_since, now)
        if lasted is not None:
            absent.append((name, lasted))
    return Floor(
        queues=[
            QueueRow(
                n,
                info[n].display_name,
                staffed[n],
                info[n].sl_threshold_seconds,
                info[n].sl_target_percent,
                snap.thresholds.get(n),
            )
            for n in names
        ],
        agents=rows,
        signed_in=len(agents),
        queue=queue,
        team=team,
        page=page,
        pages=pages,
        first=(page - 1) * PAGE_SIZE + 1,
        absent=tuple(sorted(absent, key=lambda item: (-item[1], item[0]))),
    )


async def floor_view(
    session: AsyncSession, *, now: datetime, queue: str | None = None, team: str | None = None, page: int = 1
) -> Floor:
    """The floor read afresh (the page's first render; the sockets share ``FloorCache``)."""
    return view(await load_snapshot(session), now=now, queue=queue, team=team, page=page)
