"""A previous engine's live offers kept through a rebuild (issue #15 item 2: a take-over that does
not stop the floor), in the pure engine: ``enqueue(offered=LiveOffer(...))`` keeps the offer with
its own times when this engine would let the agent have it, and matches the work as usual when not.
The host side (SQL ids kept, nothing withdrawn, an accept of a dead leader's offer honoured) is in
test_host.py and test_not_responding.py."""

from __future__ import annotations

import pytest

from routing.engine import EngineConfig, QueueConfig
from routing.engine.events import AgentStatusChanged, Assigned, OfferExpired
from routing.engine.hosted import HostedEngine
from routing.engine.state import LiveOffer
from tests.helpers import agent, offers
from workforce.models import Presence

NOW = 1_000.0


def floor(**config: float) -> HostedEngine:
    e = HostedEngine([QueueConfig("retail"), QueueConfig("cards")], config=EngineConfig(**config), now=NOW)
    agent(e, NOW, "a1", capacity_units=100)
    agent(e, NOW, "a2", capacity_units=100)
    return e


def kept(agent_id: str = "a2", *, queue: str = "retail", made: float = NOW - 5, expires: float = NOW + 25):
    return LiveOffer(agent_id, queue, made, expires)


def test_a_live_offer_is_kept_until_its_own_expiry_and_no_new_offer_is_made():
    e = floor()
    events = e.enqueue(NOW, "i1", "chat", queue="retail", virtual_start=NOW - 10, offered=kept())
    assert offers(events) == []  # a1 (longest idle) would have been offered it: the offer stays a2's
    offer_id = e.kept_offer("i1")
    assert offer_id is not None
    assert e.snapshot()["interactions"]["i1"]["offered_to"] == "a2"
    # It holds a2's capacity (one offer at a time): the next chat goes to a1.
    assert offers(e.enqueue(NOW + 1, "i2", "chat", queue="retail", virtual_start=NOW)) == [("i2", "a1")]
    assert e.tick(NOW + 24.9) == []  # its own expiry (NOW + 25), not a new offer's 30 s
    assert any(isinstance(ev, OfferExpired) and ev.offer_id == offer_id for ev in e.tick(NOW + 25.1))


def test_a_kept_offer_is_accepted_like_any_other():
    e = floor()
    e.enqueue(NOW, "i1", "chat", queue="retail", virtual_start=NOW - 10, offered=kept())
    offer_id = e.kept_offer("i1")
    assert offer_id is not None
    assert any(isinstance(ev, Assigned) for ev in e.accept(NOW + 2, offer_id, "a2"))
    assert e.snapshot()["interactions"]["i1"]["agent"] == "a2"


def test_a_kept_offer_that_expires_unanswered_does_not_mark_the_agent():
    """The desktop may have lost its socket in the hand-over: a miss then is not silence."""
    e = floor()
    e.enqueue(NOW, "i1", "chat", queue="retail", virtual_start=NOW - 10, offered=kept(expires=NOW + 3))
    events = e.tick(NOW + 4)
    assert any(isinstance(ev, OfferExpired) and ev.agent_id == "a2" for ev in events)
    assert not any(isinstance(ev, AgentStatusChanged) for ev in events)
    assert e.snapshot()["agents"]["a2"]["presence"] == Presence.AVAILABLE.value
    # The same silence on an offer this engine made marks the agent: the rule above is the only
    # difference.
    ((_, to_agent),) = offers(e.enqueue(NOW + 5, "i2", "chat", queue="retail", virtual_start=NOW + 5))
    marked = e.tick(NOW + 5 + 31)
    assert any(isinstance(ev, AgentStatusChanged) and ev.agent_id == to_agent for ev in marked)


def _another_offer_kept(e: HostedEngine) -> None:
    e.enqueue(NOW, "i0", "chat", queue="retail", virtual_start=NOW - 99, offered=kept())


@pytest.mark.parametrize(
    ("why", "prepare", "offered"),
    [
        ("the agent went on break meanwhile", lambda e: e.set_presence(NOW, "a2", Presence.BREAK), kept()),
        ("the agent is gone", lambda e: None, kept("nobody")),
        ("the work is placed in another queue now", lambda e: None, kept(queue="cards")),
        ("the offer's time is over", lambda e: None, kept(expires=NOW - 1)),
        ("the agent holds another offer (one at a time)", _another_offer_kept, kept()),
    ],
)
def test_an_offer_the_engine_would_not_make_is_not_kept_and_the_work_is_matched(why, prepare, offered):
    e = floor()
    prepare(e)
    events = e.enqueue(NOW, "i1", "chat", queue="retail", virtual_start=NOW - 10, offered=offered)
    assert e.kept_offer("i1") is None, why
    assert offers(events) == [("i1", "a1")], why


def test_within_the_answer_grace_an_expired_offer_is_kept_for_the_answer_on_its_way():
    e = floor(answer_grace_seconds=2.0)
    e.enqueue(NOW, "i1", "chat", queue="retail", virtual_start=NOW - 10, offered=kept(expires=NOW - 1))
    offer_id = e.kept_offer("i1")
    assert offer_id is not None
    # Received before the expiry, processed after it: honoured.
    assert any(isinstance(ev, Assigned) for ev in e.accept(NOW + 0.5, offer_id, "a2", received_at=NOW - 1.5))
