"""Adherence and conformance from a schedule and what the agent did, worked out by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from workforce.adherence import (
    Activity,
    AgentAdherence,
    PublishedShift,
    Span,
    actual_spans,
    adherence,
    out_of_adherence,
    planned_spans,
    team_figures,
)
from workforce.models import Presence
from workforce.presence_log import Stretch


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute, tzinfo=UTC)


SHIFT = PublishedShift(start=at(9), end=at(17), breaks=((at(12), at(12, 30)),))
MIDNIGHT = at(0)


def test_a_shift_is_on_queue_around_its_breaks() -> None:
    assert planned_spans([SHIFT]) == [
        Span(Activity.ON_QUEUE, at(9), at(12)),
        Span(Activity.BREAK, at(12), at(12, 30)),
        Span(Activity.ON_QUEUE, at(12, 30), at(17)),
    ]


def _day(now: datetime) -> list[Span]:
    """Signed in 5 minutes late, took a 40-minute break at 12:00, back at 12:40."""
    stretches = [
        Stretch(Presence.OFFLINE, MIDNIGHT, at(9, 5)),
        Stretch(Presence.AVAILABLE, at(9, 5), at(10)),
        Stretch(Presence.BUSY, at(10), at(12)),
        Stretch(Presence.BREAK, at(12), at(12, 40)),
        Stretch(Presence.AVAILABLE, at(12, 40), now),
    ]
    return actual_spans([s for s in stretches if s.start < now])


def test_adherence_and_conformance_of_a_morning() -> None:
    now = at(13)
    result = adherence(planned_spans([SHIFT]), _day(now), since=MIDNIGHT, now=now)
    assert result.scheduled == timedelta(hours=4)
    # 2 h 55 on queue as asked, the 30-minute break, 20 minutes on queue after it.
    assert result.in_adherence == timedelta(hours=3, minutes=45)
    assert result.adherence == 3.75 / 4
    assert result.scheduled_on_queue == timedelta(hours=3, minutes=30)
    assert result.on_queue == timedelta(hours=3, minutes=15)
    assert result.conformance == 3.25 / 3.5
    assert result.out_since is None and out_of_adherence(result, now) is None


def test_a_break_overrun_is_out_of_adherence_beyond_the_threshold() -> None:
    planned = planned_spans([SHIFT])
    early = adherence(planned, _day(at(12, 33)), since=MIDNIGHT, now=at(12, 33))
    assert early.out_since == at(12, 30) and out_of_adherence(early, at(12, 33)) is None  # 3 min: grace
    late = adherence(planned, _day(at(12, 38)), since=MIDNIGHT, now=at(12, 38))
    assert out_of_adherence(late, at(12, 38)) == timedelta(minutes=8)


def test_off_when_the_schedule_says_off_is_adherent_and_an_unscheduled_day_has_no_figure() -> None:
    off = [Span(Activity.OFF, MIDNIGHT, at(8))]
    result = adherence(planned_spans([SHIFT]), off, since=MIDNIGHT, now=at(8))
    assert result.scheduled == timedelta(0) and result.adherence is None and result.out_since is None
    working = [Span(Activity.ON_QUEUE, MIDNIGHT, at(8))]
    assert adherence([], working, since=MIDNIGHT, now=at(8)).out_since == MIDNIGHT


def test_team_figures_sum_their_agents_times() -> None:
    now = at(13)
    good = adherence(planned_spans([SHIFT]), _day(now), since=MIDNIGHT, now=now)
    absent = adherence(planned_spans([SHIFT]), [], since=MIDNIGHT, now=now)
    rows = [
        AgentAdherence(uuid.uuid4(), "Ann", ("north",), good, Activity.ON_QUEUE, Activity.ON_QUEUE),
        AgentAdherence(uuid.uuid4(), "Bo", ("north",), absent, Activity.OFF, Activity.ON_QUEUE),
    ]
    north = team_figures(rows)["north"]
    assert north.scheduled == timedelta(hours=8) and north.adherence == 3.75 / 8
