"""The engine's lean writers (customers.timeline.insert_events, routing.history.bump_many) write the
same rows whichever way they go: a decision's few rows one prebuilt statement each on PostgreSQL,
larger sets (a take-over's install) in one multi-row statement."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from customers.timeline import FEW_ROWS, PUBLISHER_KEY, ROWS_PENDING_KEY, event_row, insert_events
from customers.timeline_models import ActorType, TimelineEvent
from routing import history
from routing.history import QueueInterval
from tests.factories import make_customer

CARD = "4111 1111 1111 1111"  # masked on the way in, as the ORM's writes mask it


async def test_few_and_many_events_are_written_alike(db) -> None:
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)

    def rows(n: int, tag: str) -> list[dict]:
        return [
            event_row(
                customer_id=customer.id,
                interaction_id=None,
                kind=f"{tag}-{i}",
                channel="chat",
                actor_type=ActorType.SYSTEM,
                actor_id="routing",
                data={"note": f"card {CARD}", "n": i},
                at=at,
            )
            for i in range(n)
        ]

    written: dict[str, list[tuple]] = {}
    for tag, n in (("few", FEW_ROWS), ("many", FEW_ROWS + 3)):
        async with db.sessionmaker() as s:
            s.info[PUBLISHER_KEY] = object()  # what the app's sessions carry: ids are announced
            await insert_events(s, rows(n, tag))
            announced = [(e.id, e.kind) for e in s.info[ROWS_PENDING_KEY]]
            await s.commit()
        async with db.sessionmaker() as s:
            events = (
                await s.scalars(
                    select(TimelineEvent)
                    .where(TimelineEvent.kind.like(f"{tag}-%"))
                    .order_by(TimelineEvent.id)
                )
            ).all()
        assert [e.kind for e in events] == [f"{tag}-{i}" for i in range(n)]  # in the rows' order
        assert announced == [(e.id, e.kind) for e in events]  # each id announced with its own row
        written[tag] = [
            (e.customer_id, e.interaction_id, e.channel, e.actor_type, e.actor_id, e.at, e.data["note"])
            for e in events
        ]
    assert set(written["few"]) == set(written["many"])
    (note,) = {row[-1] for row in written["few"]}
    assert CARD not in note and note.endswith("1111")  # masked, not dropped


async def test_one_and_several_interval_rows_are_added_alike(db) -> None:
    start = history.interval_start(datetime(2026, 12, 7, 9, 31, tzinfo=UTC))
    for _ in range(2):  # the second time, the counters add up
        async with db.sessionmaker() as s:
            await history.bump_many(s, {("alone", start): {"offered": 1, "handle_seconds": 2.5}})
            await history.bump_many(
                s,
                {
                    ("pair-a", start): {"offered": 1, "handle_seconds": 2.5},
                    ("pair-b", start): {"accepted": 1},
                },
            )
            await s.commit()
    async with db.sessionmaker() as s:
        found = {
            row.queue_name: (row.offered, row.accepted, row.handle_seconds)
            for row in (await s.scalars(select(QueueInterval))).all()
        }
    assert found == {"alone": (2, 0, 5.0), "pair-a": (2, 0, 5.0), "pair-b": (0, 2, 0.0)}
