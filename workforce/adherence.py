"""Adherence: live presence against the published schedule (issue #13 item 4).

Definitions, as workforce-management tools (NICE, Verint, Genesys) use them:

- What the schedule asks at an instant is an **activity**: *on queue* inside a shift and outside
  its breaks, *break* inside one of its breaks, *off* otherwise.
- What the agent does is read from their presence (``workforce.presence_log``): available, busy
  and wrap-up are *on queue*; break is *break*; offline is *off*; training and not responding
  are *other* (never what a schedule asks for).
- **Adherence** %: of the scheduled time (shifts, breaks included) so far, the share spent in the
  scheduled activity.
- **Conformance** %: time actually on queue / time scheduled on queue (working when, not only
  how long: adherence; how long: conformance).
- **Out of adherence now**: the agent's activity differs from the schedule's, continuously for
  more than ``threshold`` (a little grace, so a late click is not an alarm).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workforce.models import Presence
from workforce.presence_log import Stretch


class Activity(enum.StrEnum):
    ON_QUEUE = "on_queue"
    BREAK = "break"
    OFF = "off"
    OTHER = "other"  # training, not responding: never scheduled


ACTUAL: dict[Presence, Activity] = {
    Presence.AVAILABLE: Activity.ON_QUEUE,
    Presence.BUSY: Activity.ON_QUEUE,
    Presence.WRAP_UP: Activity.ON_QUEUE,
    Presence.BREAK: Activity.BREAK,
    Presence.OFFLINE: Activity.OFF,
    Presence.TRAINING: Activity.OTHER,
    Presence.NOT_RESPONDING: Activity.OTHER,
}

DEFAULT_THRESHOLD = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Span:
    activity: Activity
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PublishedShift:
    """A published shift: its bounds and its breaks (each within the shift)."""

    start: datetime
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...] = ()


def planned_spans(shifts: Iterable[PublishedShift]) -> list[Span]:
    """The schedule as spans of on-queue and break time, in time order (off time is what is
    outside them)."""
    spans: list[Span] = []
    for shift in sorted(shifts, key=lambda s: s.start):
        cursor = shift.start
        for start, end in sorted(shift.breaks):
            start, end = max(start, shift.start), min(end, shift.end)
            if start > cursor:
                spans.append(Span(Activity.ON_QUEUE, cursor, start))
            if end > start:
                spans.append(Span(Activity.BREAK, start, end))
            cursor = max(cursor, end)
        if shift.end > cursor:
            spans.append(Span(Activity.ON_QUEUE, cursor, shift.end))
    return spans


def actual_spans(stretches: Iterable[Stretch]) -> list[Span]:
    return [Span(ACTUAL[s.presence], s.start, s.end) for s in stretches]


def scheduled_at(planned: Sequence[Span], at: datetime) -> tuple[Activity, datetime | None]:
    """The activity the schedule asks at ``at`` and since when (None: off since before the day)."""
    previous_end: datetime | None = None
    for span in planned:
        if span.start <= at < span.end:
            return span.activity, span.start
        if span.end <= at:
            previous_end = span.end
    return Activity.OFF, previous_end


def _overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> timedelta:
    return max(min(a_end, b_end) - max(a_start, b_start), timedelta(0))


@dataclass(frozen=True, slots=True)
class Adherence:
    scheduled: timedelta  # scheduled time so far (on queue + breaks)
    in_adherence: timedelta  # of it, in the scheduled activity
    scheduled_on_queue: timedelta
    on_queue: timedelta  # actually on queue, scheduled or not
    out_since: datetime | None  # out of adherence now, since then; None when in adherence

    @property
    def adherence(self) -> float | None:
        return self.in_adherence / self.scheduled if self.scheduled else None

    @property
    def conformance(self) -> float | None:
        return self.on_queue / self.scheduled_on_queue if self.scheduled_on_queue else None


def adherence(
    planned: Sequence[Span], actual: Sequence[Span], *, since: datetime, now: datetime
) -> Adherence:
    """An agent's adherence over [since, now) from their planned and actual spans."""
    scheduled = in_adherence = scheduled_on_queue = on_queue = timedelta(0)
    for p in planned:
        start, end = max(p.start, since), min(p.end, now)
        if end <= start:
            continue
        scheduled += end - start
        if p.activity is Activity.ON_QUEUE:
            scheduled_on_queue += end - start
        for a in actual:
            if a.activity is p.activity:
                in_adherence += _overlap(start, end, a.start, a.end)
    for a in actual:
        if a.activity is Activity.ON_QUEUE:
            on_queue += _overlap(since, now, a.start, a.end)
    return Adherence(scheduled, in_adherence, scheduled_on_queue, on_queue, out_since(planned, actual, now))


def out_since(planned: Sequence[Span], actual: Sequence[Span], now: datetime) -> datetime | None:
    """Since when the agent's activity has differed from the schedule's without a break in the
    mismatch (None when they match now). Being off while the schedule says off is adherent."""
    current = [a for a in actual if a.start <= now]
    doing = current[-1].activity if current else Activity.OFF
    asked, asked_since = scheduled_at(planned, now)
    if doing is asked:
        return None
    # Walk back while the two kept differing: the mismatch began at the later of the last change
    # of either side that made them differ.
    began = current[-1].start if current else None
    candidates = [t for t in (began, asked_since) if t is not None]
    return max(candidates) if candidates else None


def out_of_adherence(
    result: Adherence, now: datetime, threshold: timedelta = DEFAULT_THRESHOLD
) -> timedelta | None:
    """How long the agent has been out of adherence, when it is beyond ``threshold``."""
    if result.out_since is None:
        return None
    lasted = now - result.out_since
    return lasted if lasted > threshold else None


@dataclass(frozen=True, slots=True)
class AgentAdherence:
    agent_id: uuid.UUID
    name: str
    teams: tuple[str, ...]
    result: Adherence
    doing: Activity
    asked: Activity


def team_figures(rows: Iterable[AgentAdherence]) -> dict[str, Adherence]:
    """Per team: the sums of its agents' times (an agent in two teams counts in both)."""
    sums: dict[str, list[timedelta]] = {}
    for row in rows:
        for team in row.teams or ("(no team)",):
            s = sums.setdefault(team, [timedelta(0)] * 4)
            r = row.result
            for i, value in enumerate((r.scheduled, r.in_adherence, r.scheduled_on_queue, r.on_queue)):
                s[i] += value
    return {
        team: Adherence(
            scheduled=s[0], in_adherence=s[1], scheduled_on_queue=s[2], on_queue=s[3], out_since=None
        )
        for team, s in sorted(sums.items())
    }
