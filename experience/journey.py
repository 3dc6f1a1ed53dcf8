"""The customer journey across channels (issue #12 item 4): one customer's touchpoints on one line,
and for a topic the paths customers take, where they repeat or drop, and first-contact resolution.

Definitions (one place, used by the pages, the API and the dashboard):

- A **journey** is a customer's run of contacts on one topic, each within ``REPEAT_WINDOW`` (7 days)
  of the one before; a contact after a longer gap starts a new journey. Merged profiles count as
  their survivor (a customer who called as a stranger and chatted as themselves is one person).
- A contact **reached an agent** when it was ever connected (``connected_at`` set).
- A contact is **resolved first time** when it reached an agent and the customer did not contact
  us again on the same topic within ``REPEAT_WINDOW``. **First-contact resolution** (FCR) of a
  queue or agent: resolved first time / contacts that reached an agent there. A contact younger
  than the window cannot be judged yet; those are counted apart ("still open"), never as resolved.
- A **repeat** contact follows a same-topic contact of the same customer within the window; the
  **repeat-contact rate** of a queue is repeats / contacts it received.
- The **funnel** of a topic: journeys started → whose first contact reached an agent → resolved
  first time → repeated within 7 days (the complement of the third among judged journeys that
  reached an agent, plus those that never did and came back).

Everything is computed from ``interactions`` rows of a bounded window (at most ``MAX_DAYS``), plus
the window's length after it so that the last contacts' repeats are seen.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, ValueTier
from customers.service import merged_customer_ids
from interactions.models import Interaction
from interactions.states import Channel, State
from switchboard.errors import Invalid
from workforce.models import Agent, Queue

REPEAT_WINDOW = timedelta(days=7)
MAX_DAYS = 92  # a quarter: the page reads every contact of the window
MAX_CUSTOMER_CONTACTS = 500  # one customer's line, newest last
PATH_LIMIT = 20  # the most common paths shown


@dataclass(frozen=True)
class Contact:
    """One interaction as the journey sees it."""

    id: uuid.UUID
    customer_id: uuid.UUID  # the surviving profile
    channel: Channel
    direction: str
    topic: str | None
    state: State
    disposition: str | None
    created_at: datetime
    connected: bool
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None


@dataclass(frozen=True)
class Touchpoint:
    """A contact on a customer's line, with what the line says about it."""

    contact: Contact
    queue_name: str | None
    agent_name: str | None
    repeat_of: uuid.UUID | None  # the same-topic contact it repeats (within the window)
    outcome: str  # resolved / abandoned / transferred / open / failed / handled


@dataclass
class Journey:
    customer_id: uuid.UUID
    topic: str
    contacts: list[Contact] = field(default_factory=list)

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(c.channel.value for c in self.contacts)

    @property
    def reached_agent(self) -> bool:
        return self.contacts[0].connected

    @property
    def repeated(self) -> bool:
        return len(self.contacts) > 1

    @property
    def dropped(self) -> bool:
        """The last contact never reached an agent: the customer gave up (or is still waiting)."""
        return not self.contacts[-1].connected


@dataclass(frozen=True)
class Funnel:
    started: int
    reached_agent: int
    resolved_first_time: int
    repeated: int
    still_open: int  # first contact younger than the window and not repeated yet: not judged


@dataclass(frozen=True)
class PathRow:
    path: tuple[str, ...]
    journeys: int
    dropped: int  # of them, ending on a contact that never reached an agent


@dataclass(frozen=True)
class ResolutionRow:
    """First-contact resolution and repeat rate for one queue or agent."""

    key: uuid.UUID | None
    name: str
    received: int  # contacts in the window (queue) or handled (agent)
    handled: int  # reached an agent
    judged: int  # handled and old enough to know whether they were repeated
    resolved_first_time: int
    repeats: int  # contacts that repeated an earlier same-topic contact

    @property
    def fcr(self) -> float | None:
        return self.resolved_first_time / self.judged if self.judged else None

    @property
    def repeat_rate(self) -> float | None:
        return self.repeats / self.received if self.received else None


@dataclass(frozen=True)
class TopicJourneys:
    since: datetime
    until: datetime
    topic: str | None
    funnel: Funnel
    paths: list[PathRow]
    queues: list[ResolutionRow]
    agents: list[ResolutionRow]
    topics: list[str]  # every topic seen in the window (for the filter)


# --------------------------------------------------------------------------- reading


def _window(since: datetime, until: datetime) -> None:
    if until <= since:
        raise Invalid("The window must end after it starts", field="until")
    if until - since > timedelta(days=MAX_DAYS):
        raise Invalid(f"At most {MAX_DAYS} days at a time", field="since")


async def survivors_of(session: AsyncSession) -> dict[uuid.UUID, uuid.UUID]:
    """Merged profile -> the profile it ended up in (merges are few; read them all)."""
    rows = (
        await session.execute(
            select(Customer.id, Customer.merged_into_id).where(Customer.merged_into_id.is_not(None))
        )
    ).all()
    into = {r.id: r.merged_into_id for r in rows}
    resolved: dict[uuid.UUID, uuid.UUID] = {}
    for start in into:
        current, hops = start, 0
        while current in into and hops < 32:  # the bound guards against a corrupt cycle
            current, hops = into[current], hops + 1
        resolved[start] = current
    return resolved


def contact_of(row: Any, survivors: dict[uuid.UUID, uuid.UUID]) -> Contact:
    return Contact(
        id=row.id,
        customer_id=survivors.get(row.customer_id, row.customer_id),
        channel=Channel(row.channel),
        direction=str(getattr(row.direction, "value", row.direction)),
        topic=row.topic,
        state=State(row.state),
        disposition=row.disposition,
        created_at=row.created_at,
        connected=row.connected_at is not None,
        queue_id=row.queue_id,
        agent_id=row.agent_id,
    )


CONTACT_COLUMNS = (
    Interaction.id,
    Interaction.customer_id,
    Interaction.channel,
    Interaction.direction,
    Interaction.topic,
    Interaction.state,
    Interaction.disposition,
    Interaction.created_at,
    Interaction.connected_at,
    Interaction.queue_id,
    Interaction.agent_id,
)


def outcome(contact: Contact) -> str:
    """A word for how the contact ended, as a supervisor reads a journey line."""
    if contact.state is State.COMPLETED:
        return "resolved" if contact.disposition in (None, "resolved") else "handled"
    if contact.state is State.ABANDONED:
        return "abandoned"
    if contact.state is State.TRANSFERRED:
        return "transferred"
    if contact.state is State.FAILED:
        return "failed"
    return "open"


def link_repeats(contacts: Sequence[Contact]) -> dict[uuid.UUID, uuid.UUID]:
    """Contact id -> the same-topic contact of the same customer it follows within the window
    (``contacts`` in time order)."""
    last: dict[tuple[uuid.UUID, str], Contact] = {}
    repeats: dict[uuid.UUID, uuid.UUID] = {}
    for c in contacts:
        if c.topic is None:
            continue
        key = (c.customer_id, c.topic)
        previous = last.get(key)
        if previous is not None and c.created_at - previous.created_at <= REPEAT_WINDOW:
            repeats[c.id] = previous.id
        last[key] = c
    return repeats


def journeys_of(contacts: Iterable[Contact]) -> list[Journey]:
    """Contacts (time order) cut into journeys: per customer and topic, a gap longer than the
    window starts a new one. Contacts without a topic belong to no journey."""
    open_: dict[tuple[uuid.UUID, str], Journey] = {}
    done: list[Journey] = []
    for c in contacts:
        if c.topic is None:
            continue
        key = (c.customer_id, c.topic)
        journey = open_.get(key)
        if journey is not None and c.created_at - journey.contacts[-1].created_at > REPEAT_WINDOW:
            done.append(journey)
            journey = None
        if journey is None:
            journey = open_[key] = Journey(c.customer_id, c.topic)
        journey.contacts.append(c)
    return done + list(open_.values())


async def names_of(session: AsyncSession) -> tuple[dict[uuid.UUID, str], dict[uuid.UUID, str]]:
    queues = {r.id: r.name for r in (await session.execute(select(Queue.id, Queue.name))).all()}
    agents = {
        r.id: r.display_name for r in (await session.execute(select(Agent.id, Agent.display_name))).all()
    }
    return queues, agents


async def customer_journey(session: AsyncSession, customer_id: uuid.UUID) -> list[Touchpoint]:
    """Every contact of the customer (and the profiles merged into them), oldest first, with the
    contact each one repeats; at most the newest ``MAX_CUSTOMER_CONTACTS``."""
    ids = await merged_customer_ids(session, customer_id)
    rows = (
        await session.execute(
            select(*CONTACT_COLUMNS)
            .where(Interaction.customer_id.in_(ids))
            .order_by(Interaction.created_at.desc(), Interaction.id)
            .limit(MAX_CUSTOMER_CONTACTS)
        )
    ).all()
    survivors = {i: customer_id for i in ids}
    contacts = [contact_of(r, survivors) for r in reversed(rows)]
    repeats = link_repeats(contacts)
    queues, agents = await names_of(session)
    return [
        Touchpoint(
            contact=c,
            queue_name=queues.get(c.queue_id) if c.queue_id else None,
            agent_name=agents.get(c.agent_id) if c.agent_id else None,
            repeat_of=repeats.get(c.id),
            outcome=outcome(c),
        )
        for c in contacts
    ]


async def topic_journeys(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    topic: str | None = None,
    tier: ValueTier | None = None,
    segment: str | None = None,
) -> TopicJourneys:
    """The journeys that started in [since, until) — on one topic, or every topic — of customers of
    that tier and segment (None: all): the funnel, the common paths, FCR and repeat rate per queue
    and agent. Contacts up to ``REPEAT_WINDOW`` after ``until`` are read to see repeats."""
    _window(since, until)
    horizon = min(until + REPEAT_WINDOW, now)
    query = (
        select(*CONTACT_COLUMNS, Customer.value_tier, Customer.segments)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.created_at >= since - REPEAT_WINDOW, Interaction.created_at < horizon)
        .order_by(Interaction.created_at, Interaction.id)
    )
    rows = (await session.execute(query)).all()
    survivors = await survivors_of(session)
    # The tier and segments that count are the survivor's (a merged-away profile keeps stale ones).
    wanted_customers: set[uuid.UUID] | None = None
    if tier is not None or segment is not None:
        people = {survivors.get(r.customer_id, r.customer_id) for r in rows}
        profile = (
            {
                r.id: (r.value_tier, r.segments or [])
                for r in (
                    await session.execute(
                        select(Customer.id, Customer.value_tier, Customer.segments).where(
                            Customer.id.in_(people)
                        )
                    )
                ).all()
            }
            if people
            else {}
        )
        wanted_customers = {
            cid
            for cid, (t, segs) in profile.items()
            if (tier is None or t == tier) and (segment is None or segment in segs)
        }
    contacts = [contact_of(r, survivors) for r in rows]
    topics = sorted({c.topic for c in contacts if c.topic and since <= c.created_at < until})
    if wanted_customers is not None:
        contacts = [c for c in contacts if c.customer_id in wanted_customers]
    if topic is not None:
        contacts = [c for c in contacts if c.topic == topic]

    repeats = link_repeats(contacts)
    repeated_ids = set(repeats.values())  # contacts that were followed by a repeat
    journeys = [j for j in journeys_of(contacts) if since <= j.contacts[0].created_at < until]

    def judged(c: Contact) -> bool:
        return c.id in repeated_ids or now - c.created_at >= REPEAT_WINDOW

    funnel = Funnel(
        started=len(journeys),
        reached_agent=sum(j.reached_agent for j in journeys),
        resolved_first_time=sum(
            j.reached_agent and not j.repeated and judged(j.contacts[0]) for j in journeys
        ),
        repeated=sum(j.repeated for j in journeys),
        still_open=sum(not j.repeated and not judged(j.contacts[0]) for j in journeys),
    )
    path_counts: Counter[tuple[str, ...]] = Counter()
    path_dropped: Counter[tuple[str, ...]] = Counter()
    for j in journeys:
        path_counts[j.path] += 1
        path_dropped[j.path] += j.dropped
    paths = [
        PathRow(path=p, journeys=n, dropped=path_dropped[p])
        for p, n in sorted(path_counts.items(), key=lambda item: (-item[1], item[0]))[:PATH_LIMIT]
    ]

    in_window = [c for c in contacts if since <= c.created_at < until]
    queue_names, agent_names = await names_of(session)
    return TopicJourneys(
        since=since,
        until=until,
        topic=topic,
        funnel=funnel,
        paths=paths,
        queues=_resolution(in_window, repeats, repeated_ids, judged, lambda c: c.queue_id, queue_names, True),
        agents=_resolution(
            in_window, repeats, repeated_ids, judged, lambda c: c.agent_id, agent_names, False
        ),
        topics=topics,
    )


Tally = dict[uuid.UUID | None, list[int]]  # key -> received, handled, judged, resolved, repeats


def tally(
    contacts: Iterable[Contact],
    repeats: dict[uuid.UUID, uuid.UUID],
    repeated_ids: set[uuid.UUID],
    judged: Callable[[Contact], bool],
    key_of: Callable[[Contact], uuid.UUID | None],
    count_received: bool,
) -> Tally:
    """Per queue (every contact it received) or per agent (the contacts they handled)."""
    figures: Tally = defaultdict(lambda: [0, 0, 0, 0, 0])
    for c in contacts:
        key = key_of(c)
        if not count_received and (key is None or not c.connected):
            continue  # an agent is judged on the contacts they handled
        f = figures[key]
        f[0] += 1
        if c.connected:
            f[1] += 1
            if c.topic is not None and judged(c):
                f[2] += 1
                f[3] += c.id not in repeated_ids
        f[4] += c.id in repeats
    return figures


def resolution_rows(figures: Tally, names: dict[uuid.UUID, str]) -> list[ResolutionRow]:
    rows = [
        ResolutionRow(
            key=key,
            name=names.get(key, "(deleted)") if key is not None else "(no queue)",
            received=f[0],
            handled=f[1],
            judged=f[2],
            resolved_first_time=f[3],
            repeats=f[4],
        )
        for key, f in figures.items()
    ]
    return sorted(rows, key=lambda r: (-r.received, r.name))


def _resolution(
    contacts: list[Contact],
    repeats: dict[uuid.UUID, uuid.UUID],
    repeated_ids: set[uuid.UUID],
    judged: Callable[[Contact], bool],
    key_of: Callable[[Contact], uuid.UUID | None],
    names: dict[uuid.UUID, str],
    count_received: bool,
) -> list[ResolutionRow]:
    return resolution_rows(tally(contacts, repeats, repeated_ids, judged, key_of, count_received), names)
