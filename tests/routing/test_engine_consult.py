"""Warm (consult) transfers and pinned rule-set versions in the hosted engine: pure, clock injected.

A consult keeps the parent with the sending agent (capacity held) while the child is offered to
the target; only the child's acceptance ends the parent leg. Every other outcome cancels the
child and the customer stays with the sender.
"""

from __future__ import annotations

from routing.engine import (
    AgentStatusChanged,
    Assigned,
    CommandRejected,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    OfferRescinded,
    QueueConfig,
    Transferred,
)
from routing.engine.hosted import ConsultEnded, HostedEngine
from routing.rules import Filter, RuleSet, Step
from workforce.models import Presence


def engine(*, wait: float = 60.0) -> HostedEngine:
    e = HostedEngine([QueueConfig("retail"), QueueConfig("cards")], consult_wait_seconds=wait)
    for aid, queues in (("sender", ("retail",)), ("target", ("retail", "cards")), ("other", ("cards",))):
        e.add_agent(0, aid, queues=queues, presence=Presence.AVAILABLE)
    return e


def connected(e: HostedEngine, now: float = 1) -> None:
    """``parent`` (voice) connected to ``sender``: voice is exclusive, so nobody else gets it first."""
    e.set_presence(now, "target", Presence.BREAK)
    e.set_presence(now, "other", Presence.BREAK)
    (offer,) = offers(e.enqueue(now, "parent", "voice", queue="retail"))
    assert offer.agent_id == "sender"
    e.accept(now, offer.offer_id, "sender")
    e.set_presence(now, "target", Presence.AVAILABLE)
    e.set_presence(now, "other", Presence.AVAILABLE)


def offers(events) -> list[OfferCreated]:
    return [ev for ev in events if isinstance(ev, OfferCreated)]


def holders(e: HostedEngine) -> dict[str, list[str]]:
    """Per interaction, the agents connected to it (or in wrap-up) — never more than one."""
    out: dict[str, list[str]] = {}
    for aid, a in e.snapshot()["agents"].items():
        for iid in a["work"]:
            out.setdefault(iid, []).append(aid)
    return out


def start(e: HostedEngine, now: float = 2, child: str = "child", **kw):
    kw.setdefault("to_agent", "target")
    return e.start_consult(
        now, "parent", child, "voice", sender="sender", queue="retail", virtual_start=0.5, **kw
    )


def test_accepted_consult_ends_the_parent_only_on_acceptance() -> None:
    e = engine()
    connected(e)
    events = start(e)
    (offer,) = offers(events)
    assert offer.interaction_id == "child" and offer.agent_id == "target"
    snap = e.snapshot()
    # While the target decides, the sender still holds the customer and the capacity.
    assert snap["interactions"]["parent"]["status"] == "connected"
    assert snap["agents"]["sender"]["used"] == 100 and snap["agents"]["sender"]["work"] == ["parent"]
    assert snap["interactions"]["child"]["virtual_start"] == 0.5  # keeps its place in line
    assert holders(e) == {"parent": ["sender"]}

    done = e.accept(3, offer.offer_id, "target")
    kinds = [type(ev) for ev in done]
    assert kinds[:3] == [Assigned, ConsultEnded, Transferred]
    assert done[1] == ConsultEnded("parent", "child", "sender", "accepted", "target")
    assert done[2] == Transferred("parent", "sender", None, "target")
    snap = e.snapshot()
    assert snap["interactions"]["parent"]["status"] == "completed"
    assert snap["agents"]["sender"]["used"] == 0  # released, as for a blind transfer
    assert holders(e) == {"child": ["target"]}
    assert e.consult_child("parent") is None


def test_sender_is_never_offered_the_child_and_freed_capacity_is_reused_at_once() -> None:
    e = engine()
    connected(e)
    (offer,) = offers(start(e, to_agent=None))  # to the queue: target serves retail, sender declined
    assert offer.agent_id == "target"
    e.enqueue(3, "next", "voice", queue="retail")  # waits: the sender is still on the parent
    assert e.snapshot()["interactions"]["next"]["status"] == "waiting"
    done = e.accept(4, offer.offer_id, "target")
    assert done[2] == Transferred("parent", "sender", "retail", None)
    # The sender's capacity came free in the same command: the waiting call goes to them.
    assert [(o.interaction_id, o.agent_id) for o in offers(done)] == [("next", "sender")]


def test_rejected_consult_cancels_the_child_and_the_customer_stays() -> None:
    e = engine()
    connected(e)
    (offer,) = offers(start(e, to_agent=None))
    events = e.reject(3, offer.offer_id, "target")
    assert [type(ev) for ev in events] == [OfferRejected, ConsultEnded]
    assert events[1] == ConsultEnded("parent", "child", "sender", "rejected")
    snap = e.snapshot()
    # Not passed on to "other" (not in retail anyway) nor anyone: a consult is one attempt.
    assert snap["interactions"]["child"]["status"] == "abandoned"
    assert snap["interactions"]["parent"]["status"] == "connected"
    assert snap["agents"]["sender"]["work"] == ["parent"]
    assert holders(e) == {"parent": ["sender"]}
    assert e.consult_child("parent") is None


def test_missed_consult_offer_cancels_and_target_goes_not_responding() -> None:
    e = engine()
    connected(e)
    start(e)
    events = e.tick(2 + 21)  # voice offers live 20 s
    assert [type(ev) for ev in events] == [OfferExpired, AgentStatusChanged, ConsultEnded]
    assert events[-1].outcome == "missed"
    assert e.snapshot()["interactions"]["parent"]["status"] == "connected"
    assert e.snapshot()["agents"]["target"]["presence"] == "not_responding"


def test_consult_nobody_could_take_times_out() -> None:
    e = engine(wait=30)
    connected(e)
    e.set_presence(1.5, "target", Presence.BREAK)
    events = start(e)
    assert offers(events) == []  # the named agent is on a break: it waits for them only
    assert e.tick(31) == []
    (ended,) = e.tick(32.5)
    assert ended == ConsultEnded("parent", "child", "sender", "timed_out")
    # Coming back from the break later offers nothing: the consult is over.
    assert offers(e.set_presence(33, "target", Presence.AVAILABLE)) == []
    assert e.snapshot()["interactions"]["parent"]["status"] == "connected"


def test_sender_cancels_or_wraps_up_and_only_the_sender_may_cancel() -> None:
    e = engine()
    connected(e)
    (offer,) = offers(start(e))
    (refused,) = e.cancel_consult(3, "parent", "target")
    assert isinstance(refused, CommandRejected)
    events = e.cancel_consult(3, "parent", "sender")
    assert [type(ev) for ev in events] == [OfferRescinded, ConsultEnded]
    assert events[0].reason == "consult_cancelled" and events[1].outcome == "cancelled"
    assert e.snapshot()["agents"]["target"]["used"] == 0  # the target's reservation is released
    late = e.accept(4, offer.offer_id, "target")
    assert isinstance(late[0], CommandRejected)  # too late: nothing changes
    assert holders(e) == {"parent": ["sender"]}
    (again,) = e.cancel_consult(4, "parent", "sender")
    assert isinstance(again, CommandRejected)

    # A second consult, then the sender wraps up the parent: the consult cannot outlive it.
    start(e, now=5, child="child-2")
    events = e.wrap_up(6, "parent")
    assert [ev.kind for ev in events] == ["offer_rescinded", "consult_ended", "wrap_up_started"]
    assert events[1].outcome == "parent_ended"


def test_only_the_connected_agent_starts_one_consult_at_a_time() -> None:
    e = engine()
    connected(e)
    try:
        e.start_consult(2, "parent", "c2", "voice", sender="target", queue="retail", virtual_start=0)
        raise AssertionError("a stranger started a consult")
    except ValueError:
        pass
    start(e)
    try:
        e.start_consult(3, "parent", "c3", "voice", sender="sender", queue="retail", virtual_start=0)
        raise AssertionError("two consults at once")
    except ValueError as exc:
        assert "already in progress" in str(exc)
    assert "c2" not in e.snapshot()["interactions"] and "c3" not in e.snapshot()["interactions"]


# --------------------------------------------------------------------------- pinned rule sets


def rules(version: int, queue: str) -> RuleSet:
    only = Filter(name="everyone", steps=[Step(queue=queue)])
    return RuleSet(version=version, filters=[], default_filter=only, on_final_timeout=queue)


def test_waiting_work_is_routed_by_its_pinned_version_not_the_live_one() -> None:
    e = HostedEngine([QueueConfig("retail"), QueueConfig("cards")], rule_set=rules(2, "cards"))
    e.add_rule_set(rules(1, "retail"))
    assert e.rule_set_version == 2  # adding an old version never makes it live
    (queued,) = e.enqueue(1, "old", "chat", rule_set_version=1)
    assert queued.queue == "retail" and e.routed_version("old") == 1
    (queued,) = e.enqueue(1, "new", "chat")
    assert queued.queue == "cards" and e.routed_version("new") == 2
    try:
        e.enqueue(1, "lost", "chat", rule_set_version=7)
        raise AssertionError("routed by a version that was never loaded")
    except ValueError:
        assert e.rule_set_version == 2
    # The explicit re-evaluation is what moves pinned work to the live version.
    (moved,) = e.reevaluate_waiting(2)
    assert moved.interaction_id == "old" and moved.queue == "cards" and e.routed_version("old") == 2
