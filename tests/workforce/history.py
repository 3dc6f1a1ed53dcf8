"""Interaction history for forecast tests: inbound voice contacts with a known weekly pattern."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from interactions.models import Interaction
from interactions.states import Channel, Direction, State
from tests.factories import make_customer, make_queue

LONDON = ZoneInfo("Europe/London")
HORIZON = date(2026, 11, 2)  # a Monday
AHT_S = 240


def weekday_volume(local: datetime) -> int:
    """Contacts in a 30-minute interval: weekdays 09:00–17:00, busiest at noon, none at weekends."""
    hour = local.hour + local.minute / 60
    if local.weekday() >= 5 or not 9 <= hour < 17:
        return 0
    return round(4 + 6 * math.exp(-(((hour - 12) / 2) ** 2)))


async def seed_history(db, *, weeks: int = 4, queue: str = "cards") -> int:
    """Inbound voice contacts on ``queue`` for ``weeks`` weeks before HORIZON, handled in AHT_S."""
    async with db.sessionmaker() as s:
        await make_queue(s, queue, sl_target_percent=80, sl_threshold_seconds=20)
        queue_id = (await make_queue(s, queue)).id
        customer = await make_customer(s)
        rows = []
        first = datetime.combine(HORIZON - timedelta(weeks=weeks), datetime.min.time(), tzinfo=LONDON)
        for i in range(weeks * 7 * 48):
            start = (first.astimezone(UTC) + timedelta(minutes=30 * i)).astimezone(LONDON)
            for k in range(weekday_volume(start)):
                created = start.astimezone(UTC) + timedelta(minutes=30 * (k + 0.5) / 12)
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "customer_id": customer.id,
                        "channel": Channel.VOICE,
                        "direction": Direction.INBOUND,
                        "state": State.COMPLETED,
                        "queue_id": queue_id,
                        "created_at": created,
                        "virtual_start_at": created,
                        "updated_at": created,
                        "connected_at": created + timedelta(seconds=10),
                        "ended_at": created + timedelta(seconds=10 + AHT_S),
                    }
                )
        await s.execute(insert(Interaction), rows)
        await s.commit()
    return len(rows)
