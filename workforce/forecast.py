"""Contacts per interval: a Poisson regression (statsmodels' GLM, log link) on interaction counts.

    log E[contacts] = season[weekday, time of day] + trend · weeks + holiday

* ``season``: one coefficient per (weekday, interval of the day) in the contact centre's own time
  zone, so a Monday-morning peak and a quiet Saturday are each their own shape (not a weekday
  factor times one daily curve). Slots that had no contact in the whole history are forecast as 0
  (closed hours) and left out of the fit, where their coefficient would run to minus infinity.
* ``trend``: growth per week, multiplicative (the log link), so a 2 %/week growth is 2 % at 3 a.m.
  and at noon alike.
* ``holiday``: one factor for the supervisor's holiday dates, learned from the holidays in the
  history; a holiday in the horizon with none in the history is forecast closed (0) and the result
  says so (``holiday_factor`` None).

Pure: counts in, counts out. Loading the history (``interactions.volume``) and overrides
(``workforce.forecast_service``) happen around it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

INTERVAL_CHOICES = (15, 30)
# The fit alternates until no coefficient moves by more than this (log scale: 1e-7 relative).
_TOLERANCE = 1e-7
_MAX_ROUNDS = 200


@dataclass(frozen=True)
class Calendar:
    """How an interval start maps to the model's features."""

    interval_minutes: int
    zone: ZoneInfo
    holidays: frozenset[date] = frozenset()

    @property
    def slots_per_day(self) -> int:
        return 1440 // self.interval_minutes

    def slot(self, start: datetime) -> int:
        local = start.astimezone(self.zone)
        return (
            local.weekday() * self.slots_per_day + (local.hour * 60 + local.minute) // self.interval_minutes
        )

    def is_holiday(self, start: datetime) -> bool:
        return start.astimezone(self.zone).date() in self.holidays


def interval_starts(first: datetime, count: int, interval_minutes: int) -> list[datetime]:
    step = timedelta(minutes=interval_minutes)
    return [first + i * step for i in range(count)]


@dataclass(frozen=True)
class Model:
    calendar: Calendar
    origin: datetime
    season: dict[int, float]  # slot -> log rate (only slots seen with contacts)
    trend_per_week: float  # log growth per week
    holiday_log_factor: float | None

    @property
    def weekly_growth(self) -> float:
        return math.exp(self.trend_per_week) - 1.0

    @property
    def holiday_factor(self) -> float | None:
        return None if self.holiday_log_factor is None else math.exp(self.holiday_log_factor)

    def predict(self, starts: Sequence[datetime]) -> np.ndarray:
        out = np.zeros(len(starts))
        for i, start in enumerate(starts):
            base = self.season.get(self.calendar.slot(start))
            if base is None:
                continue
            log_rate = base + self.trend_per_week * _weeks(start, self.origin)
            if self.calendar.is_holiday(start):
                if self.holiday_log_factor is None:
                    continue  # no holiday in the history to learn from: forecast closed
                log_rate += self.holiday_log_factor
            out[i] = math.exp(log_rate) if log_rate > -math.inf else 0.0
        return out


def _weeks(start: datetime, origin: datetime) -> float:
    return (start - origin).total_seconds() / (7 * 86_400)


class NotEnoughHistory(ValueError):
    """Too little history to fit (the message says how much there is)."""


def from_first_contact(
    starts: Sequence[datetime], y: np.ndarray, calendar: Calendar
) -> tuple[Sequence[datetime], np.ndarray]:
    """The history from the (local) day of its first contact on. The days before it are before
    the queue had traffic (a queue opened last month, a window asked longer than the data): read
    as zero traffic they are a steep growth that is not there."""
    contacts = np.flatnonzero(y > 0)
    if contacts.size == 0:
        return starts, y
    first = int(contacts[0])
    day = starts[first].astimezone(calendar.zone).date()
    while first > 0 and starts[first - 1].astimezone(calendar.zone).date() == day:
        first -= 1
    return starts[first:], y[first:]


def fit(starts: Sequence[datetime], counts: Sequence[float] | np.ndarray, calendar: Calendar) -> Model:
    """Fit the model to ``counts[i]`` contacts in the interval starting ``starts[i]`` (every
    interval of the history, zeros included: a missing interval would read as "not observed")."""
    # Heavy (pandas, scipy: seconds): loaded by the first forecast, not by every process start.
    from statsmodels.genmod.families import Poisson
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    y = np.asarray(counts, dtype=float)
    if len(starts) != y.size:
        raise ValueError("one count per interval start")
    asked = y.size
    starts, y = from_first_contact(starts, y, calendar)
    if y.size < 7 * calendar.slots_per_day:
        if y.size < asked:
            first = starts[0].astimezone(calendar.zone).date().isoformat()
            raise NotEnoughHistory(f"contacts only since {first}; a forecast needs at least one whole week")
        raise NotEnoughHistory(f"{y.size} intervals of history; a forecast needs at least one whole week")
    origin = starts[0]
    slots = np.array([calendar.slot(s) for s in starts])
    holiday = np.array([calendar.is_holiday(s) for s in starts])
    weeks = np.array([_weeks(s, origin) for s in starts])
    # Slots with contacts outside holidays define the open hours; the rest are forecast closed.
    open_slots = sorted(set(slots[(y > 0) & ~holiday].tolist()))
    if not open_slots:
        raise NotEnoughHistory("no contacts in the history")
    use = np.isin(slots, open_slots)
    closed_on_holidays = bool(holiday[use].any()) and float(y[use & holiday].sum()) == 0.0
    if closed_on_holidays:
        use &= ~holiday  # all zero: the factor is 0, which a log-link fit can only approach
    rows = np.flatnonzero(use)
    has_holiday = bool(holiday[rows].any())
    y_fit = y[rows]
    slot_index = np.searchsorted(np.array(open_slots), slots[rows])
    # Trend centred on the history's middle so the seasonal terms are the level at its centre,
    # nearly independent of the trend (which makes the alternation below converge in a few rounds).
    centre = float(weeks[rows].mean())
    columns = [weeks[rows] - centre] + ([holiday[rows].astype(float)] if has_holiday else [])
    design = np.column_stack(columns)
    slot_totals = np.bincount(slot_index, weights=y_fit, minlength=len(open_slots))
    # The maximum-likelihood fit, by block coordinate ascent on the (concave) Poisson likelihood:
    # given trend and holiday, each slot's level has a closed form (its contacts over its exposure);
    # given the levels as an offset, statsmodels' GLM fits trend and holiday. One GLM over all
    # slot dummies gives the same answer but factorises a rows × slots matrix each iteration
    # (seconds at 15-minute intervals, far worse with BLAS threads fighting over two cores).
    effects = np.zeros(design.shape[1])
    season = np.log(slot_totals / np.bincount(slot_index, minlength=len(open_slots)))
    for _ in range(_MAX_ROUNDS):
        with warnings.catch_warnings():
            # A history the model fits exactly (no trend at all, say) is an answer, not a problem.
            warnings.simplefilter("ignore", PerfectSeparationWarning)
            glm = GLM(y_fit, design, family=Poisson(), offset=season[slot_index])
            result = glm.fit(start_params=effects)
        new_effects = np.asarray(result.params, dtype=float)
        exposure = np.bincount(slot_index, weights=np.exp(design @ new_effects), minlength=len(open_slots))
        new_season = np.log(slot_totals / exposure)
        moved = max(float(np.abs(new_effects - effects).max()), float(np.abs(new_season - season).max()))
        effects, season = new_effects, new_season
        if moved < _TOLERANCE:
            break
    trend = float(effects[0])
    levels = {slot: float(season[j]) - trend * centre for j, slot in enumerate(open_slots)}
    return Model(
        calendar=calendar,
        origin=origin,
        season=levels,
        trend_per_week=trend,
        holiday_log_factor=float(effects[-1]) if has_holiday else (-math.inf if closed_on_holidays else None),
    )


@dataclass(frozen=True)
class Accuracy:
    """Backtest on held-out weeks: WAPE = Σ|actual − forecast| / Σ actual; MAPE = the mean of
    |actual − forecast| / actual over intervals with contacts (an interval with none has no
    percentage error and is left out of MAPE, not of WAPE)."""

    weeks: int
    intervals: int
    actual_total: float
    forecast_total: float
    wape: float | None
    mape: float | None


def accuracy(actual: np.ndarray, forecast: np.ndarray, weeks: int) -> Accuracy:
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    total = float(actual.sum())
    errors = np.abs(actual - forecast)
    seen = actual > 0
    return Accuracy(
        weeks=weeks,
        intervals=int(actual.size),
        actual_total=total,
        forecast_total=float(forecast.sum()),
        wape=float(errors.sum() / total) if total > 0 else None,
        mape=float((errors[seen] / actual[seen]).mean()) if seen.any() else None,
    )


def backtest(
    starts: Sequence[datetime], counts: Sequence[float] | np.ndarray, calendar: Calendar, weeks: int
) -> Accuracy:
    """Fit on all but the last ``weeks`` weeks of the history, forecast those, compare."""
    y = np.asarray(counts, dtype=float)
    held = weeks * 7 * calendar.slots_per_day
    if held >= y.size:
        raise NotEnoughHistory(f"{weeks} held-out weeks leave no history to fit on")
    model = fit(starts[:-held], y[:-held], calendar)
    return accuracy(y[-held:], model.predict(starts[-held:]), weeks)


def closed_days(model: Model, days: Collection[date]) -> list[date]:
    """Holidays in ``days`` forecast closed because the history had no holiday to learn from."""
    return sorted(d for d in days if d in model.calendar.holidays and model.holiday_log_factor is None)
