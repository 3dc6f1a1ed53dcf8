"""The forecast model on synthetic history with known seasonality, trend and holidays (issue #13
item 1): it recovers them, and the backtest's WAPE and MAPE are what their definitions give."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from workforce.forecast import Calendar, NotEnoughHistory, accuracy, backtest, fit, interval_starts

LONDON = ZoneInfo("Europe/London")
# Monday 7 Sep 2026, local midnight (BST): the history spans the end of summer time (25 Oct).
FIRST = datetime(2026, 9, 7, tzinfo=LONDON).astimezone(UTC)
DAY_SHAPE = (1.0, 0.9, 0.85, 0.9, 1.1, 0.5, 0.0)  # Monday … Sunday (closed)
GROWTH = 0.02  # a week


def truth(start: datetime, interval_minutes: int, holidays: frozenset[date] = frozenset()) -> float:
    """Mean contacts: open 08:00–20:00 local, a late-morning and an afternoon peak, weekday levels,
    2 % a week growth, holidays at 40 % of a usual day."""
    local = start.astimezone(LONDON)
    hour = local.hour + local.minute / 60
    if hour < 8 or hour >= 20:
        return 0.0
    shape = 10 + 25 * math.exp(-(((hour - 11) / 2) ** 2)) + 15 * math.exp(-(((hour - 16) / 2) ** 2))
    weeks = (start - FIRST).total_seconds() / (7 * 86_400)
    level = DAY_SHAPE[local.weekday()] * shape * (1 + GROWTH) ** weeks * interval_minutes / 30
    return level * (0.4 if local.date() in holidays else 1.0)


def synthetic(interval_minutes: int, weeks: int, holidays: frozenset[date] = frozenset(), seed: int = 7):
    calendar = Calendar(interval_minutes, LONDON, holidays)
    starts = interval_starts(FIRST, weeks * 7 * calendar.slots_per_day, interval_minutes)
    mean = np.array([truth(s, interval_minutes, holidays) for s in starts])
    return calendar, starts, mean, np.random.default_rng(seed).poisson(mean)


@pytest.mark.parametrize("interval_minutes", [15, 30])
def test_recovers_weekday_by_time_of_day_seasonality_and_trend(interval_minutes: int) -> None:
    calendar, starts, mean, counts = synthetic(interval_minutes, weeks=9)
    history = 8 * 7 * calendar.slots_per_day
    model = fit(starts[:history], counts[:history], calendar)
    forecast = model.predict(starts[history:])
    expected = mean[history:]
    # Against the true mean of the week after the history: Poisson noise on 8 weeks leaves a few
    # per cent per interval; the bound is 10 %.
    wape = np.abs(forecast - expected).sum() / expected.sum()
    assert wape < 0.10, wape
    assert model.weekly_growth == pytest.approx(GROWTH, abs=0.01)
    # Closed hours and the closed Sunday are forecast 0, not a small positive figure.
    assert forecast[expected == 0].max() == 0
    # The weekday shape: Friday's busiest interval above Wednesday's, Saturday's about half Monday's.
    by_day = forecast.reshape(7, calendar.slots_per_day).sum(axis=1)
    assert by_day[4] > by_day[2]
    assert by_day[5] / by_day[0] == pytest.approx(0.5 * (1 + GROWTH) ** (5 / 7), rel=0.1)


def test_holiday_factor_is_learned_and_a_holiday_ahead_is_forecast_low() -> None:
    holidays = frozenset({date(2026, 9, 30), date(2026, 10, 14), date(2026, 10, 27), date(2026, 11, 10)})
    calendar, starts, mean, counts = synthetic(30, weeks=10, holidays=holidays)
    history = 9 * 7 * calendar.slots_per_day
    model = fit(starts[:history], counts[:history], calendar)
    assert model.holiday_factor == pytest.approx(0.4, abs=0.08)
    forecast = model.predict(starts[history:])
    expected = mean[history:]
    assert np.abs(forecast - expected).sum() / expected.sum() < 0.10
    # Without a holiday in the history there is nothing to learn from: a holiday ahead is closed.
    plain = Calendar(30, LONDON, frozenset({date(2026, 11, 10)}))
    closed = fit(starts[: 8 * 7 * 48], mean[: 8 * 7 * 48].round(), plain)
    assert closed.holiday_factor is None
    tuesday = [s for s in starts[history:] if s.astimezone(LONDON).date() == date(2026, 11, 10)]
    assert closed.predict(tuesday).sum() == 0


def test_backtest_reports_wape_and_mape_on_held_out_weeks() -> None:
    calendar, starts, mean, counts = synthetic(30, weeks=8)
    result = backtest(starts, counts, calendar, weeks=2)
    held = 2 * 7 * 48
    assert result.weeks == 2 and result.intervals == held
    assert result.actual_total == counts[-held:].sum()
    # Poisson noise alone gives a WAPE of about 20 % at these volumes (the floor any forecast has);
    # the model stays within a few points of it.
    noise_floor = np.abs(counts[-held:] - mean[-held:]).sum() / counts[-held:].sum()
    assert result.wape is not None and result.wape < noise_floor + 0.05
    assert result.mape is not None and 0 < result.mape < 0.5


def test_accuracy_figures_follow_their_definitions() -> None:
    got = accuracy(np.array([10.0, 0.0, 5.0, 20.0]), np.array([12.0, 1.0, 5.0, 15.0]), weeks=1)
    assert got.wape == pytest.approx((2 + 1 + 0 + 5) / 35)
    # MAPE leaves out the interval with no contacts (no percentage error exists there).
    assert got.mape == pytest.approx((0.2 + 0 + 0.25) / 3)
    assert accuracy(np.zeros(3), np.ones(3), weeks=1).wape is None


def test_too_little_history_is_refused() -> None:
    calendar, starts, _, counts = synthetic(30, weeks=1)
    with pytest.raises(NotEnoughHistory):
        fit(starts[:100], counts[:100], calendar)
    with pytest.raises(NotEnoughHistory):
        backtest(starts, counts, calendar, weeks=1)
    assert timedelta(minutes=30) * 48 == timedelta(days=1)


def test_weeks_before_the_first_contact_are_not_read_as_zero_traffic() -> None:
    """A queue with four weeks of traffic, forecast from an eight-week window: the four empty weeks
    before it are before the queue existed, not a 0 → full growth (the fit reads the history from
    the day of its first contact)."""
    calendar, starts, mean, counts = synthetic(30, weeks=9)
    per_week = 7 * calendar.slots_per_day
    new_queue = counts.copy()
    new_queue[: 4 * per_week] = 0
    new_queue[4 * per_week : 4 * per_week + 10] = 0  # its first contacts come mid-morning
    model = fit(starts[: 8 * per_week], new_queue[: 8 * per_week], calendar)
    assert model.origin == starts[4 * per_week]  # the local midnight of the first contact's day
    assert model.weekly_growth == pytest.approx(GROWTH, abs=0.03)
    forecast, expected = model.predict(starts[8 * per_week :]), mean[8 * per_week :]
    assert np.abs(forecast - expected).sum() / expected.sum() < 0.10

    # Less than a week of contacts in a long window is too little, and the message says since when.
    late = counts.copy()
    late[: 7 * per_week + 3 * calendar.slots_per_day] = 0
    with pytest.raises(NotEnoughHistory, match="contacts only since 2026-10-29"):
        fit(starts[: 8 * per_week], late[: 8 * per_week], calendar)
