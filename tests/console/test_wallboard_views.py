"""The wallboard's shared work (issue #11 item 1, the 5,000-agent floor): the snapshot's index by
team and queue must give every filter and page exactly what scanning the floor gives, and one
render per distinct view per push must still give each socket its own view: sockets on the same
view get the same fragment, sockets on different views never each other's."""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from console.floor import PAGE_SIZE, QueueInfo, Snapshot, SnapshotAgent, view
from console.wallboard import Mailbox, Rendered, ViewEnded, caches, wallboards
from switchboard.auth.models import Role
from switchboard.db import utcnow
from switchboard.events import FLOOR_TOPIC, publish
from tests.factories import make_agent, make_queue, make_staff_user
from workforce.models import Agent, Presence

ROW = re.compile(r'<tr><th scope="row">([^<]*)</th><td>([^<]*)</td><td>([^<]*)</td>')
QUEUE_ROW = re.compile(r'<tr id="queue-([^"]+)"')


# ------------------------------------------------------------------ the index, against a scan


def _scan(snap: Snapshot, queue: str | None, team: str | None) -> tuple[list[SnapshotAgent], dict[str, int]]:
    """The oracle: the floor filtered by scanning every agent (the wallboard before its index)."""
    agents = [
        a for a in snap.online if (queue is None or queue in a.queues) and (team is None or team in a.teams)
    ]
    names = [q.name for q in snap.queues if queue is None or q.name == queue]
    if team is not None:
        names = [n for n in names if n in snap.team_queues.get(team, frozenset())]
    return agents, {n: sum(1 for a in agents if n in a.queues) for n in names}


def _random_snapshot(rng: random.Random, agents: int) -> Snapshot:
    queues = ["cards", "loans", "fraud", "empty"]
    teams = ["north", "south", "east", "west"]
    start = utcnow() - timedelta(hours=2)
    online = []
    for n in range(agents):
        # Queues and teams of very different sizes: with both filters the index walks either list.
        mine = frozenset(
            q for q, share in (("cards", 0.7), ("loans", 0.4), ("fraud", 0.05)) if rng.random() < share
        )
        # Some agents in two teams, some in none, one team named twice (a data slip)
        in_teams = tuple(rng.sample(teams, rng.choice([0, 1, 1, 1, 2])))
        if n == 7:
            in_teams = ("north", "north")
        online.append(
            SnapshotAgent(
                uuid.uuid4(),
                f"Agent {n:04d}",
                rng.choice([Presence.AVAILABLE, Presence.BREAK, Presence.TRAINING]),
                None,
                start + timedelta(seconds=n),
                in_teams,
                mine,
            )
        )
    team_queues: dict[str, set[str]] = {}
    for a in online:
        for t in a.teams:
            team_queues.setdefault(t, set()).update(a.queues)
    return Snapshot(
        queues=[QueueInfo(q, q.title(), 20, 80) for q in queues],
        online=online,
        work={},
        thresholds={},
        team_queues={k: frozenset(v) for k, v in team_queues.items()},
    )


def test_every_filter_and_page_from_the_index_equals_a_scan_of_the_floor() -> None:
    rng = random.Random(11)
    snap = _random_snapshot(rng, 7 * PAGE_SIZE + 13)
    now = utcnow()
    filters = [
        (q, t)
        for q in (None, "cards", "loans", "fraud", "empty", "nope")
        for t in (None, "north", "south", "east", "west", "nobody")
    ]
    rng.shuffle(filters)  # the per-snapshot memo must not depend on which filter came first
    checked = 0
    for queue, team in filters * 2:  # and a second pass is served from it, unchanged
        agents, staffed = _scan(snap, queue, team)
        pages = max(1, math.ceil(len(agents) / PAGE_SIZE))
        for page in range(0, pages + 2):  # out of range both ways: clamped as before
            floor = view(snap, now=now, queue=queue, team=team, page=page)
            shown_page = min(max(page, 1), pages)
            expected = agents[(shown_page - 1) * PAGE_SIZE : shown_page * PAGE_SIZE]
            assert [a.agent_id for a in floor.agents] == [a.id for a in expected], (queue, team, page)
            assert {q.name: q.staffed for q in floor.queues} == staffed, (queue, team)
            assert [q.name for q in floor.queues] == list(staffed)
            assert (floor.signed_in, floor.pages, floor.page) == (len(agents), pages, shown_page)
            checked += 1
    assert checked > 200
    # The filters really cut the floor (an oracle that matched by emptiness would prove nothing).
    assert 0 < len(_scan(snap, "cards", "north")[0]) < len(_scan(snap, None, "north")[0]) < len(snap.online)
    assert len(snap.by_queue["fraud"]) < len(snap.by_team["west"]) < len(snap.by_queue["loans"])
    assert sum(1 for a in snap.filtered(None, "north").agents if a.display_name == "Agent 0007") == 1


# ------------------------------------------------------------------ one render per view


def test_a_mailbox_keeps_only_the_newest_render_and_never_goes_back() -> None:
    async def scenario() -> None:
        box = Mailbox()
        old, new = Rendered("old", 1.0), Rendered("new", 2.0)
        box.put(old)
        box.put(new)
        assert (await box.take()) is new  # the older one folded into the newer
        box.put(old)  # a render finished late (a joining socket's) is older than what was sent
        box.end()
        try:
            await asyncio.wait_for(box.take(), 1)
        except ViewEnded:
            pass
        else:
            raise AssertionError("an ended mailbox gave an older fragment instead of ending")

    asyncio.run(scenario())


def _rows(fragment: str) -> dict[str, tuple[str, str]]:
    return {name: (state, reason) for name, state, reason in ROW.findall(fragment)}


async def _next(box: Mailbox, after: Rendered) -> Rendered:
    while True:
        got = await asyncio.wait_for(box.take(), 5)
        if got.number > after.number:
            return got


async def test_sockets_share_one_render_per_view_and_each_sees_only_its_own(app: Any, db: Any) -> None:
    since = utcnow() - timedelta(hours=1)
    north: list[str] = []
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards", channels=["chat"])
        loans = await make_queue(s, "loans", channels=["chat"])
        for n in range(PAGE_SIZE + 12):  # two pages; every third also in loans
            name = f"North {n:03d}"
            north.append(name)
            await make_agent(
                s,
                await make_staff_user(s, Role.AGENT, name=name, password=None),  # no argon2: quick
                presence=Presence.AVAILABLE,
                presence_since=since + timedelta(seconds=n),  # the floor's order: longest in state first
                teams=["north"],
                queues=[cards, loans] if n % 3 == 0 else [cards],
            )
        for n in range(4):
            await make_agent(
                s,
                await make_staff_user(s, Role.AGENT, name=f"South {n}", password=None),
                presence=Presence.BREAK,
                presence_since=since + timedelta(seconds=500 + n),
                teams=["south"],
                queues=[loans],
            )
        mover = await make_staff_user(s, Role.AGENT, name="North Mover", password=None)
        moved = await make_agent(
            s, mover, presence=Presence.AVAILABLE, presence_since=since + timedelta(seconds=400),
            teams=["north"], queues=[cards],
        )  # fmt: skip
    north.append("North Mover")
    south = [f"South {n}" for n in range(4)]
    expected = {
        "north-1": north[:PAGE_SIZE],
        "north-1-again": north[:PAGE_SIZE],
        "north-2": north[PAGE_SIZE:],
        "south": south,
        "loans-north": [n for i, n in enumerate(north[:-1]) if i % 3 == 0],
        "whole": (north + south)[:PAGE_SIZE],
    }
    keys = {
        "north-1": (None, "north", 1),
        "north-1-again": (None, "north", 1),
        "north-2": (None, "north", 2),
        "south": (None, "south", 1),
        "loans-north": ("loans", "north", 1),
        "whole": (None, None, 1),
    }
    board = wallboards(app)
    async with AsyncExitStack() as stack:
        boxes = {name: await stack.enter_async_context(board.watch(key)) for name, key in keys.items()}
        assert len(board.views) == 5  # two sockets, one view
        first = {name: await asyncio.wait_for(box.take(), 5) for name, box in boxes.items()}
        for name, rendered in first.items():
            assert list(_rows(rendered.fragment)) == expected[name], name
        assert QUEUE_ROW.findall(first["south"].fragment) == ["loans"]
        assert QUEUE_ROW.findall(first["loans-north"].fragment) == ["loans"]

        # The mover (north, page 2) goes on break; the process is told as set_presence tells it.
        async with db.sessionmaker() as s:
            await s.execute(
                update(Agent)
                .where(Agent.id == moved.id)
                .values(presence=Presence.BREAK, presence_reason="dentist", presence_since=utcnow())
            )
            await s.commit()
        renders_before = {key: v.renders for key, v in board.views.items()}
        reads_before, cycles_before = caches(app)[0].reads, board.cycles
        await publish(app.state.redis_client, FLOOR_TOPIC, {"agent_id": str(moved.id), "presence": "break"})
        pushed = {name: await _next(boxes[name], first[name]) for name in boxes}

        # One render for the two sockets of one view: the very same fragment, once rendered.
        assert pushed["north-1"] is pushed["north-1-again"]
        for key, v in board.views.items():
            assert v.renders == renders_before[key] + 1, key
        # One push cycle for the process's five views, on one read of the floor (not one each).
        assert (board.cycles, caches(app)[0].reads) == (cycles_before + 1, reads_before + 1)
        # Each socket its own view, nobody else's: distinct views, distinct renders and rows.
        distinct = {id(pushed[name]) for name in pushed}
        assert len(distinct) == 5
        mover_moved_last = [n for n in north if n != "North Mover"] + ["North Mover"]
        assert list(_rows(pushed["north-2"].fragment)) == mover_moved_last[PAGE_SIZE:]
        assert _rows(pushed["north-2"].fragment)["North Mover"] == ("break", "dentist")
        assert list(_rows(pushed["north-1"].fragment)) == mover_moved_last[:PAGE_SIZE]
        assert list(_rows(pushed["south"].fragment)) == south
        assert list(_rows(pushed["loans-north"].fragment)) == expected["loans-north"]
        assert list(_rows(pushed["whole"].fragment)) == (mover_moved_last + south)[:PAGE_SIZE]

        # A socket joining a running view gets its last render (its floor under max_age old, made
        # long here so that a loaded machine's slowness cannot turn the reuse into a new render).
        caches(app)[0].max_age = 60.0
        renders = board.renders
        async with board.watch((None, "north", 2)) as late:
            joined = await asyncio.wait_for(late.take(), 5)
            assert joined is board.views[(None, "north", 2)].latest
            assert board.renders == renders
            assert list(_rows(joined.fragment)) == mover_moved_last[PAGE_SIZE:]
        assert (None, "north", 2) in board.views  # still watched by the first socket
    assert board.views == {}  # the last socket gone, each view's loop with it


async def test_a_change_told_while_a_push_waits_is_in_that_push_though_a_page_read_the_floor_between(
    app: Any, db: Any
) -> None:
    """A notice that arrives while the push cycle waits out its batching interval folds into that
    cycle; the cycle's floor must then be read after it. A floor read in between (a page opening,
    another process's socket joining) is too old for it, though newer than the notice that woke
    the cycle: reusing it showed the change only at the next refresh, five seconds on."""
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards", channels=["chat"])
        kim = await make_agent(
            s,
            await make_staff_user(s, Role.AGENT, name="Kim Agent", password=None),
            presence=Presence.AVAILABLE,
            queues=[cards],
        )
    board = wallboards(app)
    board.min_push_s = 2.0  # a wide batching interval, to act inside it on a loaded machine
    floor_cache = caches(app)[0]
    floor_cache.max_age = 60.0  # a page's read stays young enough to be reused
    async with app.state.event_hub.subscribe(FLOOR_TOPIC) as heard, board.watch((None, None, 1)) as box:
        first = await asyncio.wait_for(box.take(), 5)
        assert _rows(first.fragment)["Kim Agent"][0] == "available"
        for _ in range(500):  # the loop's own first cycle is done: it waits for a notice
            if board.cycles >= 1:
                break
            await asyncio.sleep(0.01)

        await publish(app.state.redis_client, FLOOR_TOPIC, {"queues": True})  # wakes the cycle
        await asyncio.wait_for(heard.get(), 5)
        await asyncio.sleep(0.05)  # the loop has taken it too and now waits out the interval
        cycles = board.cycles
        await floor_cache.get(fresh_after=time.monotonic())  # a page reads the floor meanwhile
        async with db.sessionmaker() as s:
            await s.execute(
                update(Agent)
                .where(Agent.id == kim.id)
                .values(presence=Presence.BREAK, presence_since=utcnow())
            )
            await s.commit()
        await publish(app.state.redis_client, FLOOR_TOPIC, {"agent_id": str(kim.id), "presence": "break"})
        await asyncio.wait_for(heard.get(), 5)

        pushed = await _next(box, first)
        assert board.cycles == cycles + 1, "the cycle the interval held back, not a later one"
        assert _rows(pushed.fragment)["Kim Agent"][0] == "break"
