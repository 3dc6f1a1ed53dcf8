"""The dry-run's explanation from the engine (routing.engine.explain): the filters tried and steps
passed over, the eligible agents ranked by the engine's own keys, why each other agent is not
eligible, and a draft rule set tried without publishing it. Pure: no database."""

from __future__ import annotations

from demo.rules import DEFAULT_RULE_SET, DEMO_QUEUES
from routing.engine import Engine, QueueConfig
from routing.rules import Filter, RuleSet, Step
from tests.helpers import agent
from workforce.models import Presence

SENIOR_CANTONESE = {
    "channel": "voice",
    "customer.tier": "standard",
    "customer.segments": ["senior"],
    "customer.language": "yue",
}


def demo_engine(now: float = 0.0) -> Engine:
    return Engine([QueueConfig(q) for q in DEMO_QUEUES], rule_set=DEFAULT_RULE_SET, now=now)


def test_trace_names_each_filter_tried_and_each_step_passed_over() -> None:
    e = demo_engine(now=100)
    agent(e, 100, "mei", queues=("seniors",), skills={"seniors_care": 2}, languages=("en",))
    # Nobody speaks Cantonese: the first seniors step (skip if unavailable) is skipped.
    out = e.explain(SENIOR_CANTONESE, 130)
    trace = [(t["kind"], t["name"], t["outcome"]) for t in out["trace"]]
    assert trace == [
        ("filter", "private-banking", "no match"),
        ("filter", "seniors-own-language", "matched"),
        ("step", "seniors", "skipped"),
        ("step", "seniors", "active"),
    ]
    assert "nobody" in out["trace"][2]["detail"]
    assert (out["filter"], out["step"], out["queue"]) == ("seniors-own-language", 1, "seniors")
    assert [a["agent_id"] for a in out["agents"]] == ["mei"]


def test_others_say_why_they_are_not_eligible() -> None:
    e = demo_engine(now=0)
    agent(e, 0, "fluent", queues=("seniors",), skills={"seniors_care": 1}, languages=("yue", "en"))
    agent(e, 1, "no-skill", queues=("seniors",), skills={}, languages=("yue",))
    agent(e, 2, "english", queues=("seniors",), skills={"seniors_care": 3}, languages=("en",))
    agent(e, 3, "lunch", queues=("seniors",), skills={"seniors_care": 3}, presence=Presence.BREAK)
    agent(e, 4, "retail-only", queues=("retail",), skills={"seniors_care": 3}, languages=("yue",))
    out = e.explain(SENIOR_CANTONESE, 10)
    assert (out["filter"], out["step"]) == ("seniors-own-language", 0)
    assert [a["agent_id"] for a in out["agents"]] == ["fluent"]
    why = {o["agent_id"]: o["reason"] for o in out["others"]}
    assert why == {
        "no-skill": "skill too low: seniors_care=0, needs 1",
        "english": "does not satisfy the step's target expression",
        "lunch": "break",
    }  # an agent outside the queue is not listed at all
    assert out["others_total"] == 3 and out["eligible_total"] == 1


def test_busy_agents_are_explained_by_capacity() -> None:
    e = Engine([QueueConfig("retail")], rule_set=_single("retail"), now=0)
    agent(e, 0, "caller", channel_max={"voice": 1, "chat": 2})
    e.enqueue(1, "call", "voice", queue="retail")  # offered to "caller"
    out = e.explain({"channel": "chat"}, 2)
    assert out["agents"] == []
    assert out["others"] == [{"agent_id": "caller", "reason": "on a call"}]


def _single(queue: str, version: int = 1, *, name: str = "all") -> RuleSet:
    return RuleSet(
        version=version,
        filters=[Filter(name=name, when='channel != ""', steps=[Step(queue=queue)])],
        default_filter=Filter(name="default", steps=[Step(queue=queue)]),
        on_final_timeout="callback",
    )


def test_a_draft_rule_set_is_explained_without_being_published() -> None:
    e = Engine([QueueConfig("retail"), QueueConfig("cards")], rule_set=_single("retail"), now=0)
    agent(e, 0, "c", queues=("cards",))
    draft = _single("cards", version=2, name="cards-now")
    out = e.explain({"channel": "chat"}, 5, rule_set=draft)
    assert (out["rule_set_version"], out["filter"], out["queue"]) == (2, "cards-now", "cards")
    assert [a["agent_id"] for a in out["agents"]] == ["c"]
    live = e.explain({"channel": "chat"}, 5)  # the live version is untouched
    assert (live["rule_set_version"], live["queue"]) == (1, "retail")
