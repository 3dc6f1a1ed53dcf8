"""The week the schedule tests plan: its Monday, London wall-clock times, and a requirement curve
built from spans of hours (shared by test_schedule_api and test_schedule_browser)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
MONDAY = date(2027, 1, 4)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


def requirement(days: int, spans: list[tuple[int, int, int, int]]) -> list[int]:
    start = local(MONDAY, 0)
    slots = int((local(MONDAY + timedelta(days=days), 0) - start) / timedelta(minutes=15))
    need = [0] * slots
    for slot in range(slots):
        at = (start + timedelta(minutes=15 * slot)).astimezone(LONDON)
        for day, first, last, agents in spans:
            if at.date() == MONDAY + timedelta(days=day) and first <= at.hour < last:
                need[slot] = agents
    return need
