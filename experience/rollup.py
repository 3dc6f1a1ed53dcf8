"""Fill the experience dashboard's rollups (``experience.dashboard_models``) from the raw rows.

* **Whole days, recomputed.** A day's rows are deleted and rebuilt with set-based
  ``INSERT ... SELECT ... GROUP BY`` statements; never added to. So running the rollup twice (a
  retried job, two workers) gives the same figures, and a late answer is simply part of its day's
  next rebuild.
* **Incremental.** The job remembers a watermark (the time of its last run) and rebuilds only the
  days touched by rows created since then, minus an overlap (``OVERLAP``) that covers transactions
  that committed late: customer answers (by answer day), pulses (by pulse day), pulses tagging an
  interaction whose answer fell on another day, and the engine's interval statistics.
* **Days are UTC days.** Customer answers count on the day they were given; the team of a
  customer answer is the agent's home team when the day is rebuilt, the tier the customer's tier
  then (a pulse keeps the team written on it).
* One run at a time on PostgreSQL (a transaction-scoped advisory lock); SQLite has one writer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from experience.dashboard_models import Dimension, RollupState
from switchboard.db import UTCDateTime, utcnow

log = logging.getLogger(__name__)

STATE_NAME = "dashboard"
OVERLAP = timedelta(minutes=15)
INTERVAL_SLACK = timedelta(hours=1)  # an interval row is updated while its 15 minutes run
ADVISORY_LOCK = 0x5EED_0012  # pg_advisory_xact_lock key of this rollup
PROMOTER, DETRACTOR = 9, 6  # NPS: 9-10 promoters, 0-6 detractors
CX_COLUMNS = ("csat_n", "csat_sum", "nps_n", "nps_promoters", "nps_detractors", "ces_n", "ces_sum")
EX_COLUMNS = ("pulse_n", "pulse_sum", "shift_n", "energy_sum", "workload_n", "workload_sum", "respondents")
SL_COLUMNS = ("sl_answered", "sl_denominator", "sl_target_weight")
DAILY_COLUMNS = ("dimension", "key", "day", *CX_COLUMNS, *EX_COLUMNS, *SL_COLUMNS)


@dataclass(frozen=True)
class _Sql:
    """What differs between PostgreSQL and SQLite."""

    dialect: str

    def day(self, column: str) -> str:
        if self.dialect == "postgresql":
            return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)"
        return f"date({column})"

    def month(self, column: str) -> str:
        """The first day of a date's month."""
        if self.dialect == "postgresql":
            return f"CAST(date_trunc('month', {column}) AS DATE)"
        return f"date({column}, 'start of month')"

    def first_team(self, column: str) -> str:
        if self.dialect == "postgresql":
            return f"({column} ->> 0)"
        return f"json_extract({column}, '$[0]')"

    def uuid_hex(self, column: str) -> str:
        # 32 hex digits on both (SQLite stores a Uuid so; PostgreSQL prints dashes).
        return f"replace(CAST({column} AS TEXT), '-', '')" if self.dialect == "postgresql" else column

    def tags(self, column: str) -> tuple[str, str]:
        """(a FROM-clause item unnesting a JSON array of strings, the element's expression)."""
        if self.dialect == "postgresql":
            return f"CROSS JOIN LATERAL jsonb_array_elements_text({column}) AS t(tag)", "t.tag"
        return f"JOIN json_each({column}) AS t", "t.value"


def _typed(sql: str, **types: Any) -> Any:
    return text(sql).bindparams(*(bindparam(name, type_=type_) for name, type_ in types.items()))


def as_date(value: Any) -> date:
    """A day as SQL returned it (a date on PostgreSQL, ISO text from SQLite's ``date()``)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# Which column of the base rows each dimension groups by (None: the centre, key "").
_CX_KEYS = {
    Dimension.AGENT: "agent_key",
    Dimension.TEAM: "team",
    Dimension.QUEUE: "queue",
    Dimension.CHANNEL: "channel",
    Dimension.TIER: "tier",
    Dimension.ALL: None,
}
# No agent row for EX, by design (the rollup cannot leak one agent's pulse).
_EX_KEYS = {d: k for d, k in _CX_KEYS.items() if d is not Dimension.AGENT}


def _key(column: str | None) -> str:
    return f"COALESCE({column}, '')" if column else "''"


def _group(column: str | None) -> str:
    return f"{_key(column)}, day" if column else "day"  # PostgreSQL refuses GROUP BY ''


def _cx_base(sql: _Sql) -> str:
    return f"""
        SELECT {sql.day("f.created_at")} AS day, f.csat AS csat, f.nps AS nps, f.ces AS ces,
               {sql.uuid_hex("i.agent_id")} AS agent_key, {sql.first_team("a.teams")} AS team,
               q.name AS queue, i.channel AS channel, c.value_tier AS tier
        FROM customer_feedback f
        JOIN interactions i ON i.id = f.interaction_id
        JOIN customers c ON c.id = i.customer_id
        LEFT JOIN agents a ON a.id = i.agent_id
        LEFT JOIN queues q ON q.id = i.queue_id
        WHERE f.created_at >= :t0 AND f.created_at < :t1"""


def _ex_base() -> str:
    return """
        SELECT p.day AS day, p.kind AS kind, p.score AS score, p.workload AS workload,
               p.agent_id AS agent_id, p.team AS team, p.queue AS queue, i.channel AS channel,
               c.value_tier AS tier
        FROM agent_pulses p
        LEFT JOIN interactions i ON i.id = p.interaction_id
        LEFT JOIN customers c ON c.id = i.customer_id
        WHERE p.day >= :d0 AND p.day <= :d1"""


_CX_SUMS = f"""COUNT(csat), COALESCE(SUM(csat), 0), COUNT(nps),
    COALESCE(SUM(CASE WHEN nps >= {PROMOTER} THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN nps <= {DETRACTOR} THEN 1 ELSE 0 END), 0),
    COUNT(ces), COALESCE(SUM(ces), 0)"""
_EX_SUMS = """
    COALESCE(SUM(CASE WHEN kind = 'interaction' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN kind = 'interaction' THEN score ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN kind = 'shift' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN kind = 'shift' THEN score ELSE 0 END), 0),
    COUNT(CASE WHEN kind = 'shift' THEN workload END),
    COALESCE(SUM(CASE WHEN kind = 'shift' THEN workload ELSE 0 END), 0),
    COUNT(DISTINCT agent_id)"""


async def recompute(session: AsyncSession, start: date, end: date) -> None:
    """Rebuild every rollup row of the days ``start``..``end`` (inclusive) from the raw rows."""
    sql = _Sql(session.bind.dialect.name if session.bind is not None else "sqlite")
    days = {"d0": Date(), "d1": Date()}
    times = {"t0": UTCDateTime(), "t1": UTCDateTime()}
    params: dict[str, Any] = {
        "d0": start,
        "d1": end,
        "t0": datetime(start.year, start.month, start.day, tzinfo=utcnow().tzinfo),
        "t1": datetime(end.year, end.month, end.day, tzinfo=utcnow().tzinfo) + timedelta(days=1),
    }
    for table in ("experience_daily", "experience_respondents", "experience_tag_daily"):
        await session.execute(_typed(f"DELETE FROM {table} WHERE day >= :d0 AND day <= :d1", **days), params)

    zero_ex = ", ".join("0" for _ in (*EX_COLUMNS, *SL_COLUMNS))
    cx_base = _cx_base(sql)
    for dimension, column in _CX_KEYS.items():
        await session.execute(
            _typed(
                f"""INSERT INTO experience_daily ({", ".join(DAILY_COLUMNS)})
                SELECT '{dimension.value}', {_key(column)}, day, {_CX_SUMS}, {zero_ex}
                FROM ({cx_base}) AS b WHERE TRUE GROUP BY {_group(column)}""",
                **times,
            ),
            params,
        )
    zero_cx = ", ".join("0" for _ in CX_COLUMNS)
    zero_sl = ", ".join("0" for _ in SL_COLUMNS)
    ex_update = ", ".join(f"{name} = excluded.{name}" for name in EX_COLUMNS)
    for dimension, column in _EX_KEYS.items():
        await session.execute(
            _typed(
                f"""INSERT INTO experience_daily ({", ".join(DAILY_COLUMNS)})
                SELECT '{dimension.value}', {_key(column)}, day, {zero_cx}, {_EX_SUMS}, {zero_sl}
                FROM ({_ex_base()}) AS b WHERE TRUE GROUP BY {_group(column)}
                ON CONFLICT (dimension, key, day) DO UPDATE SET {ex_update}""",
                **days,
            ),
            params,
        )
        await session.execute(
            _typed(
                f"""INSERT INTO experience_respondents (dimension, key, day, agent_id)
                SELECT DISTINCT '{dimension.value}', {_key(column)}, day, agent_id
                FROM ({_ex_base()}) AS b""",
                **days,
            ),
            params,
        )
    await _service_levels(session, sql, params, times)
    await _tags(session, sql, params, times)
    await _monthly_respondents(session, sql, start, end)


def month_of(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


async def _monthly_respondents(session: AsyncSession, sql: _Sql, start: date, end: date) -> None:
    """Rebuild the whole months that days start..end fall in, from the daily respondents (the
    month's other days are already rolled up) and their groups' service level that day."""
    below = "d.sl_answered * 100 < d.sl_target_weight"  # as the dashboard's _below()
    params = {"m0": month_of(start), "m1": month_of(end), "last": month_end(end)}
    await session.execute(
        _typed(
            "DELETE FROM experience_respondents_monthly WHERE month >= :m0 AND month <= :m1",
            m0=Date(),
            m1=Date(),
        ),
        {"m0": params["m0"], "m1": params["m1"]},
    )
    await session.execute(
        _typed(
            f"""INSERT INTO experience_respondents_monthly
                    (dimension, key, month, agent_id, below_days, met_days)
                SELECT r.dimension, r.key, {sql.month("r.day")}, r.agent_id,
                       SUM(CASE WHEN d.sl_denominator > 0 AND {below} THEN 1 ELSE 0 END),
                       SUM(CASE WHEN d.sl_denominator > 0 AND NOT ({below}) THEN 1 ELSE 0 END)
                FROM experience_respondents r
                LEFT JOIN experience_daily d
                       ON d.dimension = r.dimension AND d.key = r.key AND d.day = r.day
                WHERE r.day >= :m0 AND r.day <= :last
                GROUP BY r.dimension, r.key, {sql.month("r.day")}, r.agent_id""",
            m0=Date(),
            last=Date(),
        ),
        {"m0": params["m0"], "last": params["last"]},
    )


async def _service_levels(
    session: AsyncSession, sql: _Sql, params: dict[str, Any], times: dict[str, Any]
) -> None:
    """Each queue's service level per day, and the centre's (all queues, blended target)."""
    per_queue = f"""
        SELECT {sql.day("qi.interval_start")} AS day, qi.queue_name AS queue,
               SUM(qi.answered_within_sl) AS answered,
               SUM(qi.accepted + qi.abandoned - qi.abandoned_within_sl) AS denominator,
               SUM(qi.accepted + qi.abandoned - qi.abandoned_within_sl)
                 * COALESCE(MAX(q.sl_target_percent), 80) AS target_weight
        FROM queue_intervals qi LEFT JOIN queues q ON q.name = qi.queue_name
        WHERE qi.interval_start >= :t0 AND qi.interval_start < :t1
        GROUP BY {sql.day("qi.interval_start")}, qi.queue_name"""
    zero_rest = ", ".join("0" for _ in (*CX_COLUMNS, *EX_COLUMNS))
    sl_update = ", ".join(f"{name} = excluded.{name}" for name in SL_COLUMNS)
    for dimension, key in ((Dimension.QUEUE, "queue"), (Dimension.ALL, None)):
        await session.execute(
            _typed(
                f"""INSERT INTO experience_daily ({", ".join(DAILY_COLUMNS)})
                SELECT '{dimension.value}', {_key(key)}, day, {zero_rest},
                       SUM(answered), SUM(denominator), SUM(target_weight)
                FROM ({per_queue}) AS s WHERE TRUE GROUP BY {_group(key)}
                ON CONFLICT (dimension, key, day) DO UPDATE SET {sl_update}""",
                **times,
            ),
            params,
        )


async def _tags(session: AsyncSession, sql: _Sql, params: dict[str, Any], times: dict[str, Any]) -> None:
    """Customer answers on interactions an agent tagged (each answer once per tag)."""
    unnest, tag = sql.tags("p.tags")
    await session.execute(
        _typed(
            f"""INSERT INTO experience_tag_daily (tag, day, {", ".join(CX_COLUMNS)})
            SELECT tag, day, {_CX_SUMS} FROM (
                SELECT DISTINCT f.id AS feedback_id, {tag} AS tag, {sql.day("f.created_at")} AS day,
                       f.csat AS csat, f.nps AS nps, f.ces AS ces
                FROM customer_feedback f
                JOIN agent_pulses p ON p.interaction_id = f.interaction_id {unnest}
                WHERE f.created_at >= :t0 AND f.created_at < :t1 AND p.kind = 'interaction'
            ) AS x WHERE TRUE GROUP BY tag, day""",
            **times,
        ),
        params,
    )


# ------------------------------------------------------------------------------ the job


@dataclass
class RollupResult:
    days: int = 0
    ranges: list[tuple[date, date]] = field(default_factory=list)


def runs_of(days: set[date]) -> list[tuple[date, date]]:
    """Contiguous runs of ``days`` as (first, last) pairs."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


async def _days(session: AsyncSession, sql: str, since: datetime) -> set[date]:
    rows = await session.execute(_typed(sql, since=UTCDateTime()), {"since": since})
    return {as_date(value) for (value,) in rows.all() if value is not None}


async def _touched_days(session: AsyncSession, since: datetime | None) -> set[date]:
    """Days whose figures may have changed since ``since`` (None: every day with any data)."""
    sql = _Sql(session.bind.dialect.name if session.bind is not None else "sqlite")
    floor = since or datetime(1970, 1, 1, tzinfo=utcnow().tzinfo)
    days = await _days(
        session,
        f"SELECT DISTINCT {sql.day('created_at')} FROM customer_feedback WHERE created_at >= :since",
        floor,
    )
    days |= await _days(session, "SELECT DISTINCT day FROM agent_pulses WHERE created_at >= :since", floor)
    days |= await _days(
        session,
        f"""SELECT DISTINCT {sql.day("f.created_at")} FROM agent_pulses p
            JOIN customer_feedback f ON f.interaction_id = p.interaction_id WHERE p.created_at >= :since""",
        floor,
    )
    days |= await _days(
        session,
        f"SELECT DISTINCT {sql.day('interval_start')} FROM queue_intervals WHERE interval_start >= :since",
        floor - INTERVAL_SLACK if since is not None else floor,
    )
    return days


async def run_rollup(
    session: AsyncSession, *, now: datetime | None = None, full: bool = False
) -> RollupResult:
    """Rebuild the days touched since the last run (every day on the first run or with ``full``),
    move the watermark, commit. Safe to run any number of times."""
    now = now or utcnow()
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    state = await session.get(RollupState, STATE_NAME)
    since = None if state is None or full else state.watermark - OVERLAP
    days = await _touched_days(session, since)
    result = RollupResult(days=len(days), ranges=runs_of(days))
    for start, end in result.ranges:
        await recompute(session, start, end)
    if state is None:
        session.add(RollupState(name=STATE_NAME, watermark=now, updated_at=utcnow()))
    else:
        state.watermark, state.updated_at = now, utcnow()
    await session.commit()
    return result


async def watermark(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(RollupState.watermark).where(RollupState.name == STATE_NAME))
