"""Random command sequences against the engine, with invariants checked after every step.

The oracle below is written independently of the engine's indexes: it recomputes eligibility,
capacity and ordering by brute force from ``snapshot()`` and from the events, so an index that
drifts from the truth (a stale bucket entry, a lost item, a double offer) fails here.

Warm transfers run as consults (``HostedEngine``): the sender keeps the parent until the child is
accepted. Checked after every step: while a consult is pending the parent is connected to the
sender and the child is never offered to them; parent and child are never both held (one agent
per customer); an accepted consult ended the parent, any other outcome left it with the sender.

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
    EngineConfig,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    QueueConfig,
    Transferred,
)
from routing.engine.hosted import ConsultEnded, HostedEngine
from workforce.models import Presence, SelectionStrategy

RATE = 0.5  # exact in binary, so keys compare exactly
CONSULT_WAIT = 30
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


# The queues' offer policies (new_engine): q0 offers one at a time, q1 and q2 up to capacity.
ONE_AT_A_TIME = {"q0": True, "q1": False, "q2": False}


def open_to_offers(it: dict[str, Any], a: dict[str, Any], besides: str | None = None) -> bool:
    """The offer policy: may the agent be offered ``it`` while holding its live offers (but
    ``besides``)? Never while a status it asked for waits for its offers to end."""
    if a["pending"]:
        return False
    held = [o for o in a["offers"] if o != besides]
    return not held or not ONE_AT_A_TIME.get(it["queue"], True)


def order_key(it: dict[str, Any]) -> tuple[float, float]:
    return (RATE * it["virtual_start"] - it["priority"], it["virtual_start"])


def new_engine() -> HostedEngine:
    return HostedEngine(
        [
            QueueConfig("q0"),
            QueueConfig(
                "q1",
                strategy=SelectionStrategy.BEST_PROFICIENCY,
                rank_skills=("s1",),
                one_offer_at_a_time=False,
            ),
            QueueConfig("q2", strategy=SelectionStrategy.LEAST_OCCUPIED, one_offer_at_a_time=False),
        ],
        config=EngineConfig(ageing_per_second=RATE),
        consult_wait_seconds=CONSULT_WAIT,
    )


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = new_engine()
        self.now = 0
        self.n_agents = 0
        self.n_items = 0
        self.log: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.events: list[Event] = []
        self.last: list[Event] = []
        self.declined: set[tuple[str, str]] = set()
        self.enqueued: set[str] = set()
        self.finished: dict[str, str] = {}
        self.consults: dict[str, tuple[str, str]] = {}  # child -> (parent, sender)
        self.consult_outcomes: dict[str, str] = {}  # child -> how it ended

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
            elif isinstance(ev, ConsultEnded):
                assert ev.child_id not in self.consult_outcomes, f"a consult ended twice: {ev}"
                self.consult_outcomes[ev.child_id] = ev.outcome
        self.snap = self.engine.snapshot()
        items = self.snap["interactions"]
        for ev in events:  # right after the command that ended a consult
            if isinstance(ev, ConsultEnded):
                parent, child = items[ev.parent_id], items[ev.child_id]
                if ev.outcome == "accepted":
                    assert parent["status"] == "completed", (ev, parent)
                    assert child["status"] in ("connected", "wrap_up", "completed"), (ev, child)
                elif ev.outcome == "parent_ended" or any(
                    e.kind in ("wrap_up_started", "completed")
                    and getattr(e, "interaction_id", None) == ev.parent_id
                    for e in events
                ):  # the sender ended the conversation in this very command
                    assert parent["status"] in ("wrap_up", "completed"), (ev, parent)
                    assert parent["agent"] in (ev.from_agent, None), (ev, parent)
                else:  # cancelled: the customer is still with the sender
                    assert parent["status"] == "connected" and parent["agent"] == ev.from_agent, (ev, parent)
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

    def in_consult(self, iid: str) -> bool:
        pending = {c for c in self.consults if c not in self.consult_outcomes}
        return iid in pending or any(self.consults[c][0] == iid for c in pending)

    @rule(n=pick, to_queue=st.sampled_from(QUEUES), m=st.one_of(st.none(), pick), d=dt)
    def transfer(self, n: int, to_queue: str, m: int | None, d: int) -> None:
        # The host hands consults on only through the consult itself (never Engine.transfer).
        iid = self.choose(
            [i for i in self.ids({"waiting", "offered", "connected"}) if not self.in_consult(i)], n
        )
        if iid is None:
            return
        to_agent = None if m is None else self.choose(sorted(self.snap["agents"]), m)
        if to_agent is not None:
            self.run("transfer", self.advance(d), iid, to_agent=to_agent)
        else:
            self.run("transfer", self.advance(d), iid, to_queue=to_queue)

    @rule(n=pick, to_queue=st.sampled_from(QUEUES), m=st.one_of(st.none(), pick), d=dt)
    def start_consult(self, n: int, to_queue: str, m: int | None, d: int) -> None:
        """A warm transfer of connected work, to a queue or a named agent (never the sender)."""
        parent = self.choose([i for i in self.ids({"connected"}) if not self.in_consult(i)], n)
        if parent is None:
            return
        p = self.snap["interactions"][parent]
        sender = p["agent"]
        others = [a for a in sorted(self.snap["agents"]) if a != sender]
        to_agent = None if m is None or not others else self.choose(others, m)
        self.n_items += 1
        child = f"c{self.n_items}"
        self.enqueued.add(child)
        self.consults[child] = (parent, sender)
        self.declined.add((child, sender))  # the sender is never offered the child
        self.run(
            "start_consult",
            self.advance(d),
            parent,
            child,
            p["channel"],
            sender=sender,
            queue=to_queue,
            priority=p["priority"],
            virtual_start=p["virtual_start"],
            to_agent=to_agent,
        )

    @rule(n=pick, to_queue=st.sampled_from(QUEUES), m=st.one_of(st.none(), pick), d=dt)
    def accept_then_consult(self, n: int, to_queue: str, m: int | None, d: int) -> None:
        """An agent answers and at once starts a warm transfer (makes consults common enough)."""
        offers = [(o, a) for o, a in self.live_offers() if not self.in_consult(self.offered_item(o))]
        if offers:
            oid, aid = offers[n % len(offers)]
            iid = self.offered_item(oid)
            self.run("accept", self.advance(d), oid, aid)
            if self.snap["interactions"][iid]["status"] == "connected":
                free = [i for i in self.ids({"connected"}) if not self.in_consult(i)]
                self.start_consult(free.index(iid), to_queue, m, 0)

    def offered_item(self, offer_id: str) -> str:
        return next(i for i, v in self.snap["interactions"].items() if v["offer"] == offer_id)

    def consult_offers(self) -> list[tuple[str, str]]:
        items = self.snap["interactions"]
        return [
            (items[c]["offer"], items[c]["offered_to"])
            for c in sorted(self.consults)
            if c not in self.consult_outcomes and items[c]["offer"]
        ]

    @rule(n=pick, d=dt, accept=st.booleans())
    def answer_consult(self, n: int, d: int, accept: bool) -> None:
        """The target answers a consult offer (consults are rare among random offers otherwise)."""
        offers = self.consult_offers()
        if offers:
            oid, aid = offers[n % len(offers)]
            self.run("accept" if accept else "reject", self.advance(d), oid, aid)

    @rule(n=pick, d=dt)
    def cancel_consult(self, n: int, d: int) -> None:
        pending = sorted(c for c in self.consults if c not in self.consult_outcomes)
        child = self.choose(pending, n)
        if child is not None:
            parent, sender = self.consults[child]
            self.run("cancel_consult", self.advance(d), parent, sender)

    # -- invariants

    @invariant()
    def a_consult_never_drops_or_doubles_the_customer(self) -> None:
        items = self.snap["interactions"]
        for child, (parent, sender) in self.consults.items():
            p, c = items[parent], items[child]
            held = [x for x in (p, c) if x["status"] in ("connected", "wrap_up")]
            assert len(held) <= 1, ("parent and child both held", parent, p, child, c)
            outcome = self.consult_outcomes.get(child)
            if outcome is None:
                assert self.engine.consult_child(parent) == child
                assert p["status"] == "connected" and p["agent"] == sender, (parent, p)
                assert c["status"] in ("waiting", "offered") and c["offered_to"] != sender, (child, c)
            elif outcome == "accepted":
                assert p["status"] == "completed", (parent, p)
            else:
                assert c["status"] == "abandoned", (child, c)

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
                if a["presence"] == "available" and can_take(a, it["channel"]) and open_to_offers(it, a):
                    assert not constraints_ok(it, aid, a), f"{iid} waits while {aid} could take it: {it} {a}"

    @invariant()
    def one_pending_offer_at_a_time(self) -> None:
        """A one-at-a-time queue's offer goes only to an agent holding no other (so it is the
        agent's oldest live offer); a status asked for waits only while offers are live."""
        items = self.snap["interactions"]
        by_offer = {it["offer"]: it for it in items.values() if it["offer"]}
        for aid, a in self.snap["agents"].items():
            held = sorted(a["offers"], key=lambda o: int(o.split("-")[1]))
            for n, offer_id in enumerate(held):
                if ONE_AT_A_TIME.get(by_offer[offer_id]["queue"], True):
                    assert n == 0, f"{aid} was offered {offer_id} while holding {held[:n]}"
            assert not a["pending"] or a["offers"], f"{aid} waits for offers it does not hold"

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
                a = agents[ev.agent_id]
                if constraints_ok(y, ev.agent_id, a) and open_to_offers(y, a, besides=ev.offer_id):
                    assert not order_key(y) < kx, f"{ev} skipped better {yid} {y} (x={x})"

    def teardown(self) -> None:
        # Determinism: replaying the same commands gives exactly the same decisions.
        if not self.log:
            return
        replay = new_engine()
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
