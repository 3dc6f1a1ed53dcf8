"""Random command sequences against the engine, with invariants checked after every step.

The oracle below is written independently of the engine's indexes: it recomputes eligibility,
capacity and ordering by brute force from ``snapshot()`` and from the events, so an index that
drifts from the truth (a stale bucket entry, a lost item, a double offer) fails here.

Anti-starvation is checked as an ordering property: whenever an interaction X is offered to agent
B, no interaction Y that B could equally take (same channel, B eligible) may be left waiting with a
better ageing key ``r * virtual_start - priority``. Since a new arrival's key is ``r * now - p``,
an item waiting longer than ``(p_new - p_old) / r`` always has the better key — so low-priority
work is served before newly arriving high-priority work once it has waited that long.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from routing.engine import (
    CHANNELS,
    Engine,
    EngineConfig,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    QueueConfig,
    Transferred,
)
from routing.models import Presence, SelectionStrategy

RATE = 0.5  # exact in binary, so keys compare exactly
COST = {"voice": 100, "chat": 25, "ticket": 10, "email": 10}
QUEUES = ("q0", "q1", "q2")
SKILLS = ("s0", "s1")
LIVE = {"waiting", "offered", "connected", "wrap_up"}
ALL_STATES = LIVE | {"completed", "abandoned"}

pick = st.integers(0, 10_000)
dt = st.integers(0, 12)
presences = st.sampled_from([Presence.AVAILABLE] * 4 + [Presence.BREAK, Presence.OFFLINE])
skill_levels = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=2)
queue_sets = st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True)
channel_maxes = st.fixed_dictionaries(
    {
        "voice": st.integers(0, 1),
        "chat": st.integers(0, 3),
        "ticket": st.integers(0, 5),
        "email": st.integers(0, 5),
    }
)


# --------------------------------------------------------------------------- independent oracle


def can_take(a: dict[str, Any], channel: str) -> bool:
    counts = a["counts"]
    if a["used"] + COST[channel] > a["capacity"] or counts[channel] >= a["channel_max"].get(channel, 0):
        return False
    return not (counts["voice"] or (channel == "voice" and a["used"]))


def constraints_ok(it: dict[str, Any], aid: str, a: dict[str, Any]) -> bool:
    """May agent ``aid`` take interaction ``it`` (ignoring presence and capacity)?"""
    if aid in it["declined"]:
        return False
    if it["preferred_required"]:
        if aid != it["preferred"]:
            return False
    elif it["queue"] not in a["queues"] and aid != it["preferred"]:
        return False
    return all(a["skills"].get(s, 0) >= lvl for s, lvl in it["required_skills"].items())


def order_key(it: dict[str, Any]) -> tuple[float, float]:
    return (RATE * it["virtual_start"] - it["priority"], it["virtual_start"])


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(
            [
                QueueConfig("q0"),
                QueueConfig("q1", strategy=SelectionStrategy.BEST_PROFICIENCY, rank_skills=("s1",)),
                QueueConfig("q2", strategy=SelectionStrategy.LEAST_OCCUPIED),
            ],
            config=EngineConfig(ageing_per_second=RATE),
        )
        self.now = 0
        self.n_agents = 0
        self.n_items = 0
        self.log: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.events: list[Event] = []
        self.last: list[Event] = []
        self.declined: set[tuple[str, str]] = set()
        self.enqueued: set[str] = set()
        self.finished: dict[str, str] = {}

    # -- plumbing

    def run(self, name: str, *args: Any, **kw: Any) -> list[Event]:
        self.log.append((name, args, kw))
        events = getattr(self.engine, name)(*args, **kw)
        self.last = events
        self.events += events
        for ev in events:  # in order: a decline recorded earlier in the list already applies
            if isinstance(ev, OfferCreated):
                assert (ev.interaction_id, ev.agent_id) not in self.declined, f"re-offered: {ev}"
            elif isinstance(ev, OfferRejected | OfferExpired):
                self.declined.add((ev.interaction_id, ev.agent_id))
            elif isinstance(ev, Transferred) and ev.from_agent is not None:
                self.declined.add((ev.interaction_id, ev.from_agent))
        self.snap = self.engine.snapshot()
        return events

    def advance(self, d: int) -> int:
        self.now += d
        return self.now

    def ids(self, statuses: set[str]) -> list[str]:
        return [i for i, v in self.snap["interactions"].items() if v["status"] in statuses]

    def choose(self, options: list[str], n: int) -> str | None:
        return options[n % len(options)] if options else None

    # -- commands

    @initialize(n=st.integers(2, 4), data=st.data())
    def agents(self, n: int, data: st.DataObject) -> None:
        self.snap = self.engine.snapshot()
        for _ in range(n):
            self.add_agent(
                data.draw(queue_sets),
                data.draw(skill_levels),
                data.draw(channel_maxes),
                100,
                data.draw(presences),
            )

    @rule(
        queues=queue_sets,
        skills=skill_levels,
        cmax=channel_maxes,
        capacity=st.sampled_from([100, 150]),
        presence=presences,
    )
    def add_agent(
        self,
        queues: list[str],
        skills: dict[str, int],
        cmax: dict[str, int],
        capacity: int,
        presence: Presence,
    ) -> None:
        if self.n_agents >= 6:
            return
        self.n_agents += 1
        self.run(
            "add_agent",
            self.now,
            f"a{self.n_agents}",
            queues=queues,
            skills=skills,
            channel_max=cmax,
            capacity_units=capacity,
            presence=presence,
        )

    @rule(n=pick, presence=st.sampled_from([*Presence, Presence.AVAILABLE, Presence.AVAILABLE]), d=dt)
    def set_presence(self, n: int, presence: Presence, d: int) -> None:
        aid = self.choose(sorted(self.snap["agents"]), n)
        if aid is not None:
            self.run("set_presence", self.advance(d), aid, presence)

    @rule(n=pick, skills=skill_levels, queues=queue_sets, d=dt)
    def update_agent(self, n: int, skills: dict[str, int], queues: list[str], d: int) -> None:
        aid = self.choose(sorted(self.snap["agents"]), n)
        if aid is not None:
            self.run("update_agent", self.advance(d), aid, skills=skills, queues=queues)

    @rule(
        channel=st.sampled_from(["voice", "voice", *CHANNELS]),
        queue=st.sampled_from(QUEUES),
        priority=st.integers(0, 6),
        earlier=st.sampled_from([0, 0, 0, 5, 40]),
        skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 4), max_size=1),
        preferred=st.one_of(st.none(), pick),
        required=st.booleans(),
        d=dt,
    )
    def enqueue(
        self,
        channel: str,
        queue: str,
        priority: int,
        earlier: int,
        skills: dict[str, int],
        preferred: int | None,
        required: bool,
        d: int,
    ) -> None:
        self.n_items += 1
        iid = f"i{self.n_items}"
        now = self.advance(d)
        pref = None if preferred is None else self.choose(sorted(self.snap["agents"]), preferred)
        self.enqueued.add(iid)
        self.run(
            "enqueue",
            now,
            iid,
            channel,
            queue=queue,
            priority=priority,
            virtual_start=max(0, now - earlier),
            required_skills=skills,
            preferred_agent=pref,
            preferred_required=required and pref is not None,
        )

    @rule(
        batch=st.lists(
            st.tuples(
                st.sampled_from(["voice", "ticket"]),
                st.sampled_from(QUEUES),
                st.integers(0, 6),
                st.integers(0, 60),
            ),
            min_size=2,
            max_size=4,
        ),
        d=dt,
    )
    def enqueue_burst(self, batch: list[tuple[str, str, int, int]], d: int) -> None:
        """Several arrivals at once with mixed priorities and ages: contention for the ordering."""
        now = self.advance(d)
        for channel, queue, priority, earlier in batch:
            self.n_items += 1
            iid = f"i{self.n_items}"
            self.enqueued.add(iid)
            vs = max(0, now - earlier)
            self.run("enqueue", now, iid, channel, queue=queue, priority=priority, virtual_start=vs)

    def live_offers(self) -> list[tuple[str, str]]:
        return [(v["offer"], v["offered_to"]) for v in self.snap["interactions"].values() if v["offer"]]

    @rule(n=pick, d=st.integers(0, 25))
    def accept(self, n: int, d: int) -> None:
        offers = self.live_offers()
        if offers:
            oid, aid = offers[n % len(offers)]
            self.run("accept", self.advance(d), oid, aid)

    @rule(n=pick, d=dt)
    def reject(self, n: int, d: int) -> None:
        offers = self.live_offers()
        if offers:
            oid, aid = offers[n % len(offers)]
            self.run("reject", self.advance(d), oid, aid)

    @rule(n=pick, d=dt)
    def accept_by_the_wrong_agent(self, n: int, d: int) -> None:
        offers = self.live_offers()
        others = sorted(self.snap["agents"])
        if offers and len(others) > 1:
            oid, aid = offers[n % len(offers)]
            wrong = next(a for a in others if a != aid)
            before = self.snap["interactions"]
            events = self.run("accept", self.advance(d), oid, wrong)
            assert all(ev.kind != "assigned" for ev in events)
            assert all(
                v["agent"] != wrong or before[i]["agent"] == wrong
                for i, v in self.snap["interactions"].items()
            )

    @rule(d=st.integers(0, 60))
    def tick(self, d: int) -> None:
        self.run("tick", self.advance(d))

    @rule(n=pick, d=dt)
    def wrap_up(self, n: int, d: int) -> None:
        iid = self.choose(self.ids({"connected"}), n)
        if iid is not None:
            self.run("wrap_up", self.advance(d), iid)

    @rule(n=pick, d=dt)
    def complete(self, n: int, d: int) -> None:
        iid = self.choose(self.ids({"connected", "wrap_up"}), n)
        if iid is not None:
            self.run("complete", self.advance(d), iid)

    @rule(n=pick, d=dt)
    def abandon(self, n: int, d: int) -> None:
        iid = self.choose(self.ids({"waiting", "offered"}), n)
        if iid is not None:
            self.run("abandon", self.advance(d), iid)

    @rule(n=pick, to_queue=st.sampled_from(QUEUES), m=st.one_of(st.none(), pick), d=dt)
    def transfer(self, n: int, to_queue: str, m: int | None, d: int) -> None:
        iid = self.choose(self.ids({"waiting", "offered", "connected"}), n)
        if iid is None:
            return
        to_agent = None if m is None else self.choose(sorted(self.snap["agents"]), m)
        if to_agent is not None:
            self.run("transfer", self.advance(d), iid, to_agent=to_agent)
        else:
            self.run("transfer", self.advance(d), iid, to_queue=to_queue)

    # -- invariants

    @invariant()
    def at_most_one_agent_per_interaction(self) -> None:
        holders: dict[str, list[str]] = {}
        for aid, a in self.snap["agents"].items():
            for oid in a["offers"]:
                iid = next(i for i, v in self.snap["interactions"].items() if v["offer"] == oid)
                holders.setdefault(iid, []).append(aid)
            for iid in a["work"]:
                holders.setdefault(iid, []).append(aid)
        for iid, v in self.snap["interactions"].items():
            held = holders.get(iid, [])
            if v["status"] == "offered":
                assert held == [v["offered_to"]] and v["agent"] is None, (iid, v, held)
            elif v["status"] in ("connected", "wrap_up"):
                assert held == [v["agent"]] and v["offer"] is None, (iid, v, held)
            else:
                assert held == [] and v["offer"] is None, (iid, v, held)

    @invariant()
    def capacity_is_never_exceeded(self) -> None:
        for aid, a in self.snap["agents"].items():
            mine = [
                v
                for v in self.snap["interactions"].values()
                if v["offered_to"] == aid or (v["agent"] == aid and v["status"] in ("connected", "wrap_up"))
            ]
            used = sum(COST[v["channel"]] for v in mine)
            counts = {c: sum(1 for v in mine if v["channel"] == c) for c in CHANNELS}
            assert used == a["used"] and counts == a["counts"], (aid, a, mine)
            assert used <= a["capacity"], (aid, a)
            for c in CHANNELS:
                assert counts[c] <= a["channel_max"].get(c, 0), (aid, c, a)
            assert not (counts["voice"] and len(mine) > 1), ("voice is exclusive", aid, mine)

    @invariant()
    def nothing_is_lost(self) -> None:
        items = self.snap["interactions"]
        assert set(items) == self.enqueued
        for iid, v in items.items():
            assert v["status"] in ALL_STATES
            if iid in self.finished:
                assert v["status"] == self.finished[iid], "a finished interaction came back"
            elif v["status"] not in LIVE:
                self.finished[iid] = v["status"]
        waiting_by_queue = {q: 0 for q in QUEUES}
        for v in items.values():
            if v["status"] == "waiting":
                waiting_by_queue[v["queue"]] += 1
        assert {q: self.engine.stats.queue(q).waiting for q in QUEUES} == waiting_by_queue
        listed = sorted(i for ids in self.snap["waiting"].values() for i in ids)
        assert listed == sorted(i for i, v in items.items() if v["status"] == "waiting")

    @invariant()
    def no_idle_agent_left_beside_work_it_could_take(self) -> None:
        for iid, it in self.snap["interactions"].items():
            if it["status"] != "waiting":
                continue
            for aid, a in self.snap["agents"].items():
                if a["presence"] == "available" and can_take(a, it["channel"]):
                    assert not constraints_ok(it, aid, a), f"{iid} waits while {aid} could take it: {it} {a}"

    @invariant()
    def offers_respect_the_ageing_order(self) -> None:
        items, agents = self.snap["interactions"], self.snap["agents"]
        for ev in self.last:
            if not isinstance(ev, OfferCreated):
                continue
            x = items[ev.interaction_id]
            kx = (RATE * x["virtual_start"] - x["priority"], x["virtual_start"])
            for yid, y in items.items():
                if y["status"] != "waiting" or y["channel"] != x["channel"]:
                    continue
                if constraints_ok(y, ev.agent_id, agents[ev.agent_id]):
                    assert not order_key(y) < kx, f"{ev} skipped better {yid} {y} (x={x})"

    def teardown(self) -> None:
        # Determinism: replaying the same commands gives exactly the same decisions.
        if not self.log:
            return
        replay = Engine(
            [
                QueueConfig("q0"),
                QueueConfig("q1", strategy=SelectionStrategy.BEST_PROFICIENCY, rank_skills=("s1",)),
                QueueConfig("q2", strategy=SelectionStrategy.LEAST_OCCUPIED),
            ],
            config=EngineConfig(ageing_per_second=RATE),
        )
        again: list[Event] = []
        for name, args, kw in self.log:
            again += getattr(replay, name)(*args, **kw)
        assert [asdict(e) for e in again] == [asdict(e) for e in self.events]
        assert replay.snapshot() == self.engine.snapshot()


EngineMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase
