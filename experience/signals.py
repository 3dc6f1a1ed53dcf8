"""The signals alert rules read: one scanner per kind, each turning recent records into
:class:`Signal` s with the attributes a rule's condition may name (the per-kind :data:`SCHEMAS`).

A signal's ``event_key`` names the triggering event (the feedback row, the repeat contact, the
queue's interval, the agent's shift, the abandoned contact): a rule raises at most one follow-up
per key. Conditions are written in the routing language (``routing.conditions``) and read the
same customer and interaction attributes as routing rules do (``routing.context.rule_context``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from experience.models import SignalKind
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.states import State
from routing.conditions import BOOL, FLOAT, INT, INTERACTION_SCHEMA, STR, Attr, Schema, list_of
from routing.context import rule_context
from workforce.models import Agent, Queue

SENIOR_AGE = 65
NEGATIVE_PULSE = 2  # a pulse of 1 or 2 on the 1-5 scale is negative
SL_WINDOW = timedelta(minutes=15)
SL_INTERVALS = 8  # complete 15-minute intervals looked at per run (a missed run is caught up)
REPEAT_HORIZON = timedelta(days=7)  # how far back an earlier contact on the topic is looked for
NO_EARLIER_CONTACT = 1_000_000.0  # repeat.hours_since_same_topic when there was none
MAX_LINKS = 20

# What every customer-facing signal may read: the routing attributes, plus whether the customer
# is senior (a segment, or 65 and over by date of birth).
_CUSTOMER = INTERACTION_SCHEMA.merged(Schema({"customer.senior": Attr(BOOL)}))

SCHEMAS: dict[SignalKind, Schema] = {
    SignalKind.FEEDBACK: _CUSTOMER.merged(
        Schema(
            {
                "feedback.csat": Attr(INT),
                "feedback.nps": Attr(INT),
                "feedback.ces": Attr(INT),
                "feedback.has_nps": Attr(BOOL),
                "feedback.has_ces": Attr(BOOL),
                "feedback.has_comment": Attr(BOOL),
            }
        )
    ),
    SignalKind.REPEAT_CONTACT: _CUSTOMER.merged(
        Schema(
            {
                "repeat.hours_since_same_topic": Attr(FLOAT),
                "repeat.same_topic_contacts_7d": Attr(INT),
            }
        )
    ),
    SignalKind.SERVICE_LEVEL: Schema(
        {
            "queue.name": Attr(STR),
            "queue.service_level": Attr(FLOAT),
            "queue.sl_target": Attr(INT),
            "queue.offered": Attr(INT),
            "queue.answered_in_threshold": Attr(INT),
            "queue.abandoned": Attr(INT),
            "window.minutes": Attr(INT),
            "time.hour": Attr(INT),
            "time.weekday": Attr(INT),
        }
    ),
    SignalKind.EX_PULSE: Schema(
        {
            "agent.id": Attr(STR),
            "teams": Attr(list_of(STR)),
            "pulse.negative_in_shift": Attr(INT),
            "pulse.count_in_shift": Attr(INT),
            "pulse.average_in_shift": Attr(FLOAT),
        }
    ),
    SignalKind.ABANDON: _CUSTOMER.merged(Schema({"interaction.wait_seconds": Attr(FLOAT)})),
}


@dataclass
class Signal:
    kind: SignalKind
    event_key: str
    context: dict[str, Any]
    title: str
    topic: str
    at: datetime
    customer_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None
    interaction_ids: list[uuid.UUID] = field(default_factory=list)


def is_senior(customer: Customer, today: date) -> bool:
    if "senior" in (customer.segments or []):
        return True
    born = customer.date_of_birth
    if born is None:
        return False
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return age >= SENIOR_AGE


def customer_context(interaction: Interaction, customer: Customer, queue_name: str | None) -> dict[str, Any]:
    ctx = rule_context(interaction, customer, last_agent=None)
    ctx["customer.senior"] = is_senior(customer, interaction.created_at.date())
    ctx["queue.name"] = queue_name or ""
    return ctx


async def _queue_names(session: AsyncSession) -> dict[uuid.UUID, str]:
    return {qid: name for qid, name in (await session.execute(select(Queue.id, Queue.name))).all()}


async def feedback_signals(session: AsyncSession, since: datetime, now: datetime) -> list[Signal]:
    rows = (
        await session.execute(
            select(CustomerFeedback, Interaction, Customer)
            .join(Interaction, Interaction.id == CustomerFeedback.interaction_id)
            .join(Customer, Customer.id == CustomerFeedback.customer_id)
            .where(CustomerFeedback.created_at >= since, CustomerFeedback.created_at <= now)
        )
    ).all()
    queues = await _queue_names(session) if rows else {}
    signals = []
    for feedback, interaction, customer in rows:
        ctx = customer_context(
            interaction, customer, queues.get(interaction.queue_id) if interaction.queue_id else None
        )
        # A missing NPS or CES is absent (its default 0 is guarded by has_nps / has_ces in rules).
        ctx.update(
            {
                "feedback.csat": feedback.csat,
                "feedback.has_nps": feedback.nps is not None,
                "feedback.has_ces": feedback.ces is not None,
                "feedback.has_comment": bool(feedback.comment),
            }
        )
        if feedback.nps is not None:
            ctx["feedback.nps"] = feedback.nps
        if feedback.ces is not None:
            ctx["feedback.ces"] = feedback.ces
        scores = f"CSAT {feedback.csat}" + (f", NPS {feedback.nps}" if feedback.nps is not None else "")
        signals.append(
            Signal(
                SignalKind.FEEDBACK,
                f"feedback:{feedback.id}",
                ctx,
                title=f"{scores} from a {customer.value_tier.value} customer",
                topic=interaction.topic or "",
                at=feedback.created_at,
                customer_id=customer.id,
                agent_id=interaction.agent_id,
                queue_id=interaction.queue_id,
                interaction_ids=[interaction.id],
            )
        )
    return signals


async def repeat_contact_signals(session: AsyncSession, since: datetime, now: datetime) -> list[Signal]:
    new = (
        await session.execute(
            select(Interaction, Customer)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(
                Interaction.created_at >= since, Interaction.created_at <= now, Interaction.topic.is_not(None)
            )
        )
    ).all()
    if not new:
        return []
    customer_ids = {interaction.customer_id for interaction, _ in new}
    earlier_rows = (
        await session.execute(
            select(
                Interaction.id,
                Interaction.customer_id,
                Interaction.topic,
                Interaction.created_at,
                Interaction.agent_id,
            )
            .where(
                Interaction.customer_id.in_(customer_ids),
                Interaction.topic.is_not(None),
                Interaction.created_at >= since - REPEAT_HORIZON,
            )
            .order_by(Interaction.created_at)
        )
    ).all()
    by_topic: dict[tuple[uuid.UUID, str], list[Any]] = defaultdict(list)
    for row in earlier_rows:
        by_topic[(row.customer_id, row.topic)].append(row)
    queues = await _queue_names(session)
    signals = []
    for interaction, customer in new:
        topic = interaction.topic or ""
        before = [
            r
            for r in by_topic[(interaction.customer_id, topic)]
            if r.created_at < interaction.created_at
            and r.created_at >= interaction.created_at - REPEAT_HORIZON
        ]
        ctx = customer_context(
            interaction, customer, queues.get(interaction.queue_id) if interaction.queue_id else None
        )
        previous = before[-1] if before else None
        ctx["repeat.hours_since_same_topic"] = (
            (interaction.created_at - previous.created_at).total_seconds() / 3600
            if previous
            else NO_EARLIER_CONTACT
        )
        ctx["repeat.same_topic_contacts_7d"] = len(before)
        signals.append(
            Signal(
                SignalKind.REPEAT_CONTACT,
                f"repeat:{interaction.id}",
                ctx,
                title=f"Repeat contact on {topic!r}",
                topic=topic,
                at=interaction.created_at,
                customer_id=customer.id,
                # The agent who handled the earlier contact: whose resolution did not hold.
                agent_id=(previous.agent_id if previous else None) or interaction.agent_id,
                queue_id=interaction.queue_id,
                interaction_ids=([previous.id] if previous else []) + [interaction.id],
            )
        )
    return signals


def _interval_start(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


async def service_level_signals(session: AsyncSession, since: datetime, now: datetime) -> list[Signal]:
    """Per queue and complete 15-minute interval: of the contacts that queued in it, the share
    answered within the queue's threshold (abandoned and still-waiting ones count as missed)."""
    last_end = _interval_start(now)
    first_start = max(last_end - SL_INTERVALS * SL_WINDOW, _interval_start(since))
    rows = (
        await session.execute(
            select(
                Interaction.id,
                Interaction.queue_id,
                Interaction.queued_at,
                Interaction.connected_at,
                Interaction.state,
            ).where(
                Interaction.queue_id.is_not(None),
                Interaction.queued_at >= first_start,
                Interaction.queued_at < last_end,
            )
        )
    ).all()
    if not rows:
        return []
    queues = {q.id: q for q in await session.scalars(select(Queue))}
    buckets: dict[tuple[uuid.UUID, datetime], list[Any]] = defaultdict(list)
    for row in rows:
        buckets[(row.queue_id, _interval_start(row.queued_at))].append(row)
    signals = []
    for (queue_id, start), members in sorted(buckets.items(), key=lambda kv: kv[0][1]):
        queue = queues.get(queue_id)
        if queue is None:
            continue
        threshold = timedelta(seconds=queue.sl_threshold_seconds)
        met = [r for r in members if r.connected_at is not None and r.connected_at - r.queued_at <= threshold]
        missed = [r for r in members if r not in met]
        level = 100.0 * len(met) / len(members)
        signals.append(
            Signal(
                SignalKind.SERVICE_LEVEL,
                f"sl:{queue_id}:{start:%Y%m%dT%H%M}",
                {
                    "queue.name": queue.name,
                    "queue.service_level": level,
                    "queue.sl_target": queue.sl_target_percent,
                    "queue.offered": len(members),
                    "queue.answered_in_threshold": len(met),
                    "queue.abandoned": sum(1 for r in members if r.state == State.ABANDONED),
                    "window.minutes": int(SL_WINDOW.total_seconds() // 60),
                    "time.hour": start.hour,
                    "time.weekday": start.weekday(),
                },
                title=f"{queue.display_name}: service level {level:.0f}% (target {queue.sl_target_percent}%) "
                f"from {start:%H:%M} to {start + SL_WINDOW:%H:%M}",
                topic=f"service level: {queue.name}",
                at=start + SL_WINDOW,
                queue_id=queue_id,
                interaction_ids=[r.id for r in missed[:MAX_LINKS]],
            )
        )
    return signals


async def ex_pulse_signals(session: AsyncSession, since: datetime, now: datetime) -> list[Signal]:
    """Per agent and shift (the pulse's day): how many of their interaction pulses were negative."""
    rows = (
        await session.execute(
            select(AgentPulse, Agent)
            .join(Agent, Agent.id == AgentPulse.agent_id)
            .where(
                AgentPulse.kind == PulseKind.INTERACTION,
                AgentPulse.day >= since.date(),
                AgentPulse.created_at <= now,
            )
        )
    ).all()
    shifts: dict[tuple[uuid.UUID, date], list[AgentPulse]] = defaultdict(list)
    agents: dict[uuid.UUID, Agent] = {}
    for pulse, agent in rows:
        shifts[(agent.id, pulse.day)].append(pulse)
        agents[agent.id] = agent
    signals = []
    for (agent_id, day), pulses in shifts.items():
        agent = agents[agent_id]
        negative = [p for p in pulses if p.score <= NEGATIVE_PULSE]
        signals.append(
            Signal(
                SignalKind.EX_PULSE,
                f"ex:{agent_id}:{day.isoformat()}",
                {
                    "agent.id": str(agent_id),
                    "teams": list(agent.teams or []),
                    "pulse.negative_in_shift": len(negative),
                    "pulse.count_in_shift": len(pulses),
                    "pulse.average_in_shift": sum(p.score for p in pulses) / len(pulses),
                },
                title=f"{agent.display_name}: {len(negative)} negative pulses on {day:%d %b}",
                topic="agent experience",
                at=max(p.created_at for p in pulses),
                agent_id=agent_id,
                interaction_ids=[p.interaction_id for p in negative if p.interaction_id][:MAX_LINKS],
            )
        )
    return signals


async def abandon_signals(session: AsyncSession, since: datetime, now: datetime) -> list[Signal]:
    rows = (
        await session.execute(
            select(Interaction, Customer)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(
                Interaction.state == State.ABANDONED,
                Interaction.ended_at >= since,
                Interaction.ended_at <= now,
            )
        )
    ).all()
    queues = await _queue_names(session) if rows else {}
    signals = []
    for interaction, customer in rows:
        ctx = customer_context(
            interaction, customer, queues.get(interaction.queue_id) if interaction.queue_id else None
        )
        started = interaction.queued_at or interaction.created_at
        ended = interaction.ended_at or now
        ctx["interaction.wait_seconds"] = max((ended - started).total_seconds(), 0.0)
        who = "senior" if ctx["customer.senior"] else "vulnerable" if ctx["customer.vulnerable"] else "a"
        signals.append(
            Signal(
                SignalKind.ABANDON,
                f"abandon:{interaction.id}",
                ctx,
                title=f"{who.capitalize()} customer abandoned a {interaction.channel.value} contact",
                topic=interaction.topic or "",
                at=ended,
                customer_id=customer.id,
                agent_id=interaction.agent_id,
                queue_id=interaction.queue_id,
                interaction_ids=[interaction.id],
            )
        )
    return signals


Scanner = Callable[[AsyncSession, datetime, datetime], Awaitable[list[Signal]]]

SCANNERS: dict[SignalKind, Scanner] = {
    SignalKind.FEEDBACK: feedback_signals,
    SignalKind.REPEAT_CONTACT: repeat_contact_signals,
    SignalKind.SERVICE_LEVEL: service_level_signals,
    SignalKind.EX_PULSE: ex_pulse_signals,
    SignalKind.ABANDON: abandon_signals,
}
