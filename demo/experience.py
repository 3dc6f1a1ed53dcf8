"""The demo bank's experience data (issue #12 item 5): customers' survey answers, agents' pulses
and end-of-shift check-ins, and the queues' service level per interval over the seeded history,
so the experience dashboard and the alert rules have something to show on first run.

Deterministic (one seed) and idempotent: interactions that already have an answer or a pulse,
days that already have a check-in, and intervals already counted are left alone. Answers and
pulses lean the same way on purpose: contacts an agent tagged "system slow" or "missing
information" are rated lower by their customers, as a bank would hope to discover.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from experience.resolution_rollup import rebuild_resolution
from experience.rollup import run_rollup
from experience.survey_models import SurveyDelivery, SurveyInvitation, SurveyStatus
from interactions.feedback import record_feedback
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.states import Channel, State
from routing.history import QueueInterval, bump_many, interval_start
from workforce.models import Agent, Queue

ANSWER_RATE = 0.65
PULSE_RATE = 0.75
CHECKIN_RATE = 0.6  # of the days an agent worked
TAG_WEIGHTS = (
    ("system slow", 0.18),
    ("missing information", 0.14),
    ("angry customer", 0.10),
    ("process unclear", 0.08),
    ("great teamwork", 0.12),
)
COMMENTS = (
    "Quick and friendly, thank you.",
    "Took far too long to get through.",
    "The agent had to ask me for the same details twice.",
    "Sorted in one call.",
    None,
)
DELIVERY = {Channel.CHAT: SurveyDelivery.INLINE, Channel.VOICE: SurveyDelivery.SMS}


def _clip(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


async def seed_experience(session: AsyncSession, *, seed: int, now: datetime) -> dict[str, int]:
    """Answers, pulses, check-ins and interval statistics for the completed history; then the
    dashboard's rollup. Commits."""
    rng = random.Random(seed + 2)
    counts = {"answers": 0, "pulses": 0, "checkins": 0, "intervals": 0}
    queues = {q.id: q for q in (await session.scalars(select(Queue))).all()}
    agents = {a.id: a for a in (await session.scalars(select(Agent))).all()}
    answered = set(await session.scalars(select(CustomerFeedback.interaction_id)))
    pulsed = set(
        await session.scalars(select(AgentPulse.interaction_id).where(AgentPulse.interaction_id.is_not(None)))
    )
    done = list(
        await session.scalars(
            select(Interaction)
            .where(Interaction.state == State.COMPLETED, Interaction.agent_id.is_not(None))
            .order_by(Interaction.created_at, Interaction.id)
        )
    )
    worked: dict[tuple[object, object], datetime] = {}
    for interaction in done:
        assert interaction.agent_id is not None and interaction.ended_at is not None
        agent = agents[interaction.agent_id]
        queue = queues.get(interaction.queue_id) if interaction.queue_id else None
        worked[(agent.id, interaction.ended_at.date())] = interaction.ended_at
        # Every draw is taken whether or not it is used, so a second seed walks the same sequence.
        tags = [tag for tag, weight in TAG_WEIGHTS if rng.random() < weight]
        pulse_roll, mood_noise, answer_roll = rng.random(), rng.gauss(0, 0.7), rng.random()
        minutes, delight_noise, full_survey = rng.randint(5, 600), rng.gauss(0, 0.8), rng.random() < 0.6
        nps_noise, ces_noise, comment_roll, comment = (
            rng.gauss(0, 1.2),
            rng.gauss(0, 0.8),
            rng.random(),
            rng.choice(COMMENTS),
        )
        pain = sum(1 for t in tags if t in ("system slow", "missing information", "angry customer"))
        if interaction.id not in pulsed and pulse_roll < PULSE_RATE:
            mood = 4.0 - 0.9 * pain + (0.6 if "great teamwork" in tags else 0) + mood_noise
            session.add(
                AgentPulse(
                    agent_id=agent.id,
                    interaction_id=interaction.id,
                    kind=PulseKind.INTERACTION,
                    score=_clip(mood, 1, 5),
                    tags=tags,
                    queue=queue.name if queue else None,
                    team=agent.teams[0] if agent.teams else None,
                    day=interaction.ended_at.date(),
                    created_at=interaction.ended_at + timedelta(seconds=20),
                )
            )
            counts["pulses"] += 1
        at = interaction.ended_at + timedelta(minutes=minutes)
        if interaction.id in answered or answer_roll >= ANSWER_RATE or at > now:
            continue
        delight = 4.2 - 1.1 * pain + delight_noise
        questions = ["csat", "nps", "ces"] if full_survey else ["csat"]
        scores = {"csat": _clip(delight, 1, 5)}
        if full_survey:
            scores["nps"] = _clip(delight * 2.2 + nps_noise, 0, 10)
            scores["ces"] = _clip(delight * 1.4 + ces_noise, 1, 7)
        comment = comment if comment_roll < 0.3 else None
        session.add(
            SurveyInvitation(
                interaction_id=interaction.id,
                customer_id=interaction.customer_id,
                channel=interaction.channel.value,
                delivery=DELIVERY.get(interaction.channel, SurveyDelivery.EMAIL),
                questions=questions,
                status=SurveyStatus.ANSWERED,
                created_at=interaction.ended_at,
                sent_at=interaction.ended_at,
                expires_at=interaction.ended_at + timedelta(days=7),
                answered_at=at,
            )
        )
        await record_feedback(
            session,
            interaction,
            scores=scores,
            comment=comment,
            now=at,
            already="already answered",
            field="interaction_id",
            event_extra={"comment": comment, "via": "demo"},
        )
        counts["answers"] += 1
    counts["checkins"] = await _checkins(session, rng, agents, worked)
    counts["intervals"] = await _intervals(session, rng, done, queues)
    await session.commit()
    await run_rollup(session, now=now)
    await rebuild_resolution(session, now=now)
    return counts


async def _checkins(session: AsyncSession, rng: random.Random, agents: dict, worked: dict) -> int:
    have = {
        (a, d)
        for a, d in (
            await session.execute(
                select(AgentPulse.agent_id, AgentPulse.day).where(AgentPulse.kind == PulseKind.SHIFT)
            )
        ).all()
    }
    added = 0
    for (agent_id, day), last in sorted(worked.items(), key=lambda kv: (kv[1], str(kv[0][0]))):
        roll, energy_noise, workload_noise = rng.random(), rng.gauss(0, 1), rng.gauss(0, 0.8)
        if (agent_id, day) in have or roll >= CHECKIN_RATE:
            continue
        agent = agents[agent_id]
        energy = _clip(3.4 + energy_noise, 1, 5)
        session.add(
            AgentPulse(
                agent_id=agent_id,
                interaction_id=None,
                kind=PulseKind.SHIFT,
                score=energy,
                workload=_clip(6 - energy + workload_noise, 1, 5),
                tags=[],
                team=agent.teams[0] if agent.teams else None,
                day=day,
                created_at=last + timedelta(minutes=30),
            )
        )
        added += 1
    return added


async def _intervals(session: AsyncSession, rng: random.Random, done: list[Interaction], queues: dict) -> int:
    """The engine's interval counters for the seeded history (the seeding walks the state machine
    without the engine). Some days run short-staffed: waits beyond the target there."""
    counted = set(await session.scalars(select(QueueInterval.interval_start)))
    increments: dict[tuple[str, datetime], dict[str, float]] = {}
    for interaction in done:
        unlucky = rng.random() < 0.15
        queue = queues.get(interaction.queue_id) if interaction.queue_id else None
        if queue is None or interaction.connected_at is None:
            continue
        start = interval_start(interaction.connected_at)
        if start in counted:
            continue
        wait = (interaction.connected_at - interaction.created_at).total_seconds()
        # A short-staffed day (about one in four) answers most contacts late.
        short_day = (sum(map(ord, queue.name)) + interaction.connected_at.date().toordinal()) % 4 == 0
        late = short_day or unlucky
        within = 0 if late or wait > queue.sl_threshold_seconds else 1
        row = increments.setdefault((queue.name, start), {})
        for name, value in (
            ("offered", 1),
            ("accepted", 1),
            ("answered_within_sl", within),
            ("completed", 1),
            ("answer_wait_seconds", wait),
        ):
            row[name] = row.get(name, 0) + value
    await bump_many(session, increments)
    return len(increments)
