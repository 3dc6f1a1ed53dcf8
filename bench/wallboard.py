"""The live wallboard on the production path (issue #11: "wallboard update latency with 5,000 agents
and 100 events/s, p99 <= 1 s from event to browser").

A floor of --agents agents (5,000) in teams of 50 (one wallboard page), most of them signed in
(available, on break, in training: set in SQL as the floor would be after shift start), is seeded
set-based in the bench's own schema; the app runs as the README's Production section runs it
(uvicorn, PostgreSQL, Redis). --supervisors supervisors sign in through the login form, load
/supervisor and hold /supervisor/ws as the page does (same URL and filters, the session cookie,
Origin, per-message deflate offered): --floor-views of them watch the whole floor (the queues
table), the others one team each (its 50 agents). Events at --rate per second, for real:

- presence: an agent of a watched team, signed in through the login form, changes state through
  the desktop's status selector (POST /desktop/presence with the page's CSRF header): available ->
  break with a reason unique to the event, or back to available;
- arrival (--arrival-share of the events): a chat is POSTed through the API (a supervisor's Bearer
  token) into the queue "hold", which nobody serves, so its waiting count only grows.

Measured, per event and per socket that shows it: from the event's request being answered to the
first push on that socket that reflects it (presence: the agent's row shows the new state and
reason; arrival: the hold queue's waiting count reaches the number of chats posted so far, the
event's own included; counted, not identified, so a reordering can only lengthen the figure), a
push that arrives before the answer counting 0. Also pushes per client per second, push size, app
CPU per event (gross and net of the idle sockets' own refreshes), load average before and after.
--browser adds one Chromium page (Playwright, /usr/bin/chromium) watching the first watched team:
the same figure to the animation frame after htmx swapped the push in.

--processes 2 runs a second app process on the same schema and Redis, as the README's production
section runs several behind a load balancer; the first one started leads the routing engine, the
second stands by. The supervisors (login, page, socket; the browser too) are all on the process
that does not lead the engine: any process serves wallboards (the fan-out is Redis), and keeping
them off the leader is the lever measured. The agents' requests are split as a load balancer
would spread them: even-numbered movers (sign-in, desktop, status changes) on the leader,
odd-numbered on the other; the chats' API connections alternate between the two. CPU figures are
the sum of both processes, with each one's share beside it.

    .venv/bin/python bench/wallboard.py                      # 5,000 agents, 100 events/s, 30 s
    .venv/bin/python bench/wallboard.py --browser            # plus one real browser
    .venv/bin/python bench/wallboard.py --agents 200 --rate 10 --seconds 5 --supervisors 3
    .venv/bin/python bench/wallboard.py --processes 2        # wallboards off the engine's process
    .venv/bin/python bench/wallboard.py --engine-process     # the engine apart (switchboard engine)

Needs PostgreSQL (BENCH_PG_URL) and Redis (BENCH_REDIS_URL), as bench/desktop_latency.py. Works in
its own schema, dropped at the end. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bench.agent_loop import CSRF_HEADER, FORM, PASSWORD, Pool, Stats, form, sign_in  # noqa: E402
from bench.common import (  # noqa: E402
    Conn,
    cpu_seconds,
    load_context,
    percentile,
    postgres_cpu_seconds,
    print_figures,
    retail_queue_row,
    runqueue_wait_seconds,
)
from bench.desktop_setup import (  # noqa: E402
    PG_URL,
    drop_schema,
    engine_leads,
    free_port,
    migrate,
    redis_server_pid,
    start_engine,
    start_server,
    wait_ready,
)
from console.floor import PAGE_SIZE  # noqa: E402
from switchboard.auth.models import Role, User  # noqa: E402
from switchboard.db import Database, utcnow  # noqa: E402
from workforce.models import Agent, Presence, Queue, QueueMember, Team  # noqa: E402

ORIGIN = "https://desk.bench.example"
HOLD = "hold"  # the queue nobody serves: its waiting count counts the arrivals
CONNS = 32  # keep-alive connections the movers' clicks share
ROW = re.compile(
    r'<tr><th scope="row">([^<]*)</th><td>([^<]*)</td><td>([^<]*)</td>'
)  # console/_floor.html's agent row: name, state, reason
HOLD_WAITING = re.compile(rf'<tr id="queue-{HOLD}"[^>]*>\s*<th scope="row">{HOLD}</th>\s*<td>(\d+)</td>')

# What the browser records after each push htmx swapped in: when the next frame paints, and the
# rows it shows (the same content the bench reads from the socket).
BROWSER_RECORDER = """
window.__wb = [];
document.addEventListener("htmx:wsAfterMessage", function () {
  requestAnimationFrame(function () {
    var rows = [];
    document.querySelectorAll("#wallboard-agents tbody tr").forEach(function (tr) {
      var cells = tr.querySelectorAll("td");
      rows.push([tr.querySelector("th").textContent, cells[0].textContent, cells[1].textContent]);
    });
    window.__wb.push([Date.now(), rows]);
  });
});
"""


def team_name(n: int) -> str:
    return f"team-{n:03d}"


def agent_name(n: int) -> str:
    return f"Wb Agent {n:05d}"


# ------------------------------------------------------------------ data


async def seed(schema: str, agents: int, supervisors: int, watched_teams: int) -> list[int]:
    """The floor, set-based. Returns the agent numbers of the watched teams (the movers)."""
    await migrate(schema)
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    db = Database(PG_URL, schema=schema)
    now = utcnow()
    rng = random.Random(11)
    teams = (agents + PAGE_SIZE - 1) // PAGE_SIZE
    retail, hold = uuid.uuid4(), uuid.uuid4()

    def user(name: str, display: str, role: Role) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "username": name,
            "display_name": display,
            "role": role,
            "password_hash": cheap,
            "is_active": True,
            "created_at": now,
        }

    agent_users = [user(f"wb{n:05d}", agent_name(n), Role.AGENT) for n in range(agents)]
    sup_users = [user(f"wbsup{n:03d}", f"Wb Supervisor {n:03d}", Role.SUPERVISOR) for n in range(supervisors)]
    movers = [n for n in range(agents) if n // PAGE_SIZE < watched_teams]
    agent_rows = []
    for n, u in enumerate(agent_users):
        # The movers start available; the rest of the floor is as a floor is mid-shift.
        roll = rng.random()
        if n in movers or roll < 0.7:
            presence, reason = Presence.AVAILABLE, None
        elif roll < 0.9:
            presence, reason = Presence.BREAK, "lunch"
        else:
            presence, reason = Presence.TRAINING, None
        since = now - timedelta(seconds=rng.randrange(60, 4 * 3600))
        agent_rows.append(
            {
                "id": uuid.uuid4(),
                "user_id": u["id"],
                "display_name": u["display_name"],
                "languages": ["en"],
                "teams": [team_name(n // PAGE_SIZE)],
                "capacity_units": 100,
                "channel_max": {"voice": 1, "chat": 3, "ticket": 5, "email": 5},
                "presence": presence,
                "presence_reason": reason,
                "presence_since": since,
                "idle_since": since,
                "created_at": now,
            }
        )
    async with db.sessionmaker() as s:
        await s.execute(
            insert(Queue),
            [
                retail_queue_row(retail, wrap_up_seconds=30, settings={}, created_at=now),
                retail_queue_row(hold, name=HOLD, display_name="Hold", settings={}, created_at=now),
            ],
        )
        await s.execute(
            insert(Team),
            [
                {"id": uuid.uuid4(), "name": team_name(t), "display_name": f"Team {t:03d}", "created_at": now}
                for t in range(teams)
            ],
        )
        await s.execute(insert(User), [*agent_users, *sup_users])
        await s.execute(insert(Agent), agent_rows)
        await s.execute(
            insert(QueueMember),
            [{"id": uuid.uuid4(), "queue_id": retail, "agent_id": a["id"]} for a in agent_rows],
        )
        await s.commit()
    await db.dispose()
    return movers


# ------------------------------------------------------------------ clients


@dataclass
class Board:
    """One supervisor's wallboard socket and every push it got (time, text)."""

    index: int
    query: str  # the page's filters, as in the socket URL
    team: str | None
    session: str = ""
    frames: list[tuple[float, str]] = field(default_factory=list)
    open: bool = False

    async def hold(self, port: int, stop: asyncio.Event, opened: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{port}/supervisor/ws" + (f"?{self.query}" if self.query else "")
        try:
            async with websockets.connect(
                url,
                additional_headers={"Cookie": f"sb_session={self.session}", "Origin": ORIGIN},
                compression="deflate",  # a browser offers it
                max_size=2**22,
                open_timeout=60,
                ping_interval=None,
            ) as ws:
                self.open = True
                opened.set()
                while not stop.is_set():
                    try:
                        frame = await asyncio.wait_for(ws.recv(), timeout=1.0)
                    except TimeoutError:
                        continue
                    now = time.perf_counter()
                    self.frames.append((now, frame if isinstance(frame, str) else frame.decode()))
        except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake, TimeoutError):
            pass
        finally:
            self.open = False
            opened.set()


@dataclass
class Event:
    kind: str  # "presence" | "arrival"
    sent: float
    answered: float | None = None
    status: int | None = None
    agent: int | None = None
    state: str = ""
    reason: str = "–"


def rows_of(frame: str) -> dict[str, tuple[str, str]]:
    return {html.unescape(n): (s, html.unescape(r)) for n, s, r in ROW.findall(frame)}


def hold_waiting(frame: str) -> int | None:
    match = HOLD_WAITING.search(frame)
    return int(match.group(1)) if match else None


# ------------------------------------------------------------------ analysis


def presence_latencies(
    events: list[Event], pushes: list[tuple[float, dict[str, tuple[str, str]]]], team_agents: set[int]
) -> tuple[list[float], int]:
    """Answer -> first push showing the event, for one socket (its team's agents). Each agent's
    events are taken in order, each searched from the push that showed the previous one."""
    out: list[float] = []
    missed = 0
    start: dict[int, int] = {}
    for e in events:
        if e.kind != "presence" or e.agent not in team_agents or e.status != 200 or e.answered is None:
            continue
        name = agent_name(e.agent)
        i = start.get(e.agent, 0)
        while i < len(pushes) and not (
            pushes[i][0] >= e.sent and pushes[i][1].get(name) == (e.state, e.reason)
        ):
            i += 1
        if i == len(pushes):
            missed += 1
            continue
        start[e.agent] = i
        out.append(max(0.0, pushes[i][0] - e.answered) * 1000)
    return out, missed


def arrival_latencies(
    events: list[Event], pushes: list[tuple[float, int | None]], base: int
) -> tuple[list[float], int]:
    """Answer -> first push whose hold-queue count includes the k-th chat posted (in send order)."""
    out: list[float] = []
    missed = 0
    k = 0
    i = 0
    for e in sorted((e for e in events if e.kind == "arrival"), key=lambda e: e.sent):
        if e.status != 201 or e.answered is None:
            continue
        k += 1
        while i < len(pushes) and not (pushes[i][0] >= e.sent and (pushes[i][1] or 0) >= base + k):
            i += 1
        if i == len(pushes):
            missed += 1
            i = 0  # later events may still be found (a count that went down)
            continue
        out.append(max(0.0, pushes[i][0] - e.answered) * 1000)
    return out, missed


def push_rate(times: list[float]) -> float:
    """Pushes per second between the first and the last (not per window: no fence-post error)."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q), 1)


# ------------------------------------------------------------------ the run


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the measured run")
    parser.add_argument("--supervisors", type=int, default=10, help="wallboard sockets held")
    parser.add_argument("--floor-views", type=int, default=2, help="of them, watching the whole floor")
    parser.add_argument("--arrival-share", type=float, default=0.2, help="share of events that are chats")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="events before the measured run")
    parser.add_argument("--idle-seconds", type=float, default=6.0, help="idle CPU measured (then subtracted)")
    parser.add_argument("--browser", action="store_true", help="plus one Chromium page (Playwright)")
    parser.add_argument("--server-log", type=Path, help="directory for the app process's output")
    parser.add_argument(
        "--processes",
        type=int,
        choices=(1, 2),
        default=1,
        help="app processes: 2 puts the supervisors on the one not leading the engine",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="the routing engine in a process of its own (switchboard engine, as the README's "
        "production section allows); the app processes run without one",
    )
    args = parser.parse_args()
    floor_views = min(args.floor_views, args.supervisors)
    watched_teams = min(args.supervisors - floor_views, (args.agents + PAGE_SIZE - 1) // PAGE_SIZE)
    if watched_teams < 1:
        raise SystemExit("at least one supervisor must watch a team (--supervisors > --floor-views)")

    load_before = load_context()
    schema = f"bench_wb_{os.getpid()}"
    began = time.perf_counter()
    movers = await seed(schema, args.agents, args.supervisors + 1, watched_teams)
    results: dict[str, Any] = {
        "agents": args.agents,
        "supervisors": args.supervisors,
        "floor_views": floor_views,
        "watched_teams": watched_teams,
        "movers": len(movers),
        "processes": args.processes,
        "engine_process": args.engine_process,
        "load_before": load_before,
        "seed_seconds": round(time.perf_counter() - began, 1),
    }
    ports = [free_port() for _ in range(args.processes)]
    secret = secrets.token_urlsafe(48)
    # The browser's page is served from the app's own address: its origin is allowed too.
    origins = json.dumps([ORIGIN, *(f"http://127.0.0.1:{p}" for p in ports)])

    no_engine = {"SWITCHBOARD_ROUTING_ENGINE": "false"} if args.engine_process else {}

    def start(p: int) -> subprocess.Popen[bytes]:
        server = start_server(
            p, schema, secret, ORIGIN, "default", args.server_log,
            extra_env={"SWITCHBOARD_ALLOWED_ORIGINS": origins, **no_engine},
        )  # fmt: skip
        print(f"server pid: {server.pid} (port {p})", file=sys.stderr, flush=True)
        return server

    servers = [start(ports[0])]
    # Measured with the app processes (CPU, run-queue wait), listed after them.
    engines = [start_engine(schema, secret, ORIGIN, args.server_log)] if args.engine_process else []
    for engine in engines:
        print(f"engine pid: {engine.pid}", file=sys.stderr, flush=True)
    port = ports[0]  # the engine's leader
    sup_port = ports[-1]  # the supervisors' process: the other one when there are two
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    pools = {p: Pool(p, CONNS) for p in ports}
    sup_pool = pools[sup_port]

    def mover_pool(n: int) -> Pool:
        return pools[ports[n % len(ports)]]

    stats = Stats()
    browser_ctx: Any = None
    try:
        role = await wait_ready(port)
        for _ in range(100):
            if role == "leader" or (engines and await engine_leads()):
                break
            await asyncio.sleep(0.2)
            role = await wait_ready(port)
        results["engine_role"] = "engine process" if engines else role
        if len(ports) > 1:  # started once the first leads, so that the second stands by
            servers.append(start(ports[1]))
            results["engine_role_other"] = await wait_ready(ports[1])

        # Supervisors: the login form, the page, its socket (the page's own URL and filters).
        boards = [
            Board(i, "", None)
            if i < floor_views
            else Board(i, f"team={team_name(i - floor_views)}", team_name(i - floor_views))
            for i in range(args.supervisors)
        ]
        for b in boards:
            b.session, _ = await sign_in(sup_pool, stats, ORIGIN, f"wbsup{b.index:03d}")
            page = await sup_pool.request(
                stats,
                "GET /supervisor",
                "GET",
                "/supervisor" + (f"?{b.query}" if b.query else ""),
                headers={"Cookie": f"sb_session={b.session}", "Accept": "text/html"},
            )
            if page is None or page[0] != 200 or b"/supervisor/ws" not in page[2]:
                raise SystemExit(f"the console home did not load for supervisor {b.index}")
            opened = asyncio.Event()
            tasks.append(asyncio.create_task(b.hold(sup_port, stop, opened)))
            await opened.wait()
        results["sockets_open"] = sum(b.open for b in boards)

        # The movers sign in as their browsers would (login form, desktop page for the CSRF header).
        began = time.perf_counter()
        desks: dict[int, tuple[str, str]] = {}
        gate = asyncio.Semaphore(16)

        async def mover_sign_in(n: int) -> None:
            async with gate:
                session, _ = await sign_in(mover_pool(n), stats, ORIGIN, f"wb{n:05d}")
                answer = await mover_pool(n).request(
                    stats,
                    "GET /desktop",
                    "GET",
                    "/desktop",
                    headers={"Cookie": f"sb_session={session}", "Accept": "text/html"},
                )
                match = CSRF_HEADER.search(answer[2].decode()) if answer else None
                if match is None:
                    raise RuntimeError(f"desktop page without a CSRF token for wb{n:05d}")
                desks[n] = (session, match.group(1))

        await asyncio.gather(*(mover_sign_in(n) for n in movers))
        results["movers_sign_in_seconds"] = round(time.perf_counter() - began, 1)
        progress(f"{len(desks)} movers signed in in {results['movers_sign_in_seconds']} s")

        browser_board: dict[str, Any] = {}
        if args.browser:
            browser_ctx = await open_browser(
                sup_port, f"wbsup{args.supervisors:03d}", team_name(0), browser_board
            )

        grant = await Conn(port).request(
            "POST", "/api/auth/token", form(username="wbsup000", password=PASSWORD), {"Content-Type": FORM}
        )
        token = json.loads(grant[2])["access_token"]
        api: asyncio.Queue[Conn] = asyncio.Queue()
        for k in range(CONNS):
            api.put_nowait(Conn(ports[k % len(ports)], token))

        events: list[Event] = []
        state = {n: "available" for n in movers}
        order = movers[:]
        random.Random(7).shuffle(order)
        busy: set[int] = set()
        skipped = Counter[str]()

        async def presence(e: Event) -> None:
            assert e.agent is not None
            session, csrf = desks[e.agent]
            fields = {"presence": e.state} | ({"reason": e.reason} if e.state == "break" else {})
            answer = await mover_pool(e.agent).request(
                stats,
                "POST /desktop/presence",
                "POST",
                "/desktop/presence",
                form(**fields),
                {
                    "Cookie": f"sb_session={session}",
                    "X-CSRF-Token": csrf,
                    "HX-Request": "true",
                    "Origin": ORIGIN,
                    "Content-Type": FORM,
                },
            )
            e.answered, e.status = time.perf_counter(), answer[0] if answer else None
            busy.discard(e.agent)

        async def arrival(e: Event, n: int) -> None:
            body = json.dumps(
                {
                    "channel": "chat",
                    "queue": HOLD,
                    "identity": {"kind": "chat", "value": f"wb-{n}-{uuid.uuid4().hex[:8]}"},
                }
            ).encode()
            conn = await api.get()
            try:
                status, _ = await conn.post(body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                conn.close()
                status = 0
            finally:
                api.put_nowait(conn)
            e.answered, e.status = time.perf_counter(), status
            stats.count("POST /api/interactions", status)

        cursor = 0
        pick = random.Random(3)

        async def generate(duration: float, record: bool) -> float:
            nonlocal cursor
            count = int(args.rate * duration)
            start, pending = time.perf_counter(), []
            for k in range(count):
                delay = start + k / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if pick.random() < args.arrival_share:
                    e = Event("arrival", time.perf_counter())
                    pending.append(asyncio.create_task(arrival(e, len(events) + k)))
                else:
                    n = order[cursor % len(order)]
                    cursor += 1
                    if n in busy:  # its last change is still on its way: a browser would wait too
                        skipped["mover busy"] += 1
                        continue
                    busy.add(n)
                    new = "break" if state[n] == "available" else "available"
                    state[n] = new
                    e = Event("presence", time.perf_counter(), agent=n, state=new)
                    if new == "break":
                        e.reason = f"ev{cursor}"
                    pending.append(asyncio.create_task(presence(e)))
                if record:
                    events.append(e)
            await asyncio.gather(*pending)
            return count / (time.perf_counter() - start)

        if args.warmup_seconds:
            await generate(args.warmup_seconds, record=False)
            await asyncio.sleep(2)

        # What the held sockets cost with no event (their own refreshes every REFRESH_S).
        pids, redis_pid = [p.pid for p in [*servers, *engines]], redis_server_pid()

        def cpu_now() -> list[float]:
            return [
                sum(cpu_seconds(pid) for pid in pids),
                postgres_cpu_seconds(),
                cpu_seconds(redis_pid) if redis_pid else 0.0,
                cpu_seconds(os.getpid()),
            ]

        idle0, idle_wall0 = cpu_now(), time.perf_counter()
        await asyncio.sleep(args.idle_seconds)
        idle_rate = [
            (b - a) / (time.perf_counter() - idle_wall0) for a, b in zip(idle0, cpu_now(), strict=True)
        ]

        for b in boards:
            b.frames = b.frames[-1:]  # the last push before: the arrivals' base count
        if browser_ctx is not None:
            await browser_board["page"].evaluate("window.__wb = []")
        each0 = [cpu_seconds(pid) for pid in pids]
        cpu0, wall0 = cpu_now(), time.perf_counter()
        waited0 = [runqueue_wait_seconds(pid) for pid in pids]
        progress("measuring")
        achieved = await generate(args.seconds, record=True)
        wall = time.perf_counter() - wall0
        used = [b - a for a, b in zip(cpu0, cpu_now(), strict=True)]
        each = [cpu_seconds(pid) - a for pid, a in zip(pids, each0, strict=True)]
        waited = [runqueue_wait_seconds(pid) - a for pid, a in zip(pids, waited0, strict=True)]
        await asyncio.sleep(3)  # the last events' pushes
        progress("measured")
        results["load_after"] = load_context()
        browser_frames: list[tuple[float, dict[str, tuple[str, str]]]] = []
        if browser_ctx is not None:
            offset = time.time() - time.perf_counter()
            raw = await browser_board["page"].evaluate("window.__wb")
            browser_frames = [(t / 1000 - offset, {n: (s, r) for n, s, r in rows}) for t, rows in raw]

        # ---- analysis
        team_agents = {t: {n for n in movers if n // PAGE_SIZE == t} for t in range(watched_teams)}
        presence_ms: list[float] = []
        arrival_ms: list[float] = []
        missed = Counter[str]()
        for b in boards:
            measured = [(t, f) for t, f in b.frames if t >= wall0]
            if b.team is not None:
                pushes = [(t, rows_of(f)) for t, f in measured]
                got, lost = presence_latencies(events, pushes, team_agents[int(b.team.rsplit("-", 1)[1])])
                presence_ms += got
                missed["presence"] += lost
            else:
                base = hold_waiting(b.frames[0][1]) if b.frames and b.frames[0][0] < wall0 else 0
                got, lost = arrival_latencies(events, [(t, hold_waiting(f)) for t, f in measured], base or 0)
                arrival_ms += got
                missed["arrival"] += lost
        browser_ms, browser_missed = presence_latencies(events, browser_frames, team_agents[0])

        frames = [f for b in boards for t, f in b.frames if wall0 <= t <= wall0 + wall]
        per_client = [push_rate([t for t, _ in b.frames if wall0 <= t <= wall0 + wall]) for b in boards]
        recorded = [e for e in events if e.status in (200, 201)]
        n_events = max(1, len(recorded))
        net = [max(0.0, u - r * wall) * 1000 / n_events for u, r in zip(used, idle_rate, strict=True)]
        everything = presence_ms + arrival_ms
        results.update(
            events=len(events),
            events_ok=len(recorded),
            event_rate_achieved=round(achieved, 1),
            presence_events=sum(e.kind == "presence" for e in recorded),
            arrival_events=sum(e.kind == "arrival" for e in recorded),
            skipped=dict(skipped),
            observations=len(everything),
            p50_ms=ms(everything, 0.5),
            p99_ms=ms(everything, 0.99),
            max_ms=round(max(everything), 1) if everything else None,
            over_1s=sum(v > 1000 for v in everything),
            presence_p50_ms=ms(presence_ms, 0.5),
            presence_p99_ms=ms(presence_ms, 0.99),
            presence_max_ms=round(max(presence_ms), 1) if presence_ms else None,
            arrival_p50_ms=ms(arrival_ms, 0.5),
            arrival_p99_ms=ms(arrival_ms, 0.99),
            arrival_max_ms=round(max(arrival_ms), 1) if arrival_ms else None,
            never_shown=dict(missed),
            browser_observations=len(browser_ms),
            browser_p50_ms=ms(browser_ms, 0.5) if args.browser else None,
            browser_p99_ms=ms(browser_ms, 0.99) if args.browser else None,
            browser_max_ms=round(max(browser_ms), 1) if browser_ms else None,
            browser_never_shown=browser_missed if args.browser else None,
            pushes_per_client_per_s=round(sum(per_client) / len(per_client), 2),
            pushes_per_client_per_s_min_max=[round(min(per_client), 2), round(max(per_client), 2)],
            push_bytes_mean=round(sum(map(len, frames)) / max(1, len(frames))),
            push_bytes_max=max(map(len, frames), default=0),
            post_p50_ms=ms([(e.answered - e.sent) * 1000 for e in recorded if e.answered], 0.5),
            post_p99_ms=ms([(e.answered - e.sent) * 1000 for e in recorded if e.answered], 0.99),
            cpu_ms_per_event_app_gross=round(used[0] * 1000 / n_events, 2),
            cpu_ms_per_event_app_net=round(net[0], 2),
            cpu_ms_per_event_postgres_net=round(net[1], 2),
            cpu_ms_per_event_redis_net=round(net[2], 2),
            cpu_ms_per_event_client_net=round(net[3], 2),
            app_cpu_percent_during_run=round(used[0] / wall * 100, 1),
            app_cpu_percent_per_process=[round(u / wall * 100, 1) for u in each],  # leader first
            idle_cpu_percent=[round(r * 100, 1) for r in idle_rate],  # app, PG, Redis, client
            app_loop_waiting_for_cpu_percent=round(max(waited) / wall * 100, 1),  # the worse process
            app_loop_waiting_for_cpu_percent_per_process=[round(w / wall * 100, 1) for w in waited],
            http_5xx=stats.fivexx(),
            http_refused=stats.refused(),
            transport_failures=dict(stats.failures),
            measured_wall_seconds=round(wall, 1),
        )
    finally:
        stop.set()
        if browser_ctx is not None:
            await browser_ctx.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for each_pool in pools.values():
            each_pool.close()
        for server in [*servers, *engines]:
            server.send_signal(signal.SIGTERM)
        for server in [*servers, *engines]:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        await drop_schema(schema)
    report(args, results)


async def open_browser(port: int, username: str, team: str, out: dict[str, Any]) -> Any:
    """A real supervisor's page: Chromium signs in through the form and opens the team's wallboard;
    ``BROWSER_RECORDER`` notes each push once it is swapped in and about to paint."""
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    browser = await pw.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    await page.add_init_script(BROWSER_RECORDER)
    base = f"http://127.0.0.1:{port}"
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base}/supervisor")
    await page.goto(f"{base}/supervisor?team={team}")
    await page.wait_for_selector("#floor[data-pushed-at]", state="attached", timeout=30_000)
    out["page"] = page

    class Handle:
        async def stop(self) -> None:
            await browser.close()
            await pw.stop()

    return Handle()


def progress(what: str) -> None:
    """Phases on stderr, for a profiler to attach to the server at the right moment."""
    print(f"phase: {what}", file=sys.stderr, flush=True)


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    rows = [
        (
            "load average before / after (1, 5, 15 min)",
            f"{r.get('load_before')} / {r.get('load_after')}",
            "2 cores, shared",
        ),
        (
            "agents / supervisors (whole floor, teams) / movers",
            f"{r.get('agents')} / {r.get('supervisors')} ({r.get('floor_views')}, "
            f"{r.get('watched_teams')}) / {r.get('movers')}",
            "5000 agents",
        ),
        ("sockets open", r.get("sockets_open"), f"{args.supervisors}"),
        (
            "events ok / rate achieved",
            f"{r.get('events_ok')} / {r.get('event_rate_achieved')}/s",
            f"{args.rate:g}/s",
        ),
        ("  presence / arrivals", f"{r.get('presence_events')} / {r.get('arrival_events')}", ""),
        ("event answered -> socket push p50", f"{r.get('p50_ms')} ms", ""),
        ("event answered -> socket push p99", f"{r.get('p99_ms')} ms", "<= 1000 ms"),
        ("event answered -> socket push max", f"{r.get('max_ms')} ms", ""),
        (
            "  (event, socket) pairs / over 1 s / never",
            f"{r.get('observations')} / {r.get('over_1s')} / {r.get('never_shown')}",
            "0 over",
        ),
        (
            "  presence p50 / p99 / max",
            f"{r.get('presence_p50_ms')} / {r.get('presence_p99_ms')} / {r.get('presence_max_ms')} ms",
            "",
        ),
        (
            "  arrival (queue count) p50 / p99 / max",
            f"{r.get('arrival_p50_ms')} / {r.get('arrival_p99_ms')} / {r.get('arrival_max_ms')} ms",
            "",
        ),
    ]
    if args.browser:
        rows.append(
            (
                "event answered -> browser frame p50 / p99 / max",
                f"{r.get('browser_p50_ms')} / {r.get('browser_p99_ms')} / {r.get('browser_max_ms')} ms "
                f"({r.get('browser_observations')} events)",
                "p99 <= 1000 ms",
            )
        )
    rows += [
        ("event request p50 / p99", f"{r.get('post_p50_ms')} / {r.get('post_p99_ms')} ms", ""),
        (
            "pushes per client per second (min, max)",
            f"{r.get('pushes_per_client_per_s')} {r.get('pushes_per_client_per_s_min_max')}",
            "<= 2 (MIN_PUSH_S 0.5 s)",
        ),
        (
            "push size mean / max",
            f"{r.get('push_bytes_mean')} / {r.get('push_bytes_max')} B",
            "(text, before deflate)",
        ),
        (
            "app CPU per event gross / net of idle",
            f"{r.get('cpu_ms_per_event_app_gross')} / {r.get('cpu_ms_per_event_app_net')} ms",
            "",
        ),
        (
            "app CPU during the run (per process, leader first)",
            f"{r.get('app_cpu_percent_during_run')} % of a core {r.get('app_cpu_percent_per_process')}",
            "",
        ),
        (
            "app event loop runnable without a core",
            f"{r.get('app_loop_waiting_for_cpu_percent')} % of wall",
            "0",
        ),
        ("  idle CPU % (app, PG, Redis, client)", f"{r.get('idle_cpu_percent')}", "(sockets held)"),
        (
            "CPU per event net: PostgreSQL / Redis / client",
            f"{r.get('cpu_ms_per_event_postgres_net')} / {r.get('cpu_ms_per_event_redis_net')} / "
            f"{r.get('cpu_ms_per_event_client_net')} ms",
            "",
        ),
        ("5xx by route", json.dumps(r.get("http_5xx")), "none"),
        ("transport failures by route", json.dumps(r.get("transport_failures")), "none"),
    ]
    print_figures(rows, r)


if __name__ == "__main__":
    asyncio.run(main())
