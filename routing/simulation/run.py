"""The what-if simulator (issue #13 item 6): a discrete-event simulation that drives the real
routing engine (``routing.engine.hosted.HostedEngine``, the in-memory engine the host wraps),
with the simulated clock injected into every command.

Its own event loop (a heap of timed events) rather than simpy: the model is a handful of event
kinds and the loop is the hot path of a 100,000-contact day.

* **Traffic** is drawn up front from the scenario's seed (:func:`draw_traffic`): arrival times (a
  Poisson process with a constant rate per interval), the class of each contact, its patience, its
  handle times and the uniform draws the resolution model uses. Routing never consumes random
  numbers, so two rule sets or rosters run on exactly the same customers (common random numbers).
* **Engine**: a contact is ``enqueue``\\d with its rule context (the rule set routes it, escalates
  it as it ages) or, with no rule set, to its class's queue. Offers are accepted
  ``answer_seconds`` later; the talk ends after the handle time (exponential, mean by channel and
  tier), then ``wrap_up``/``complete``. A customer whose patience runs out while waiting or being
  offered ``abandon``\\s. Shifts start and end with ``set_presence``. The engine's own timers (rule
  step escalations) are run by ``tick`` exactly when they fall due (``next_timer_due``).
* **Resolution model** (optional): an agent below ``transfer_below`` in the skill the contact needs
  transfers it (``end_leg_for_transfer`` + a child leg queued with that skill required and the
  parent's place kept, as the host's blind transfer does); otherwise the contact is resolved with
  the probability for the agent's proficiency. Unresolved contacts do not call back in the run.

Definitions (stated so the figures can be compared):

* service level: contacts answered within the channel's threshold / contacts offered (arrived in
  the measured window); abandoned and diverted contacts count as not answered in time.
* ASA: mean wait of answered contacts (zero waits included) until the first answer.
  ``mean_wait_seconds``: mean time waiting of every offered contact (abandoned ones until they
  hung up), which is what Erlang A's formula gives.
* abandonment: abandoned before a first answer / offered.
* occupancy: agent-time with at least one interaction assigned / agent-time on shift, in the
  traffic horizon.
* first-contact resolution: resolved / answered (a transferred contact counts if the agent it
  was transferred to resolved it); transfers: contacts transferred at least once.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from routing.engine.hosted import HostedEngine
from routing.engine.state import EngineConfig, QueueConfig
from routing.rules import RuleSet
from routing.simulation.scenario import AgentGroup, Scenario, SimQueue, Traffic
from workforce.models import Presence

Progress = Callable[[float], None]

# Event kinds on the heap (ints: compared only when time and sequence tie, which they never do).
_ACCEPT, _END, _DONE, _ABANDON, _SHIFT_ON, _SHIFT_OFF, _TICK = range(7)


@dataclass(frozen=True, slots=True)
class Contact:
    arrival: float
    cls: int
    patience: float  # seconds (inf: never abandons)
    handle: float  # first leg, seconds
    handle2: float  # the leg after a transfer
    patience2: float  # patience after a transfer, on hold again
    u: float  # resolution draws, first leg and after a transfer
    u2: float


def _by_channel_tier(table: Mapping[str, float], channel: str, tier: str) -> float | None:
    value = table.get(f"{channel}/{tier}")
    return table.get(channel) if value is None else value


def draw_traffic(traffic: Traffic, seed: int) -> list[Contact]:
    """Every contact of the run, in arrival order, from ``seed`` alone."""
    rng = random.Random(seed)
    expo = rng.expovariate
    uniform = rng.random
    shares = list(accumulate(c.share for c in traffic.classes))
    own = [c.volumes or [] for c in traffic.classes] if traffic.classes[0].volumes is not None else None
    means_handle: list[float] = []
    means_patience: list[float] = []
    for c in traffic.classes:
        means_handle.append(_by_channel_tier(traffic.handle_seconds, c.channel, c.tier) or 0.0)
        means_patience.append(_by_channel_tier(traffic.patience_seconds, c.channel, c.tier) or math.inf)
    length = traffic.interval_minutes * 60.0
    contacts: list[Contact] = []
    last = len(shares) - 1
    for i, volume in enumerate(traffic.volumes):
        if volume <= 0:
            continue
        # Each class's own profile (a forecast per queue and channel) or the fixed shares.
        weights = list(accumulate(v[i] for v in own)) if own is not None else shares
        total_weight = weights[-1]
        rate = volume / length
        start, end = i * length, (i + 1) * length
        t = start + expo(rate)
        while t < end:  # memoryless: restarting at each interval boundary is exact
            k = min(bisect_right(weights, uniform() * total_weight), last)
            mp = means_patience[k]
            mh = means_handle[k]
            contacts.append(
                Contact(
                    arrival=t,
                    cls=k,
                    patience=mp * expo(1.0) if mp != math.inf else math.inf,
                    handle=mh * expo(1.0),
                    handle2=mh * expo(1.0),
                    patience2=mp * expo(1.0) if mp != math.inf else math.inf,
                    u=uniform(),
                    u2=uniform(),
                )
            )
            t += expo(rate)
    return contacts


# ------------------------------------------------------------------------------------ results


@dataclass
class Tally:
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    diverted: int = 0
    wait_answered: float = 0.0
    wait_all: float = 0.0
    resolved: int = 0
    transferred: int = 0

    def figures(self) -> dict[str, float | int | None]:
        o, a = self.offered, self.answered
        return {
            "offered": o,
            "answered": a,
            "abandoned": self.abandoned,
            "diverted": self.diverted,
            "service_level": self.answered_in_sl / o if o else None,
            "asa_seconds": self.wait_answered / a if a else None,
            "mean_wait_seconds": self.wait_all / o if o else None,
            "abandon_rate": self.abandoned / o if o else None,
            "transfers": self.transferred,
            "transfer_rate": self.transferred / a if a else None,
            "resolved": self.resolved,
            "first_contact_resolution": self.resolved / a if a else None,
        }


@dataclass
class Result:
    contacts: int
    overall: dict[str, Any]
    by_tier: dict[str, dict[str, Any]]
    by_channel: dict[str, dict[str, Any]]
    by_queue: dict[str, dict[str, Any]]  # the queue that answered (or lost) the contact first
    by_interval: list[dict[str, Any]]
    occupancy: float | None
    agent_occupancy_spread: float | None  # max - min occupancy of agents on shift (fairness)
    escalations: int
    simulated_seconds: float
    engine_commands: int
    resolution_model: bool
    # Each contact's wait until its first answer (None: never answered), when asked for.
    waits: list[float | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts,
            "overall": {**self.overall, "occupancy": self.occupancy},
            "agent_occupancy_spread": self.agent_occupancy_spread,
            "by_tier": self.by_tier,
            "by_channel": self.by_channel,
            "by_queue": self.by_queue,
            "by_interval": self.by_interval,
            "escalations": self.escalations,
            "simulated_seconds": self.simulated_seconds,
            "engine_commands": self.engine_commands,
            "resolution_model": self.resolution_model,
        }


# ------------------------------------------------------------------------------------ the run


def queue_configs(queues: Iterable[SimQueue]) -> list[QueueConfig]:
    """As the host builds them (routing.host.floor.queue_config): rank on the queue's skills."""
    return [
        QueueConfig(
            name=q.name,
            strategy=q.strategy,
            sl_threshold_seconds=q.sl_threshold_seconds,
            rank_skills=tuple(sorted(q.required_skills)),
            one_offer_at_a_time=q.one_offer_at_a_time,
        )
        for q in queues
    ]


def _serves(group: AgentGroup, queues: Iterable[SimQueue]) -> tuple[str, ...]:
    """Skill membership plus the group's explicit queues (routing.host.floor.agent_fields)."""
    by_skill = {
        q.name
        for q in queues
        if q.required_skills and all(group.skills.get(s, 0) >= lvl for s, lvl in q.required_skills.items())
    }
    return tuple(sorted(by_skill | set(group.queues)))


def agent_names(group: AgentGroup) -> list[str]:
    return [group.name if group.count == 1 else f"{group.name}-{n + 1}" for n in range(group.count)]


def simulate(
    scenario: Scenario,
    rule_set: RuleSet | None,
    *,
    contacts: list[Contact] | None = None,
    progress: Progress | None = None,
    progress_every: float = 1800.0,
    record_waits: bool = False,
) -> Result:
    """Run ``scenario`` routed by ``rule_set`` (None: every class to its own ``queue``)."""
    traffic = scenario.traffic
    classes = traffic.classes
    if rule_set is None and any(c.queue is None for c in classes):
        raise ValueError("traffic.classes: without a rule set every class needs a queue")
    if contacts is None:
        contacts = draw_traffic(traffic, scenario.seed)
    base = scenario.start_epoch
    horizon = traffic.horizon_seconds
    stop_at = horizon + scenario.drain_seconds
    warmup = scenario.warmup_seconds
    resolution = scenario.resolution

    engine = HostedEngine(queue_configs(scenario.queues), config=EngineConfig(), rule_set=rule_set, now=base)
    commands = 0

    # ---- agents
    agents: dict[str, AgentGroup] = {}
    heap: list[tuple[float, int, int, Any]] = []
    seq = 0
    for group in scenario.roster:
        serves = _serves(group, scenario.queues)
        start = group.shift_start_minutes * 60.0
        end = group.shift_end_minutes * 60.0 if group.shift_end_minutes is not None else math.inf
        for name in agent_names(group):
            if name in agents:
                raise ValueError(f"roster: agent name {name!r} appears twice")
            agents[name] = group
            engine.add_agent(
                base,
                name,
                skills=group.skills,
                languages=group.languages,
                teams=group.teams,
                capacity_units=group.capacity_units,
                channel_max=group.channel_max,
                presence=Presence.OFFLINE,
                queues=serves,
            )
            commands += 1
            seq += 1
            heap.append((start, seq, _SHIFT_ON, name))
            if end < stop_at:
                seq += 1
                heap.append((end, seq, _SHIFT_OFF, name))
    heapq.heapify(heap)

    # ---- per-class constants
    ctx_of: list[dict[str, Any]] = []
    for tc in classes:
        ctx_of.append(
            {
                "direction": "inbound",
                "customer.id": "",
                "customer.tier": tc.tier,
                "customer.language": tc.language,
                "customer.segments": list(tc.segments),
                "customer.relationship_manager": tc.relationship_manager,
                "customer.last_agent": "",
                "customer.do_not_contact": False,
                "customer.vulnerable": "vulnerable" in tc.segments,
                "interaction.priority": tc.priority,
                "interaction.topic": tc.topic,
                "interaction.intent": "",
            }
        )
    sl_of = [traffic.sl_seconds.get(tc.channel, 20.0) for tc in classes]
    wrap_of = [traffic.wrap_seconds.get(tc.channel, 0.0) for tc in classes]

    # ---- contact state (by index; interaction ids are "c{index}", a transfer's child "c{index}t")
    n = len(contacts)
    answered_at = [-1.0] * n  # first answer (absolute sim seconds)
    first_queue: list[str | None] = [None] * n
    queue_now: list[str] = [""] * n
    outcome = [0] * n  # 0 open, 1 answered, 2 abandoned, 3 diverted
    ended_wait = [0.0] * n  # for abandoned: time waited
    transferred = [False] * n
    resolved = [False] * n
    holder: dict[str, str] = {}  # live interaction id -> agent
    answered_children: set[str] = set()  # transfer legs that reached an agent
    # agent occupancy: busy count, busy since, busy seconds within the horizon, shift seconds
    busy_count = dict.fromkeys(agents, 0)
    busy_since = dict.fromkeys(agents, 0.0)
    busy_total = dict.fromkeys(agents, 0.0)
    shift_total = dict.fromkeys(agents, 0.0)
    on_since: dict[str, float] = {}
    escalations = 0

    def busy_add(agent: str, now: float) -> None:
        if busy_count[agent] == 0:
            busy_since[agent] = now
        busy_count[agent] += 1

    def busy_remove(agent: str, now: float) -> None:
        busy_count[agent] -= 1
        if busy_count[agent] == 0:
            start = busy_since[agent]
            if start < horizon:
                busy_total[agent] += min(now, horizon) - start

    def index_of(iid: str) -> int:
        return int(iid[1:-1]) if iid[-1] == "t" else int(iid[1:])

    def push(t: float, kind: int, ref: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, ref))

    answer_delay = scenario.answer_seconds
    levels_by_queue = resolution.by_queue if resolution is not None else {}
    transfer_below = resolution.transfer_below if resolution is not None else 0
    misroute_share = resolution.misroute_handle_share if resolution is not None else 0.0

    def on_events(events: list[Any], now: float) -> None:
        """React to what the engine decided (accept offers, start talk timers, record outcomes)."""
        nonlocal commands, escalations
        pending = list(events)
        while pending:
            ev = pending.pop(0)
            kind = ev.kind
            if kind == "offer_created":
                iid = ev.interaction_id
                i = index_of(iid)
                queue_now[i] = ev.queue
                if answer_delay > 0:
                    push(now + answer_delay, _ACCEPT, (ev.offer_id, ev.agent_id))
                else:
                    commands += 1
                    pending.extend(engine.accept(base + now, ev.offer_id, ev.agent_id))
            elif kind == "assigned":
                iid, agent = ev.interaction_id, ev.agent_id
                i = index_of(iid)
                c = contacts[i]
                holder[iid] = agent
                busy_add(agent, now)
                child = iid[-1] == "t"
                if child:
                    answered_children.add(iid)
                if not child:
                    answered_at[i] = now
                    outcome[i] = 1
                    first_queue[i] = queue_now[i]
                handle = c.handle2 if child else c.handle
                misrouted = False
                if resolution is not None and not child:
                    need = classes[c.cls].needs_skill
                    if need is not None and transfer_below > 0:
                        level = engine_skills[agent].get(need, 0)
                        misrouted = level < transfer_below
                if misrouted:
                    push(now + handle * misroute_share, _END, (iid, True))
                else:
                    push(now + handle, _END, (iid, False))
            elif kind == "queued":
                i = index_of(ev.interaction_id)
                queue_now[i] = ev.queue
            elif kind == "escalated":
                escalations += 1
                queue_now[index_of(ev.interaction_id)] = ev.to_queue
            elif kind == "abandoned":
                pass  # recorded where the abandon was issued
            elif kind == "diverted":
                i = index_of(ev.interaction_id)
                if ev.interaction_id[-1] != "t" and outcome[i] == 0:
                    outcome[i] = 3
                    ended_wait[i] = now - contacts[i].arrival

    engine_skills = {name: dict(group.skills) for name, group in agents.items()}

    # ---- the loop
    next_arrival = 0
    tick_at = math.inf  # the engine tick already on the heap (at most one that matters)
    next_report = progress_every
    now = 0.0
    while True:
        t_heap = heap[0][0] if heap else math.inf
        t_arr = contacts[next_arrival].arrival if next_arrival < n else math.inf
        if t_arr <= t_heap:
            if t_arr == math.inf:
                break
            now = t_arr
            if now > stop_at:
                break
            i = next_arrival
            next_arrival += 1
            c = contacts[i]
            cls = classes[c.cls]
            iid = f"c{i}"
            commands += 1
            if rule_set is None:
                events = engine.enqueue(
                    base + now,
                    iid,
                    cls.channel,
                    queue=cls.queue,
                    priority=cls.priority,
                    context=ctx_of[c.cls],
                )
            else:
                events = engine.enqueue(base + now, iid, cls.channel, context=ctx_of[c.cls])
            on_events(events, now)
            if c.patience != math.inf and outcome[i] == 0:
                push(now + c.patience, _ABANDON, iid)
        else:
            now, _s, kind, ref = heapq.heappop(heap)
            if now > stop_at:
                break
            if kind == _END:
                iid, misrouted = ref
                agent = holder.pop(iid)
                i = index_of(iid)
                c = contacts[i]
                if misrouted:
                    # A misroute: this agent cannot help; a blind transfer to the class's queue
                    # asking for the skill, the customer keeping their place (virtual start).
                    busy_remove(agent, now)
                    commands += 2
                    events = engine.end_leg_for_transfer(base + now, iid)
                    cls = classes[c.cls]
                    needed = cls.needs_skill or ""
                    child = iid + "t"
                    transferred[i] = True
                    events += engine.enqueue(
                        base + now,
                        child,
                        cls.channel,
                        queue=cls.queue or queue_now[i],
                        priority=cls.priority,
                        virtual_start=base + c.arrival,
                        required_skills={needed: transfer_below} if needed else None,
                        context=ctx_of[c.cls],
                        declined={agent},
                    )
                    on_events(events, now)
                    if c.patience2 != math.inf and child not in holder:
                        push(now + c.patience2, _ABANDON, child)
                    continue
                if resolution is not None:
                    cls = classes[c.cls]
                    need = cls.needs_skill
                    level = min(engine_skills[agent].get(need, 0), 5) if need is not None else 5
                    table = levels_by_queue.get(queue_now[i]) or resolution.by_proficiency
                    u = c.u2 if iid[-1] == "t" else c.u
                    resolved[i] = u < table[level]
                wrap = wrap_of[c.cls]
                if wrap > 0:
                    commands += 1
                    on_events(engine.wrap_up(base + now, iid), now)
                    push(now + wrap, _DONE, (iid, agent))
                else:
                    busy_remove(agent, now)
                    commands += 1
                    on_events(engine.complete(base + now, iid), now)
            elif kind == _DONE:
                iid, agent = ref
                busy_remove(agent, now)
                commands += 1
                on_events(engine.complete(base + now, iid), now)
            elif kind == _ABANDON:
                iid = ref
                i = index_of(iid)
                if iid[-1] == "t":
                    if iid in answered_children:
                        continue  # answered after the transfer
                    commands += 1
                    on_events(engine.abandon(base + now, iid), now)
                    continue
                if outcome[i] != 0:
                    continue
                outcome[i] = 2
                ended_wait[i] = now - contacts[i].arrival
                if first_queue[i] is None:
                    first_queue[i] = queue_now[i]
                commands += 1
                on_events(engine.abandon(base + now, iid), now)
            elif kind == _ACCEPT:
                offer_id, agent = ref
                commands += 1
                on_events(engine.accept(base + now, offer_id, agent), now)
            elif kind == _SHIFT_ON:
                on_since[ref] = now
                commands += 1
                on_events(engine.set_presence(base + now, ref, Presence.AVAILABLE), now)
            elif kind == _SHIFT_OFF:
                if ref in on_since:
                    began = on_since.pop(ref)
                    if began < horizon:
                        shift_total[ref] += min(now, horizon) - began
                commands += 1
                on_events(engine.set_presence(base + now, ref, Presence.OFFLINE), now)
            elif kind == _TICK:
                if now >= tick_at:
                    tick_at = math.inf
                due = engine.next_timer_due()
                if due is not None and due - base <= now:
                    commands += 1
                    on_events(engine.tick(base + now), now)
        # The engine's own timers (rule-step escalations, offer expiries) run when they fall due.
        due = engine.next_timer_due()
        if due is not None:
            due -= base
            if due < tick_at:
                tick_at = max(due, now)
                push(tick_at, _TICK, None)
        if progress is not None and now >= next_report:
            next_report = now + progress_every
            progress(min(now / horizon, 1.0) if horizon else 1.0)

    end = min(now, stop_at)
    for agent, start in on_since.items():
        if start < horizon:
            shift_total[agent] += min(end, horizon) - start
    for agent, count in busy_count.items():
        if count > 0 and busy_since[agent] < horizon:
            busy_total[agent] += min(end, horizon) - busy_since[agent]

    result = _summarise(
        scenario,
        contacts,
        answered_at=answered_at,
        first_queue=first_queue,
        queue_now=queue_now,
        outcome=outcome,
        ended_wait=ended_wait,
        transferred=transferred,
        resolved=resolved,
        sl_of=sl_of,
        busy_total=busy_total,
        shift_total=shift_total,
        warmup=warmup,
        escalations=escalations,
        simulated=end,
        commands=commands,
    )
    if record_waits:
        result.waits = [
            answered_at[i] - c.arrival if outcome[i] == 1 else None for i, c in enumerate(contacts)
        ]
    return result


def _summarise(
    scenario: Scenario,
    contacts: list[Contact],
    *,
    answered_at: list[float],
    first_queue: list[str | None],
    queue_now: list[str],
    outcome: list[int],
    ended_wait: list[float],
    transferred: list[bool],
    resolved: list[bool],
    sl_of: list[float],
    busy_total: dict[str, float],
    shift_total: dict[str, float],
    warmup: float,
    escalations: int,
    simulated: float,
    commands: int,
) -> Result:
    traffic = scenario.traffic
    classes = traffic.classes
    length = traffic.interval_minutes * 60.0
    overall = Tally()
    tiers: dict[str, Tally] = {}
    channels: dict[str, Tally] = {}
    queues: dict[str, Tally] = {}
    intervals = [Tally() for _ in traffic.volumes]
    counted = 0
    for i, c in enumerate(contacts):
        if c.arrival < warmup:
            continue
        counted += 1
        cls = classes[c.cls]
        q = first_queue[i] or queue_now[i] or "(none)"
        slot = min(int(c.arrival // length), len(intervals) - 1)
        buckets = (
            overall,
            tiers.setdefault(cls.tier, Tally()),
            channels.setdefault(cls.channel, Tally()),
            queues.setdefault(q, Tally()),
            intervals[slot],
        )
        state = outcome[i]
        for b in buckets:
            b.offered += 1
            if state == 1:
                wait = answered_at[i] - c.arrival
                b.answered += 1
                b.wait_answered += wait
                b.wait_all += wait
                if wait <= sl_of[c.cls]:
                    b.answered_in_sl += 1
                if transferred[i]:
                    b.transferred += 1
                if resolved[i]:
                    b.resolved += 1
            elif state == 2:
                b.abandoned += 1
                b.wait_all += ended_wait[i]
            elif state == 3:
                b.diverted += 1
                b.wait_all += ended_wait[i]
    on_shift = [a for a, s in shift_total.items() if s > 0]
    occupancy = (
        sum(busy_total[a] for a in on_shift) / sum(shift_total[a] for a in on_shift) if on_shift else None
    )
    per_agent = [busy_total[a] / shift_total[a] for a in on_shift]
    spread = max(per_agent) - min(per_agent) if per_agent else None
    with_resolution = scenario.resolution is not None

    def figures(t: Tally) -> dict[str, Any]:
        f = t.figures()
        if not with_resolution:
            f["first_contact_resolution"] = None
            f["resolved"] = None
        return f

    interval_rows = []
    for k, t in enumerate(intervals):
        row = figures(t)
        row["interval"] = k
        row["start_minutes"] = k * traffic.interval_minutes
        interval_rows.append(row)
    return Result(
        contacts=counted,
        overall=figures(overall),
        by_tier={k: figures(v) for k, v in sorted(tiers.items())},
        by_channel={k: figures(v) for k, v in sorted(channels.items())},
        by_queue={k: figures(v) for k, v in sorted(queues.items())},
        by_interval=interval_rows,
        occupancy=occupancy,
        agent_occupancy_spread=spread,
        escalations=escalations,
        simulated_seconds=simulated,
        engine_commands=commands,
        resolution_model=with_resolution,
    )
