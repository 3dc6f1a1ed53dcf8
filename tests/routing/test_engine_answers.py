"""Answers judged by when the agent clicked (issue #15 item 3) and not-responding meaning not
responding (item 4): the pure engine, an injected clock, no mocks."""

from __future__ import annotations

from routing.engine import (
    AgentStatusChanged,
    Assigned,
    CommandRejected,
    EngineConfig,
    OfferExpired,
    OfferRejected,
)
from tests.helpers import agent, connect, engine, offer_of, offers
from workforce.models import Presence

GRACE = EngineConfig(answer_grace_seconds=2.0)


def _not_responding(events) -> bool:
    return any(isinstance(ev, AgentStatusChanged) and ev.presence == "not_responding" for ev in events)


def test_accept_received_in_time_is_honoured_when_processed_after_expiry() -> None:
    e = engine(config=GRACE)
    agent(e, 0, "a")
    o = offer_of(e.enqueue(100, "i", "voice", queue="retail"))  # expires at 120
    # Clicked at 119, reached the engine at 121.5 (behind a burst): still the agent's.
    events = e.accept(121.5, o.offer_id, "a", received_at=119.0)
    assert events == [Assigned(o.offer_id, "i", "a", 119.0)]
    assert e.snapshot()["interactions"]["i"]["status"] == "connected"
    assert e.snapshot()["agents"]["a"]["presence"] == "available"


def test_accept_received_after_expiry_is_refused_and_the_agent_is_not_marked() -> None:
    e = engine(config=GRACE)
    agent(e, 0, "a")
    agent(e, 0, "b")
    e.set_presence(0, "b", Presence.BREAK)
    o = offer_of(e.enqueue(100, "i", "voice", queue="retail"))
    late = e.accept(120.5, o.offer_id, "a", received_at=120.2)
    assert late == [CommandRejected("accept", o.offer_id, "offer expired before the answer")]
    expired = e.tick(122)
    assert OfferExpired(o.offer_id, "i", "a") in expired
    assert not _not_responding(expired)  # their desktop answered, if late
    assert e.snapshot()["agents"]["a"]["presence"] == "available"


def test_an_answer_without_a_receipt_time_is_judged_when_processed() -> None:
    e = engine(config=GRACE)
    agent(e, 0, "a")
    o = offer_of(e.enqueue(100, "i", "voice", queue="retail"))
    assert e.accept(120.5, o.offer_id, "a") == [
        CommandRejected("accept", o.offer_id, "offer expired before the answer")
    ]


def test_reject_received_in_time_counts_as_a_reject() -> None:
    e = engine(config=GRACE)
    agent(e, 0, "a")
    o = offer_of(e.enqueue(100, "i", "voice", queue="retail"))
    events = e.reject(121, o.offer_id, "a", received_at=118)
    assert OfferRejected(o.offer_id, "i", "a") in events and not _not_responding(events)
    assert e.stats.queue("retail").rejected == 1 and e.stats.queue("retail").missed == 0


def test_offer_stays_live_through_the_grace_then_expires_as_missed() -> None:
    e = engine(config=GRACE)
    agent(e, 0, "a")
    o = offer_of(e.enqueue(100, "i", "voice", queue="retail"))
    assert o.expires_at == 120  # what the desktop counts down to: the grace is not the agent's
    assert not [ev for ev in e.tick(121.9) if isinstance(ev, OfferExpired)]
    events = e.tick(122)
    assert OfferExpired(o.offer_id, "i", "a") in events and _not_responding(events)


# ----------------------------------------------------------------- not-responding (item 4)


def test_silence_from_an_idle_available_agent_marks_not_responding() -> None:
    e = engine()
    agent(e, 0, "a")
    offer_of(e.enqueue(100, "i", "voice", queue="retail"))
    assert _not_responding(e.tick(120))


def test_an_offer_missed_on_break_leaves_the_break() -> None:
    e = engine()
    agent(e, 0, "a")
    offer_of(e.enqueue(100, "i", "chat", queue="retail"))
    e.set_presence(101, "a", Presence.BREAK, "lunch")  # the offer stays; no new ones
    events = e.tick(130)
    assert any(isinstance(ev, OfferExpired) for ev in events) and not _not_responding(events)
    snap = e.snapshot()["agents"]["a"]
    assert snap["presence"] == "break"


def test_an_offer_missed_while_busy_with_accepted_work_does_not_mark() -> None:
    e = engine()
    agent(e, 0, "a")
    connect(e, 100, e.enqueue(100, "c1", "chat", queue="retail"))
    offer_of(e.enqueue(101, "c2", "chat", queue="retail"))
    events = e.tick(131)
    assert any(isinstance(ev, OfferExpired) for ev in events) and not _not_responding(events)
    assert e.snapshot()["agents"]["a"]["presence"] == "available"
    assert e.snapshot()["interactions"]["c2"]["declined"] == ["a"]  # not offered to them again


def test_rescinded_offers_never_mark() -> None:
    e = engine()
    agent(e, 0, "a")
    agent(e, 0, "b")
    e.set_presence(0, "b", Presence.BREAK)
    offer_of(e.enqueue(100, "gone", "voice", queue="retail"))
    assert not _not_responding(e.abandon(105, "gone"))  # the customer hung up
    offer_of(e.enqueue(106, "moved", "voice", queue="retail"))
    assert not _not_responding(e.transfer(107, "moved", to_queue="retail"))
    assert e.snapshot()["agents"]["a"]["presence"] == "available"
    assert offers(e.tick(140)) == []


def test_an_engine_that_fell_behind_honours_every_answer_received_in_time() -> None:
    """A rebuild or a stall: the engine reaches the answers long after the offers' expiry. Each
    answer is judged by its receipt; none expires the others' offers before they are judged."""
    e = engine(config=GRACE)
    agent(e, 0, "a")
    agent(e, 0, "b")
    first = offer_of(e.enqueue(100, "i", "voice", queue="retail"))
    second = offer_of(e.enqueue(100, "j", "voice", queue="retail"))
    assert {first.agent_id, second.agent_id} == {"a", "b"}
    # Both clicked at 118 (expiry 120); the engine gets to them at 130, past the grace too.
    assert e.accept(130, first.offer_id, first.agent_id, received_at=118)[0] == Assigned(
        first.offer_id, "i", first.agent_id, 118
    )
    assert e.reject(130.1, second.offer_id, second.agent_id, received_at=118)[0] == OfferRejected(
        second.offer_id, "j", second.agent_id
    )
    # Offers nobody answered still expire on the next tick.
    third = offer_of(e.enqueue(131, "k", "voice", queue="retail"))
    events = e.tick(200)
    assert OfferExpired(third.offer_id, "k", third.agent_id) in events
