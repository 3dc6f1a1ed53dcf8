"""The experience dashboard's figures (issue #12 item 2), read from the rollups only (drill-down
excepted: one page of raw answers), so a year of data answers in well under a second.

Customer experience (CSAT / NPS / CES) and agent experience (interaction pulses, end-of-shift
check-ins) side by side per agent, team, queue, channel, tier and day; how they move together;
and the answers behind a figure. Agents' EX is shown only for groups with at least ``MIN_GROUP``
different respondents over the range: per agent it is never shown (a group of one).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, func, literal, literal_column, select, text, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from experience.dashboard_models import (
    Dimension,
    ExperienceDaily,
    ExperienceRespondent,
    ExperienceRespondentMonthly,
    ExperienceTagDaily,
)
from experience.dashboard_schemas import (
    CX,
    EX,
    HIDDEN_NOTE,
    MIN_GROUP,
    DrillRow,
    ExperienceDrill,
    ExperienceQuery,
    ExperienceSummary,
    ExperienceTogether,
    ExperienceTrend,
    GroupRow,
    ServiceLevelComparison,
    TagComparison,
    TrendDay,
)
from experience.rollup import as_date, month_end, month_of
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction
from interactions.pulse_models import AgentPulse, PulseKind
from workforce.models import Agent, Queue, Team

D = ExperienceDaily
CX_SUMS = ("csat_n", "csat_sum", "nps_n", "nps_promoters", "nps_detractors", "ces_n", "ces_sum")
EX_SUMS = ("pulse_n", "pulse_sum", "shift_n", "energy_sum", "workload_n", "workload_sum")
NONE_LABEL = "(none)"  # e.g. shift check-ins by queue, channel or tier: a shift spans them


def _avg(total: float, n: int) -> float | None:
    return round(total / n, 2) if n else None


def cx_of(s: dict[str, Any]) -> CX:
    nps_n = int(s["nps_n"])
    return CX(
        csat_n=int(s["csat_n"]),
        csat=_avg(s["csat_sum"], int(s["csat_n"])),
        nps_n=nps_n,
        nps=round(100.0 * (s["nps_promoters"] - s["nps_detractors"]) / nps_n, 1) if nps_n else None,
        ces_n=int(s["ces_n"]),
        ces=_avg(s["ces_sum"], int(s["ces_n"])),
    )


def ex_of(s: dict[str, Any], respondents: int) -> EX:
    """The group's EX, or nothing but the note when fewer than MIN_GROUP agents answered."""
    if respondents < MIN_GROUP:
        return EX(shown=False, note=HIDDEN_NOTE)
    return EX(
        shown=True,
        respondents=respondents,
        pulse_n=int(s["pulse_n"]),
        pulse=_avg(s["pulse_sum"], int(s["pulse_n"])),
        shift_n=int(s["shift_n"]),
        energy=_avg(s["energy_sum"], int(s["shift_n"])),
        workload=_avg(s["workload_sum"], int(s["workload_n"])),
    )


def _sums(columns: Sequence[str], model: Any = D) -> list[Any]:
    return [func.coalesce(func.sum(getattr(model, name)), 0).label(name) for name in columns]


def _in_range(q: ExperienceQuery, model: Any = D) -> tuple[Any, Any]:
    return model.day >= q.first_day(), model.day <= q.last_day()


async def _labels(session: AsyncSession, dimension: Dimension, keys: list[str]) -> dict[str, str]:
    labels = {k: (k or NONE_LABEL) for k in keys}
    if dimension is Dimension.AGENT:
        ids = [uuid.UUID(k) for k in keys if k]
        for agent_id, name in (
            await session.execute(select(Agent.id, Agent.display_name).where(Agent.id.in_(ids)))
        ).all():
            labels[agent_id.hex] = name
    elif dimension is Dimension.QUEUE:
        for name, shown in (await session.execute(select(Queue.name, Queue.display_name))).all():
            if name in labels:
                labels[name] = shown
    elif dimension is Dimension.TEAM:
        for name, shown in (await session.execute(select(Team.name, Team.display_name))).all():
            if name in labels and shown:
                labels[name] = shown
    return labels


def split_months(first: date, last: date) -> tuple[tuple[date, date] | None, list[tuple[date, date]]]:
    """The whole months inside first..last (the first days of the first and last of them, or None)
    and the ragged days either side, as (first, last) day ranges."""
    whole_from = first if first.day == 1 else month_end(first) + timedelta(days=1)
    whole_to = last if last == month_end(last) else month_of(last) - timedelta(days=1)
    if whole_from > whole_to:
        return None, [(first, last)]
    ragged = []
    if first < whole_from:
        ragged.append((first, whole_from - timedelta(days=1)))
    if whole_to < last:
        ragged.append((whole_to + timedelta(days=1), last))
    return (whole_from, month_of(whole_to)), ragged


def _distinct(parts: list[Any]) -> Any:
    """The distinct rows of the parts. UNION ALL, then DISTINCT: PostgreSQL hashes the few
    distinct pairs; a UNION sorted every row (230,000 at 10 million contacts a year, on disk)."""
    rows: Any = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    return select(*rows.c).distinct().subquery()


async def _respondents(session: AsyncSession, q: ExperienceQuery, dimension: Dimension) -> dict[str, int]:
    """Different agents who answered in each group over the whole range (not additive by day)."""
    if dimension is Dimension.AGENT:
        return {}
    R, M = ExperienceRespondent, ExperienceRespondentMonthly
    # Distinct (group, agent) pairs, then count them: the range's whole months from the monthly
    # rows (12 a year per agent and group instead of ~365: 2.9 million daily rows at 10 million
    # contacts a year), its ragged ends from the daily rows (docs/benchmarks.md).
    months, ragged = split_months(q.first_day(), q.last_day())
    parts = [
        select(R.key, R.agent_id).where(R.dimension == dimension.value, R.day >= a, R.day <= b)
        for a, b in ragged
    ]
    if months is not None:
        parts.append(
            select(M.key, M.agent_id).where(
                M.dimension == dimension.value, M.month >= months[0], M.month <= months[1]
            )
        )
    pairs = _distinct(parts)
    rows = await session.execute(select(pairs.c.key, func.count()).group_by(pairs.c.key))
    return {key: int(n) for key, n in rows.all()}


async def _sides(session: AsyncSession, q: ExperienceQuery, dimension: Dimension) -> dict[bool, int]:
    """Different agents who answered on the group-days below target (True) and on those that met
    it (False) over the range: whole months from the monthly rows' day counts, ragged ends by
    joining the daily respondents to their group-day's service level."""
    R, M = ExperienceRespondent, ExperienceRespondentMonthly
    months, ragged = split_months(q.first_day(), q.last_day())
    joined = (R.dimension == D.dimension) & (R.key == D.key) & (R.day == D.day)
    parts = [
        select(case((_below(), 1), else_=0).label("below"), R.agent_id)
        .select_from(D)
        .join(R, joined)
        .where(D.dimension == dimension.value, D.sl_denominator > 0, D.day >= a, D.day <= b)
        for a, b in ragged
    ]
    if months is not None:
        whole = (M.dimension == dimension.value, M.month >= months[0], M.month <= months[1])
        parts.append(select(literal(1).label("below"), M.agent_id).where(*whole, M.below_days > 0))
        parts.append(select(literal(0).label("below"), M.agent_id).where(*whole, M.met_days > 0))
    pairs = _distinct(parts)
    people = await session.execute(select(pairs.c.below, func.count()).group_by(pairs.c.below))
    return {bool(b): int(n) for b, n in people.all()}


async def summary(session: AsyncSession, q: ExperienceQuery) -> ExperienceSummary:
    """One row per group of ``q.dimension`` over the range, and the centre's total."""
    rows = await session.execute(
        select(D.key, *_sums(CX_SUMS + EX_SUMS))
        .where(D.dimension == q.dimension.value, *_in_range(q))
        .group_by(D.key)
        .order_by(D.key)
    )
    sums = {row.key: row._asdict() for row in rows.all()}
    # Groups with nothing but service-level figures (a queue nobody rated) are left out.
    sums = {
        k: s for k, s in sums.items() if any(s[c] for c in ("csat_n", "nps_n", "ces_n", "pulse_n", "shift_n"))
    }
    respondents = await _respondents(session, q, q.dimension)
    labels = await _labels(session, q.dimension, list(sums))
    total_row = (
        (
            await session.execute(
                select(*_sums(CX_SUMS + EX_SUMS)).where(D.dimension == Dimension.ALL.value, *_in_range(q))
            )
        )
        .one()
        ._asdict()
    )
    total_respondents = (await _respondents(session, q, Dimension.ALL)).get("", 0)
    return ExperienceSummary(
        start=q.first_day(),
        end=q.last_day(),
        dimension=q.dimension,
        rows=[
            GroupRow(key=k, label=labels[k], cx=cx_of(s), ex=ex_of(s, respondents.get(k, 0)))
            for k, s in sorted(sums.items(), key=lambda kv: labels[kv[0]].lower())
        ],
        total=GroupRow(key="", label="All", cx=cx_of(total_row), ex=ex_of(total_row, total_respondents)),
    )


async def trend(session: AsyncSession, q: ExperienceQuery) -> ExperienceTrend:
    """Per day: the centre's figures, or one group's when ``q.key`` is given."""
    dimension, key = (q.dimension, q.key) if q.key is not None else (Dimension.ALL, "")
    rows = await session.execute(
        select(D).where(D.dimension == dimension.value, D.key == key, *_in_range(q)).order_by(D.day)
    )
    days = []
    for row in rows.scalars().all():
        s = {c: getattr(row, c) for c in (*CX_SUMS, *EX_SUMS)}
        respondents = 0 if dimension is Dimension.AGENT else row.respondents
        days.append(
            TrendDay(
                day=as_date(row.day),
                cx=cx_of(s),
                ex=ex_of(s, respondents),
                service_level=round(100.0 * row.sl_answered / row.sl_denominator, 1)
                if row.sl_denominator
                else None,
                service_level_target=round(row.sl_target_weight / row.sl_denominator, 1)
                if row.sl_denominator
                else None,
            )
        )
    return ExperienceTrend(start=q.first_day(), end=q.last_day(), dimension=dimension, key=key, days=days)


def _below(model: Any = D) -> Any:
    # answered / denominator < target %  <=>  answered * 100 < target % x denominator
    return model.sl_answered * literal_column("100") < model.sl_target_weight


async def together(session: AsyncSession, q: ExperienceQuery) -> ExperienceTogether:
    """CSAT on tagged interactions vs the rest; EX and CSAT on below-target days vs the rest."""
    T = ExperienceTagDaily
    total = (
        (
            await session.execute(
                select(*_sums(CX_SUMS)).where(D.dimension == Dimension.ALL.value, *_in_range(q))
            )
        )
        .one()
        ._asdict()
    )
    tag_rows = await session.execute(
        select(T.tag, *_sums(CX_SUMS, T)).where(*_in_range(q, T)).group_by(T.tag).order_by(T.tag)
    )
    tags = []
    for row in tag_rows.all():
        tagged = row._asdict()
        rest = {c: total[c] - tagged[c] for c in CX_SUMS}
        tags.append(TagComparison(tag=row.tag, tagged=cx_of(tagged), rest=cx_of(rest)))

    levels = []
    for scope, dimension in (("queue_days", Dimension.QUEUE), ("centre_days", Dimension.ALL)):
        below = _below().label("below")
        rows = await session.execute(
            select(below, func.count(), *_sums(CX_SUMS + EX_SUMS))
            .where(D.dimension == dimension.value, D.sl_denominator > 0, *_in_range(q))
            .group_by(below)
        )
        respondents = await _sides(session, q, dimension)
        for row in rows.all():
            s = row._asdict()
            levels.append(
                ServiceLevelComparison(
                    scope=scope,  # type: ignore[arg-type]
                    group="below_target" if row.below else "met_target",
                    days=int(row[1]),
                    cx=cx_of(s),
                    ex=ex_of(s, respondents.get(bool(row.below), 0)),
                )
            )
    levels.sort(key=lambda c: (c.scope, c.group))
    return ExperienceTogether(start=q.first_day(), end=q.last_day(), tags=tags, service_level=levels)


async def drill(session: AsyncSession, q: ExperienceQuery, *, limit: int = 100) -> ExperienceDrill:
    """The newest customer answers behind a figure (one page), with links to the interaction and
    the customer's timeline."""
    F, Ix = CustomerFeedback, Interaction
    start, end = q.first_day(), q.last_day()
    query = (
        select(F, Ix.channel, Ix.topic, Queue.name, Agent.display_name, Customer.value_tier)
        .join(Ix, Ix.id == F.interaction_id)
        .join(Customer, Customer.id == Ix.customer_id)
        .outerjoin(Agent, Agent.id == Ix.agent_id)
        .outerjoin(Queue, Queue.id == Ix.queue_id)
        .where(*_answered_between(start, end))
    )
    key = q.key
    if key is not None and q.dimension is Dimension.AGENT and _postgres(session):
        return await _drill_rows(session, q, query.where(F.id.in_(_agent_page(session, q, limit))), limit)
    if key is not None:
        none = key == ""
        match q.dimension:
            case Dimension.AGENT:
                query = query.where(Ix.agent_id == q.agent_key())
            case Dimension.QUEUE:
                query = query.where(Queue.name.is_(None) if none else Queue.name == key)
            case Dimension.CHANNEL:
                query = query.where(Ix.channel == key)
            case Dimension.TIER:
                query = query.where(Customer.value_tier == key)
            case Dimension.TEAM:
                homes = [
                    a
                    for a, teams in (await session.execute(select(Agent.id, Agent.teams))).all()
                    if (teams[0] if teams else "") == key
                ]
                query = query.where(
                    Ix.agent_id.in_(homes) if not none else (Ix.agent_id.is_(None) | Ix.agent_id.in_(homes))
                )
    if q.tag is not None:
        query = query.where(_tagged(session, q.tag))
    return await _drill_rows(session, q, query, limit)


def _postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def _agent_page(session: AsyncSession, q: ExperienceQuery, limit: int) -> Any:
    """The ids of one agent's newest ``limit`` answers in the range (and tag), found from the
    agent's contacts (ix_interactions_agent_id holds their ids) by looking each one's answer up.
    Left to itself, PostgreSQL walks every answer of the range newest first and looks its contact
    up until ``limit`` are the agent's: 1 in 548 at 10 million contacts a year, 0.9 s
    (docs/benchmarks.md). OFFSET 0 keeps it from folding the lateral look-up back into that plan."""
    F, Ix = CustomerFeedback, Interaction
    answer = select(F.id, F.created_at).where(
        F.interaction_id == Ix.id, *_answered_between(q.first_day(), q.last_day())
    )
    if q.tag is not None:
        answer = answer.where(_tagged(session, q.tag))
    found = answer.offset(0).lateral("answer")
    return (
        select(found.c.id)
        .select_from(Ix)
        .join(found, true())
        .where(Ix.agent_id == q.agent_key())
        .order_by(found.c.created_at.desc())
        .limit(limit)
    )


async def _drill_rows(session: AsyncSession, q: ExperienceQuery, query: Any, limit: int) -> ExperienceDrill:
    F = CustomerFeedback
    start, end = q.first_day(), q.last_day()
    rows = await session.execute(query.order_by(F.created_at.desc()).limit(limit))
    return ExperienceDrill(
        start=start,
        end=end,
        dimension=q.dimension,
        key=q.key,
        tag=q.tag,
        limit=limit,
        rows=[
            DrillRow(
                interaction_id=f.interaction_id,
                customer_id=f.customer_id,
                answered_at=f.created_at,
                channel=channel.value,
                queue=queue,
                agent=agent,
                tier=tier.value,
                topic=topic,
                csat=f.csat,
                nps=f.nps,
                ces=f.ces,
                comment=f.comment,
                interaction_url=f"/api/interactions/{f.interaction_id}",
                customer_url=f"/api/customers/{f.customer_id}/timeline",
            )
            for f, channel, topic, queue, agent, tier in rows.all()
        ],
    )


def _answered_between(start: date, end: date) -> tuple[Any, ...]:
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    t1 = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return CustomerFeedback.created_at >= t0, CustomerFeedback.created_at < t1


def _tagged(session: AsyncSession, tag: str) -> Any:
    """An agent tagged the answer's interaction ``tag`` in their pulse (JSON array membership)."""
    P = AgentPulse
    contains: Any
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        contains = P.tags.op("@>")(func.jsonb_build_array(literal(tag)))
    else:
        contains = text(
            "EXISTS (SELECT 1 FROM json_each(agent_pulses.tags) WHERE json_each.value = :tag)"
        ).bindparams(tag=tag)
    return exists().where(
        P.interaction_id == CustomerFeedback.interaction_id, P.kind == PulseKind.INTERACTION, contains
    )
