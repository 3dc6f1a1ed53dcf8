"""Engine semantics (DESIGN §3), one behaviour per test, with an injected clock and no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from typing import Any

import pytest

from demo.rules import DEFAULT_RULE_SET, DEMO_QUEUES
from routing.engine import (
    Abandoned,
    AgentStatusChanged,
    Assigned,
    CommandRejected,
    Completed,
    Diverted,
    Engine,
    EngineConfig,
    Escalated,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    OfferRescinded,
    QueueConfig,
    Requeued,
    Transferred,
)
from routing.rules import Filter, RuleSet, Step
from tests.helpers import agent, connect, engine, offer_of, offers
from workforce.models import Presence, SelectionStrategy

AV = Presence.AVAILABLE


# Capacity tests offer up to capacity (the queue policy that stacks offers), not one at a time.
UP_TO_CAPACITY = QueueConfig("retail", one_offer_at_a_time=False)


def test_weighted_capacity_and_per_channel_maximum() -> None:
    e = engine(UP_TO_CAPACITY)
    agent(e, 0, "a", channel_max={"chat": 3, "email": 5, "voice": 1, "ticket": 5})
    got = [offers(e.enqueue(1, f"c{i}", "chat", queue="retail")) for i in range(4)]
    # 4 chats x 25 units would fit in 100 units, but the chat maximum is 3.
    assert got == [[("c0", "a")], [("c1", "a")], [("c2", "a")], []]
    assert e.snapshot()["agents"]["a"]["used"] == 75
    # 10-unit email still fits (75 + 10 <= 100); a third would not (75 + 30 > 100).
    assert offers(e.enqueue(2, "m0", "email", queue="retail")) == [("m0", "a")]
    assert offers(e.enqueue(2, "m1", "email", queue="retail")) == [("m1", "a")]
    assert offers(e.enqueue(2, "m2", "email", queue="retail")) == []
    assert e.snapshot()["agents"]["a"]["used"] == 95


def test_channel_costs_are_configurable() -> None:
    cfg = EngineConfig(channel_cost={"voice": 100, "chat": 50, "ticket": 10, "email": 10})
    e = engine(UP_TO_CAPACITY, config=cfg)
    agent(e, 0, "a")
    assert len(offers(e.enqueue(1, "c0", "chat", queue="retail"))) == 1
    assert len(offers(e.enqueue(1, "c1", "chat", queue="retail"))) == 1
    assert offers(e.enqueue(1, "c2", "chat", queue="retail")) == []  # 150 > 100 before the max of 3


def test_voice_blocks_other_work_both_ways() -> None:
    e = engine()
    agent(e, 0, "a", capacity_units=300)
    connect(e, 1, e.enqueue(1, "v", "voice", queue="retail"))
    assert offers(e.enqueue(2, "c", "chat", queue="retail")) == []
    e.complete(3, "v")
    assert offers(e.tick(3)) == []  # the chat was already taken when capacity came back
    snap = e.snapshot()
    assert snap["interactions"]["c"]["offered_to"] == "a"
    # Holding a chat, the agent gets no call even with units to spare.
    assert offers(e.enqueue(4, "v2", "voice", queue="retail")) == []


def test_voice_exclusivity_can_be_switched_off() -> None:
    e = engine(config=EngineConfig(voice_blocks_other_work=False))
    agent(e, 0, "a", capacity_units=300)
    connect(e, 1, e.enqueue(1, "v", "voice", queue="retail"))
    assert offers(e.enqueue(2, "c", "chat", queue="retail")) == [("c", "a")]


def test_capacity_is_released_only_by_complete() -> None:
    e = engine()
    agent(e, 0, "a")
    connect(e, 1, e.enqueue(1, "v1", "voice", queue="retail"))
    assert offers(e.enqueue(2, "v2", "voice", queue="retail")) == []
    assert offers(e.wrap_up(3, "v1")) == []  # wrap-up still holds the capacity
    assert e.snapshot()["agents"]["a"]["used"] == 100
    ev = e.complete(4, "v1")
    assert isinstance(ev[0], Completed)
    o = offer_of(ev)
    assert (o.interaction_id, o.agent_id, o.trigger) == ("v2", "a", "agent")


# --------------------------------------------------------------------------- the two triggers


def test_arrival_goes_to_the_longest_idle_agent() -> None:
    e = engine()
    agent(e, 0, "late")  # registered first, but made available later
    e.set_presence(0, "late", Presence.BREAK)
    agent(e, 5, "early")
    e.set_presence(10, "late", AV)
    assert offers(e.enqueue(20, "i", "voice", queue="retail")) == [("i", "early")]


def test_ties_on_idle_time_go_to_registration_order_deterministically() -> None:
    e = engine()
    for aid in ("b", "a", "c"):
        agent(e, 0, aid)
    assert offers(e.enqueue(1, "i", "voice", queue="retail")) == [("i", "b")]


def test_freed_agent_takes_the_best_work_across_all_its_queues() -> None:
    e = engine("retail", "cards", "mortgages")
    agent(e, 0, "a", queues=("retail", "cards", "mortgages"))
    connect(e, 1, e.enqueue(1, "busy", "voice", queue="retail"))
    e.enqueue(10, "r", "voice", queue="retail", priority=1)
    e.enqueue(11, "c", "voice", queue="cards", priority=5)
    e.enqueue(12, "m", "voice", queue="mortgages", priority=3)
    o = offer_of(e.complete(20, "busy"))
    assert (o.interaction_id, o.trigger) == ("c", "agent")


def test_ageing_means_low_priority_is_not_starved() -> None:
    # rate 1/30 per second: priority 1 waiting 300 s scores 11 > priority 10 arriving now.
    e = engine("retail", "cards")
    agent(e, 0, "a", queues=("retail", "cards"))
    connect(e, 1, e.enqueue(1, "busy", "voice", queue="retail"))
    e.enqueue(100, "low", "voice", queue="retail", priority=1)
    e.enqueue(400, "high", "voice", queue="cards", priority=10)
    assert offer_of(e.complete(401, "busy")).interaction_id == "low"
    # Had it waited less, the high-priority one would go first.
    e2 = engine("retail", "cards")
    agent(e2, 0, "a", queues=("retail", "cards"))
    connect(e2, 1, e2.enqueue(1, "busy", "voice", queue="retail"))
    e2.enqueue(200, "low", "voice", queue="retail", priority=1)
    e2.enqueue(400, "high", "voice", queue="cards", priority=10)
    assert offer_of(e2.complete(401, "busy")).interaction_id == "high"


def test_equal_priority_ties_go_to_the_earlier_virtual_start() -> None:
    e = engine()
    agent(e, 0, "a")
    connect(e, 1, e.enqueue(1, "busy", "voice", queue="retail"))
    e.enqueue(10, "newer", "voice", queue="retail", priority=2)
    e.enqueue(11, "transferred-in", "voice", queue="retail", priority=2, virtual_start=5)
    assert offer_of(e.complete(20, "busy")).interaction_id == "transferred-in"


# --------------------------------------------------------------------------- selection strategies


def test_best_proficiency_strategy() -> None:
    q = QueueConfig("mortgages", strategy=SelectionStrategy.BEST_PROFICIENCY, rank_skills=("mortgages",))
    e = engine(q)
    agent(e, 0, "novice", queues=("mortgages",), skills={"mortgages": 2})
    agent(e, 1, "expert", queues=("mortgages",), skills={"mortgages": 5})
    agent(e, 2, "expert2", queues=("mortgages",), skills={"mortgages": 5})
    # Equal proficiency: longest idle of the two experts.
    assert offers(e.enqueue(3, "i", "voice", queue="mortgages")) == [("i", "expert")]


def test_least_occupied_strategy() -> None:
    e = engine(QueueConfig("retail", strategy=SelectionStrategy.LEAST_OCCUPIED))
    agent(e, 0, "a")
    agent(e, 0, "b")
    connect(e, 1, e.enqueue(1, "c1", "chat", queue="retail"))  # -> a (idle longest by seq)
    o = offer_of(e.enqueue(2, "c2", "chat", queue="retail"))
    assert o.agent_id == "b"
    connect(e, 2, [o])
    connect(e, 3, e.enqueue(3, "m1", "email", queue="retail"))  # both 25 -> a is idle longer
    assert offer_of(e.enqueue(4, "c3", "chat", queue="retail")).agent_id == "b"  # b 25 < a 35


def test_step_order_by_overrides_the_queue_strategy() -> None:
    rs = RuleSet(
        filters=[
            Filter(
                name="pb",
                when="true",
                steps=[Step(queue="retail", order_by=SelectionStrategy.BEST_PROFICIENCY)],
            )
        ],
        default_filter=Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout="callback",
    )
    e = engine(QueueConfig("retail", rank_skills=("wealth",)), rule_set=rs)
    agent(e, 0, "idle-longest", skills={"wealth": 1})
    agent(e, 1, "best", skills={"wealth": 5})
    assert offers(e.enqueue(2, "i", "voice", context={})) == [("i", "best")]


# --------------------------------------------------------------------------- requirements


def test_required_skills_and_target_predicate() -> None:
    e = engine()
    agent(e, 0, "en", skills={"mortgages": 5}, languages=("en",))
    agent(e, 1, "zh-junior", skills={"mortgages": 2}, languages=("zh",))
    agent(e, 2, "zh-senior", skills={"mortgages": 4}, languages=("zh", "en"))
    ev = e.enqueue(
        3,
        "i",
        "voice",
        queue="retail",
        required_skills={"mortgages": 3},
        target="customer.language in languages",
        context={"customer.language": "zh"},
    )
    assert offers(ev) == [("i", "zh-senior")]


def test_unknown_skill_in_target_counts_as_zero() -> None:
    e = engine()
    agent(e, 0, "a", skills={})
    assert offers(e.enqueue(1, "i", "voice", queue="retail", target="skills.underwriting >= 1")) == []
    assert offers(e.enqueue(1, "j", "voice", queue="retail", target="skills.underwriting == 0")) == [
        ("j", "a")
    ]


# --------------------------------------------------------------------------- offers


@pytest.mark.parametrize(("channel", "ttl"), [("voice", 20), ("chat", 30), ("ticket", 120), ("email", 120)])
def test_offer_ttl_per_channel(channel: str, ttl: float) -> None:
    e = engine()
    agent(e, 0, "a")
    o = offer_of(e.enqueue(100, "i", channel, queue="retail"))
    assert o.expires_at == 100 + ttl
    assert not [ev for ev in e.tick(100 + ttl - 0.001) if isinstance(ev, OfferExpired)]
    assert [type(ev) for ev in e.tick(100 + ttl)][:3] == [OfferExpired, AgentStatusChanged, Requeued]


def test_missed_offer_moves_agent_to_not_responding_and_never_reoffers() -> None:
    e = engine()
    agent(e, 0, "a")
    agent(e, 1, "b")
    e.set_presence(1, "b", Presence.BREAK)
    o = offer_of(e.enqueue(2, "i", "voice", queue="retail"))
    assert o.agent_id == "a"
    ev = e.tick(22)
    assert OfferExpired(o.offer_id, "i", "a") in ev
    assert AgentStatusChanged("a", "not_responding", "missed offer") in ev
    assert e.snapshot()["agents"]["a"]["presence"] == "not_responding"
    # Back to available: still not offered "i" again; b gets it once back from break.
    assert offers(e.set_presence(30, "a", AV)) == []
    assert offers(e.set_presence(31, "b", AV)) == [("i", "b")]
    assert e.stats.totals["missed"] == 1


def test_rejected_interaction_is_never_offered_to_that_agent_again() -> None:
    e = engine()
    agent(e, 0, "a")
    o = offer_of(e.enqueue(1, "i", "voice", queue="retail"))
    ev = e.reject(2, o.offer_id, "a")
    assert ev[:2] == [OfferRejected(o.offer_id, "i", "a"), Requeued("i", "retail", "rejected")]
    assert offers(ev) == []
    assert e.snapshot()["agents"]["a"]["presence"] == "available"  # rejecting is not missing
    # The agent frees and refrees capacity; the interaction still waits for somebody else.
    connect(e, 3, e.enqueue(3, "j", "voice", queue="retail"))
    assert offers(e.complete(4, "j")) == []
    assert offers(agent(e, 5, "b")) == [("i", "b")]
    assert e.stats.queue("retail").rejected == 1
    assert e.stats.queue("retail").missed == 0


def test_one_live_offer_per_interaction_and_stale_commands_are_rejected() -> None:
    e = engine()
    agent(e, 0, "a")
    agent(e, 0, "b")
    o = offer_of(e.enqueue(1, "i", "voice", queue="retail"))
    assert e.snapshot()["interactions"]["i"]["offer"] == o.offer_id
    # Offering happens once; b does not get a parallel offer.
    assert offers(e.tick(2)) == []
    assert e.accept(3, o.offer_id, "b") == [
        CommandRejected("accept", o.offer_id, "offer belongs to another agent")
    ]
    ev = e.accept(25, o.offer_id, "a")  # too late: the expiry runs first, then b gets it
    assert CommandRejected("accept", o.offer_id, "offer is no longer live") in ev
    assert offers(ev) == [("i", "b")]
    assert e.accept(26, "of-999", "a") == [CommandRejected("accept", "of-999", "unknown offer")]


def test_expired_offer_keeps_the_interactions_place() -> None:
    e = engine()
    agent(e, 0, "a")
    agent(e, 0, "b")
    e.set_presence(0, "b", Presence.BREAK)
    o = offer_of(e.enqueue(10, "first", "voice", queue="retail", priority=1))
    e.enqueue(11, "second", "voice", queue="retail", priority=1)
    e.tick(30)  # a misses "first"; "first" is back at the head, ahead of "second"
    assert e.snapshot()["waiting"]["retail"] == ["first", "second"]
    assert e.snapshot()["interactions"]["first"]["virtual_start"] == 10
    assert offers(e.set_presence(31, "b", AV)) == [("first", "b")]
    assert o.agent_id == "a"


@pytest.mark.parametrize(
    "presence", [Presence.NOT_RESPONDING, Presence.BREAK, Presence.OFFLINE, Presence.TRAINING]
)
def test_unavailable_agents_get_no_offers(presence: Presence) -> None:
    e = engine()
    agent(e, 0, "a", presence=presence)
    assert offers(e.enqueue(1, "i", "voice", queue="retail")) == []
    assert offers(e.set_presence(2, "a", AV)) == [("i", "a")]


def test_going_offline_rescinds_live_offers_and_requeues() -> None:
    e = engine()
    agent(e, 0, "a")
    o = offer_of(e.enqueue(1, "i", "voice", queue="retail"))
    ev = e.set_presence(2, "a", Presence.OFFLINE)
    assert OfferRescinded(o.offer_id, "i", "a", "agent_offline") in ev
    assert e.snapshot()["interactions"]["i"]["status"] == "waiting"
    assert e.snapshot()["agents"]["a"]["used"] == 0
    # Rescinded is not declined: the agent may get it again.
    assert offers(e.set_presence(3, "a", AV)) == [("i", "a")]


# --------------------------------------------------------------------------- abandon and transfer


def test_abandon_while_waiting_and_while_offered() -> None:
    e = engine(QueueConfig("retail", sl_threshold_seconds=5))
    agent(e, 0, "a")
    o = offer_of(e.enqueue(1, "i", "voice", queue="retail"))
    e.enqueue(2, "j", "voice", queue="retail")
    ev = e.abandon(3, "i")
    assert ev[:2] == [OfferRescinded(o.offer_id, "i", "a", "abandoned"), Abandoned("i", "offered")]
    assert offers(ev) == [("j", "a")]  # the freed agent takes the next one
    e.enqueue(4, "k", "voice", queue="retail")
    assert e.abandon(10, "k") == [Abandoned("k", "waiting")]
    assert e.abandon(11, "k") == [CommandRejected("abandon", "k", "interaction is abandoned")]
    rq = e.stats.queue("retail")
    assert (rq.abandoned, rq.abandoned_within_sl, rq.waiting) == (2, 1, 0)


def test_transfer_to_queue_keeps_virtual_start_and_frees_the_agent() -> None:
    e = engine("retail", "cards")
    agent(e, 0, "a", queues=("retail",))
    agent(e, 0, "b", queues=("cards",))
    connect(e, 1, e.enqueue(1, "busy-b", "voice", queue="cards"))
    connect(e, 5, e.enqueue(5, "i", "voice", queue="retail"))
    e.enqueue(6, "cards-newer", "voice", queue="cards")
    ev = e.transfer(10, "i", to_queue="cards")
    assert ev[0] == Transferred("i", "a", "cards", None)
    assert e.snapshot()["agents"]["a"]["used"] == 0
    # In cards it sits ahead of work that arrived after its original start.
    assert e.snapshot()["waiting"]["cards"] == ["i", "cards-newer"]
    assert offer_of(e.complete(11, "busy-b")).interaction_id == "i"


def test_transfer_to_agent_waits_for_that_agent_only() -> None:
    e = engine()
    agent(e, 0, "a")
    agent(e, 0, "b")
    agent(e, 0, "c")
    connect(e, 1, e.enqueue(1, "i", "voice", queue="retail"))  # -> a
    connect(e, 1, e.enqueue(1, "busy-b", "voice", queue="retail"))  # -> b
    ev = e.transfer(2, "i", to_agent="b")
    assert offers(ev) == []  # c is idle but not the target
    assert offer_of(e.complete(3, "busy-b")).agent_id == "b"


# --------------------------------------------------------------------------- rules in the engine


def demo_engine(now: float = 0.0) -> Engine:
    return Engine(
        [QueueConfig(q, rank_skills=(q.replace("-", "_"),)) for q in DEMO_QUEUES],
        rule_set=DEFAULT_RULE_SET,
        now=now,
    )


def test_relationship_manager_first_then_relaxed_steps_by_age() -> None:
    e = demo_engine()
    agent(e, 0, "rm", queues=("private-banking",), skills={"private_banking": 5})
    agent(e, 0, "pb-junior", queues=("private-banking",), skills={"private_banking": 2})
    agent(e, 0, "pb-senior", queues=("private-banking",), skills={"private_banking": 4})
    connect(
        e,
        1,
        e.enqueue(
            1, "rm-busy", "voice", queue="private-banking", preferred_agent="rm", preferred_required=True
        ),
    )
    ctx = {"customer.tier": "platinum", "customer.relationship_manager": "rm"}
    ev = e.enqueue(10, "p", "voice", context=ctx)
    assert offers(ev) == []  # waits for the RM (required) although others are idle
    ev = e.tick(40)  # 30 s: the proficiency >= 4 step
    assert Escalated("p", "private-banking", "private-banking", 1, 6) in ev
    assert offers(ev) == [("p", "pb-senior")]


def test_relationship_manager_gets_it_when_available() -> None:
    e = demo_engine()
    agent(e, 0, "pb", queues=("private-banking",), skills={"private_banking": 5})
    agent(e, 1, "rm", queues=("retail",), skills={"private_banking": 5})
    ev = e.enqueue(
        2, "p", "voice", context={"customer.tier": "platinum", "customer.relationship_manager": "rm"}
    )
    assert offers(ev) == [("p", "rm")]


def test_unreachable_relationship_manager_is_skipped_immediately() -> None:
    e = demo_engine()
    agent(e, 0, "pb", queues=("private-banking",), skills={"private_banking": 5})
    agent(e, 0, "rm", queues=("private-banking",), presence=Presence.OFFLINE)
    ev = e.enqueue(
        2, "p", "voice", context={"customer.tier": "platinum", "customer.relationship_manager": "rm"}
    )
    assert offers(ev) == [("p", "pb")]


def test_final_timeout_diverts_to_callback() -> None:
    rs = RuleSet(
        filters=[Filter(name="x", when="true", steps=[Step(queue="retail", timeout_seconds=60)])],
        default_filter=Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout="callback",
    )
    e = engine(rule_set=rs)
    e.enqueue(0, "i", "voice", context={})
    assert e.tick(59) == []
    assert e.tick(60) == [Diverted("i", "callback")]
    assert e.snapshot()["interactions"]["i"]["status"] == "diverted"
    assert e.stats.queue("retail").waiting == 0


def test_final_timeout_overflows_to_a_queue() -> None:
    rs = RuleSet(
        filters=[Filter(name="x", when="true", steps=[Step(queue="cards", timeout_seconds=60)])],
        default_filter=Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout="retail",
    )
    e = engine("retail", "cards", rule_set=rs)
    agent(e, 0, "r", queues=("retail",))
    e.enqueue(0, "i", "voice", context={})
    ev = e.tick(61)
    assert ev[0] == Escalated("i", "cards", "retail", 1, 0)
    assert offers(ev) == [("i", "r")]


def test_escalation_while_offered_applies_when_requeued() -> None:
    rs = RuleSet(
        filters=[
            Filter(
                name="x",
                when="true",
                steps=[Step(queue="cards", timeout_seconds=10), Step(queue="retail")],
            )
        ],
        default_filter=Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout="callback",
    )
    e = engine("retail", "cards", rule_set=rs)
    agent(e, 0, "c", queues=("cards",))
    agent(e, 0, "r", queues=("retail",))
    o = offer_of(e.enqueue(0, "i", "voice", context={}))
    assert o.agent_id == "c"
    ev = e.reject(15, o.offer_id, "c")
    assert Escalated("i", "cards", "retail", 1, 0) in ev
    assert offers(ev) == [("i", "r")]


def test_seniors_language_step_and_priority() -> None:
    e = demo_engine()
    agent(e, 0, "en-carer", queues=("seniors",), skills={"seniors_care": 3}, languages=("en",))
    agent(e, 1, "zh-carer", queues=("seniors",), skills={"seniors_care": 2}, languages=("zh", "en"))
    ev = e.enqueue(2, "s", "voice", context={"customer.segments": ["senior"], "customer.language": "zh"})
    assert offers(ev) == [("s", "zh-carer")]
    snap = e.snapshot()["interactions"]["s"]
    assert (snap["filter"], snap["step"], snap["priority"]) == ("seniors-own-language", 0, 8)


# --------------------------------------------------------------------------- stats and explain


def test_stats_are_maintained_incrementally() -> None:
    e = engine(QueueConfig("retail", sl_threshold_seconds=20))
    agent(e, 0, "a")
    o1 = offer_of(e.enqueue(0, "i1", "voice", queue="retail"))
    e.enqueue(5, "i2", "voice", queue="retail")
    e.enqueue(6, "i3", "voice", queue="retail")
    rq = e.stats.queue("retail")
    assert rq.waiting == 2
    assert e.longest_wait("retail", 16) == 11  # i2 since t=5
    e.accept(10, o1.offer_id, "a")  # answered after 10 s: within SL
    o2 = offer_of(e.complete(30, "i1"))
    assert o2.interaction_id == "i2"
    o3 = offer_of(e.reject(31, o2.offer_id, "a"))  # i2 back in place; a takes i3 instead
    assert o3.interaction_id == "i3"
    assert (rq.waiting, e.longest_wait("retail", 40)) == (1, 35)  # i2 since t=5
    e.abandon(41, "i2")
    assert (rq.waiting, e.longest_wait("retail", 41)) == (0, 0)
    assert (rq.offered, rq.accepted, rq.rejected, rq.abandoned, rq.completed) == (3, 1, 1, 1, 1)
    assert rq.answered_within_sl == 1
    assert rq.abandoned_within_sl == 0
    assert rq.service_level() == 0.5  # 1 answered in SL of (1 answered + 1 abandoned late)
    assert rq.average_handle_seconds() == 20
    assert e.stats.agents_by_presence["available"] == 1
    assert e.stats.totals["offered"] == 3


def test_explain_ranks_eligible_agents_with_reasons() -> None:
    e = demo_engine(now=1000)
    agent(e, 1000, "m5", queues=("mortgages",), skills={"mortgages": 5})
    agent(e, 1050, "m1", queues=("mortgages",), skills={"mortgages": 1})  # below the step's level 3
    agent(e, 1100, "m3", queues=("mortgages",), skills={"mortgages": 3})
    out = e.explain({"interaction.topic": "mortgages", "channel": "voice"}, 1312)
    assert (out["filter"], out["step"], out["queue"]) == ("mortgages", 0, "mortgages")
    assert out["effective_priority"] == 3
    assert [a["agent_id"] for a in out["agents"]] == ["m5", "m3"]
    assert out["agents"][0]["reason"] == "longest_idle: idle 312 s, mortgages=5, capacity 100/100 free"
    assert e.snapshot()["now"] == 1100  # a dry-run changes nothing


# --------------------------------------------------------------------------- determinism and guards


def scripted_run() -> list[dict[str, Any]]:
    e = demo_engine()
    out: list[Event] = []
    for i in range(12):
        out += agent(
            e, i, f"a{i}", queues=DEMO_QUEUES[i % 3 : i % 3 + 3], skills={"mortgages": 1 + i % 5, "cards": 3}
        )
    topics = ["cards", "mortgages", "collections", "card_fraud", ""]
    for t in range(20, 220, 3):
        out += e.enqueue(
            t, f"i{t}", ["voice", "chat", "email"][t % 3], context={"interaction.topic": topics[t % 5]}
        )
        for ev in list(out[-4:]):
            if isinstance(ev, OfferCreated) and t % 2:
                out += e.accept(t, ev.offer_id, ev.agent_id)
        if t % 7 == 0:
            out += e.tick(t + 1)
        if t % 11 == 0:
            done = [i for i, v in e.snapshot()["interactions"].items() if v["status"] == "connected"]
            if done:
                out += e.complete(t + 2, done[0])
    return [{"kind": ev.kind, **asdict(ev)} for ev in out]


def test_same_commands_give_the_same_decisions() -> None:
    first, second = scripted_run(), scripted_run()
    assert first == second
    assert sum(1 for ev in first if ev["kind"] == "offer_created") > 20


def test_decisions_do_not_depend_on_hash_seed() -> None:
    code = (
        "import json; from tests.routing.test_engine import scripted_run; print(json.dumps(scripted_run()))"
    )
    runs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        runs.append(json.loads(res.stdout))
    assert runs[0] == runs[1] == json.loads(json.dumps(scripted_run()))


def test_time_cannot_go_backwards_and_bad_input_is_refused() -> None:
    e = engine()
    e.tick(10)
    with pytest.raises(ValueError, match="backwards"):
        e.tick(9)
    with pytest.raises(ValueError, match="unknown queue"):
        e.enqueue(10, "i", "voice", queue="nowhere")
    with pytest.raises(ValueError, match="unknown channel"):
        e.enqueue(10, "i", "fax", queue="retail")
    with pytest.raises(ValueError):
        e.enqueue(10, "i", "voice", queue="retail", target="skills.x >= 'a'")
    assert e.snapshot()["interactions"] == {}


class CountingEngine(Engine):
    """Counts constraint checks, to show a decision does not look at every agent."""

    checks = 0

    def _fits(self, it: Any, a: Any) -> bool:
        CountingEngine.checks += 1
        return super()._fits(it, a)


def test_a_decision_does_not_scan_all_agents_or_all_work() -> None:
    e = CountingEngine([QueueConfig(f"q{i}") for i in range(10)])
    for n in range(2000):
        e.add_agent(0, f"a{n}", queues=(f"q{n % 10}",), presence=AV, skills={"s": 1 + (n // 10) % 5})
    CountingEngine.checks = 0
    e.enqueue(1, "i", "voice", queue="q3", required_skills={"s": 5})
    assert CountingEngine.checks <= 5  # the 5th agent of q3 in idle order has s=5
    # Fill every agent, leave 1,000 waiting, then free one agent.
    for n in range(3000):
        e.enqueue(2, f"w{n}", "voice", queue=f"q{n % 10}")
    assert e.stats.queue("q0").waiting == 100
    busy = next(i for i, v in e.snapshot()["interactions"].items() if v["status"] == "offered")
    oid = e.snapshot()["interactions"][busy]["offer"]
    e.accept(3, oid, e.snapshot()["interactions"][busy]["offered_to"])
    CountingEngine.checks = 0
    e.complete(4, busy)
    assert CountingEngine.checks <= 3


# --------------------------------------------------------------------------- offer policy (issue #10)


def test_one_pending_offer_at_a_time_the_next_on_accept_reject_or_expiry() -> None:
    """The default policy: an agent going available with chats queued is offered one; the next
    comes when it is accepted, rejected or expires. Capacity still bounds the accepted work."""
    e = engine()
    agent(e, 0, "a", presence=Presence.OFFLINE)
    for i in range(5):
        e.enqueue(1, f"c{i}", "chat", queue="retail")
    assert offers(e.set_presence(2, "a", AV)) == [("c0", "a")]
    assert offers(e.tick(3)) == []  # free places (3 chats) but one offer pending: no more
    first = e.snapshot()["agents"]["a"]["offers"][0]
    assert offers(e.accept(4, first, "a")) == [("c1", "a")]
    second = e.snapshot()["agents"]["a"]["offers"][0]
    assert offers(e.reject(5, second, "a")) == [("c2", "a")]
    expired = e.tick(5 + 30)
    assert [type(ev) for ev in expired if isinstance(ev, OfferExpired | OfferCreated)] == [
        OfferExpired,
        OfferCreated,
    ]
    assert offers(expired) == [("c3", "a")]
    assert e.snapshot()["agents"]["a"]["presence"] == "available"  # busy with c0: not absent
    assert offers(e.accept(40, e.snapshot()["agents"]["a"]["offers"][0], "a")) == [("c4", "a")]
    assert offers(e.accept(41, e.snapshot()["agents"]["a"]["offers"][0], "a")) == []
    assert e.snapshot()["agents"]["a"]["work"] == ["c0", "c3", "c4"]  # chat maximum 3: full


def test_a_queue_set_to_offer_up_to_capacity_stacks_offers_and_can_be_changed_live() -> None:
    e = engine("retail", "cards")
    agent(e, 0, "a", queues=("retail", "cards"))
    assert offers(e.enqueue(1, "c0", "chat", queue="retail")) == [("c0", "a")]
    assert offers(e.enqueue(1, "k0", "chat", queue="cards")) == []  # one at a time (default)
    assert offers(e.update_queue(2, QueueConfig("cards", one_offer_at_a_time=False))) == [("k0", "a")]
    assert offers(e.enqueue(3, "k1", "chat", queue="cards")) == [("k1", "a")]
    assert offers(e.enqueue(3, "c1", "chat", queue="retail")) == []  # retail still waits its turn
    assert offers(e.enqueue(3, "v0", "voice", queue="cards")) == []  # voice stays exclusive


def test_a_break_asked_for_with_an_offer_pending_takes_effect_once_it_is_answered() -> None:
    e = engine()
    agent(e, 0, "a")
    o = offer_of(e.enqueue(1, "c0", "chat", queue="retail"))
    asked = e.set_presence(2, "a", Presence.BREAK, "lunch")
    assert not [ev for ev in asked if isinstance(ev, AgentStatusChanged)]  # not yet
    snap = e.snapshot()["agents"]["a"]
    assert (snap["presence"], snap["pending"]) == ("available", "break")
    assert offers(e.enqueue(3, "c1", "chat", queue="retail")) == []  # no new offer meanwhile
    answered = e.accept(4, o.offer_id, "a")
    assert [type(ev) for ev in answered] == [Assigned, AgentStatusChanged]
    assert AgentStatusChanged("a", "break", "lunch") in answered
    assert e.snapshot()["agents"]["a"]["pending"] is None


def test_a_break_asked_for_with_an_offer_pending_is_not_silence_when_it_expires() -> None:
    e = engine()
    agent(e, 0, "a")
    offer_of(e.enqueue(1, "c0", "chat", queue="retail"))
    e.set_presence(2, "a", Presence.BREAK, None)
    expired = e.tick(1 + 30)
    assert [type(ev) for ev in expired][:2] == [OfferExpired, AgentStatusChanged]
    assert AgentStatusChanged("a", "break", None) in expired
    assert not any(getattr(ev, "presence", None) == "not_responding" for ev in expired)
    assert offers(expired) == []  # on break now: c0 waits for someone else


def test_changing_ones_mind_before_the_offer_is_answered_drops_the_break() -> None:
    e = engine()
    agent(e, 0, "a")
    o = offer_of(e.enqueue(1, "c0", "chat", queue="retail"))
    e.set_presence(2, "a", Presence.BREAK, None)
    assert not [ev for ev in e.set_presence(3, "a", AV) if isinstance(ev, AgentStatusChanged)]
    answered = e.accept(4, o.offer_id, "a")
    assert not [ev for ev in answered if isinstance(ev, AgentStatusChanged)]
    assert e.snapshot()["agents"]["a"]["presence"] == "available"
