"""Desktop latency and socket capacity, on the production path (PostgreSQL + Redis, real uvicorn).

1. N agents hold desktop websockets; interactions are POSTed at R per second; we measure the time
   from the start of each POST to the offer frame arriving on the chosen agent's socket.
2. We then open sockets up to --max-sockets on one app process with heartbeats (pings) flowing,
   and check they all stay open and answered.

    .venv/bin/python bench/desktop_latency.py --agents 1000 --rate 100 --seconds 10 --max-sockets 5000

Needs PostgreSQL (BENCH_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/9). Works in its own schema, dropped at the end.
Prints figures beside the DESIGN §7 targets; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import websockets
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Conn, cpu_seconds, postgres_cpu_seconds, print_figures  # noqa: E402
from routing.models import Agent, Presence, Queue, QueueMember  # noqa: E402
from switchboard.auth.models import Role, User  # noqa: E402
from switchboard.auth.service import token_for  # noqa: E402
from switchboard.db import Database, utcnow  # noqa: E402
from switchboard.gcfreeze import freeze_long_lived, keep_frozen  # noqa: E402
from switchboard.settings import Settings  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
ORIGIN = "http://bench.local"
IN_FLIGHT = 32  # concurrent POSTs per app process
OFFER = re.compile(r'class="offer-toast" data-interaction-id="([0-9a-f-]{36})"')


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def prepare(schema: str, agents: int, settings: Settings) -> tuple[list[str], str]:
    db = Database(PG_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    await db.dispose()
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = PG_URL
    cfg.attributes["schema"] = schema
    await asyncio.to_thread(command.upgrade, cfg, "head")

    db = Database(PG_URL, schema=schema)
    now = utcnow()
    queue_id, sup_id = uuid.uuid4(), uuid.uuid4()
    users = [
        {
            "id": uuid.uuid4(),
            "username": f"bench{n:05d}",
            "display_name": f"Bench {n}",
            "role": Role.AGENT,
            "password_hash": "x",
            "is_active": True,
            "created_at": now,
        }
        for n in range(agents)
    ]
    async with db.sessionmaker() as s:
        await s.execute(
            insert(Queue),
            [
                {
                    "id": queue_id,
                    "name": "retail",
                    "display_name": "Retail",
                    "channels": ["chat"],
                    "sl_target_percent": 80,
                    "sl_threshold_seconds": 20,
                    "strategy": "longest_idle",
                    "required_skills": {},
                    "wrap_up_seconds": 30,
                    "settings": {},
                    "created_at": now,
                }
            ],
        )
        await s.execute(
            insert(User),
            [
                *users,
                {
                    "id": sup_id,
                    "username": "bench-sup",
                    "display_name": "Sup",
                    "role": Role.SUPERVISOR,
                    "password_hash": "x",
                    "is_active": True,
                    "created_at": now,
                },
            ],
        )
        agent_rows = [
            {
                "id": uuid.uuid4(),
                "user_id": u["id"],
                "display_name": u["display_name"],
                "languages": ["en"],
                "teams": [],
                "capacity_units": 100,
                "channel_max": {"voice": 1, "chat": 3, "ticket": 5, "email": 5},
                "presence": Presence.AVAILABLE,
                "presence_since": now,
                "idle_since": now,
                "created_at": now,
            }
            for u in users
        ]
        await s.execute(insert(Agent), agent_rows)
        await s.execute(
            insert(QueueMember),
            [{"id": uuid.uuid4(), "queue_id": queue_id, "agent_id": a["id"]} for a in agent_rows],
        )
        await s.commit()
    await db.dispose()

    class U:  # token_for only reads id and role
        def __init__(self, id_: uuid.UUID, role: Role) -> None:
            self.id, self.role = id_, role

    tokens = [token_for(U(u["id"], Role.AGENT), settings)[0] for u in users]
    return tokens, token_for(U(sup_id, Role.SUPERVISOR), settings)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, schema: str, settings: Settings, *, engine: bool = True) -> subprocess.Popen:
    env = {
        **os.environ,
        "SWITCHBOARD_ROUTING_ENGINE": "true" if engine else "false",
        "SWITCHBOARD_DATABASE_URL": PG_URL,
        "SWITCHBOARD_DATABASE_SCHEMA": schema,
        "SWITCHBOARD_REDIS_URL": REDIS_URL,
        "SWITCHBOARD_SECRET_KEY": settings.secret_key,
        "SWITCHBOARD_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
        "SWITCHBOARD_ENVIRONMENT": "test",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "switchboard.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws-per-message-deflate",
            "false",
            # uvloop + httptools explicitly (uvicorn[standard]); a deep accept queue so a burst of
            # handshakes waits in the kernel instead of being refused (somaxconn caps it).
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--backlog",
            "4096",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Desk:
    """One agent desktop socket: records offer frames and answers to pings."""

    def __init__(self, url: str, token: str, arrivals: dict[str, float]) -> None:
        self.url, self.token, self.arrivals = url, token, arrivals
        self.frames = self.pongs = self.bytes = 0
        self.open = False
        self.ws = None

    async def run(self, stop: asyncio.Event, ping_every: float) -> None:
        async with websockets.connect(
            self.url,
            additional_headers={"Cookie": f"sb_session={self.token}", "Origin": ORIGIN},
            compression=None,
            max_size=2**20,
            open_timeout=60,
        ) as ws:
            self.ws, self.open = ws, True
            pinger = asyncio.create_task(self._ping(ws, stop, ping_every))
            try:
                while not stop.is_set():
                    try:
                        frame = await asyncio.wait_for(ws.recv(), timeout=1.0)
                    except TimeoutError:
                        continue
                    now = time.perf_counter()
                    self.frames += 1
                    self.bytes += len(frame)
                    if 'id="ws-status"' in frame:  # the heartbeat answer fragment
                        self.pongs += 1
                    for interaction_id in OFFER.findall(frame):
                        self.arrivals.setdefault(interaction_id, now)
            except websockets.ConnectionClosed:
                pass
            finally:
                self.open = False
                pinger.cancel()

    async def _ping(self, ws, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            await asyncio.sleep(every)
            await ws.send(json.dumps({"type": "ping"}))


async def wait_ready(client: httpx.AsyncClient, *, leader: bool) -> None:
    for _ in range(300):
        try:
            r = await client.get("/readyz")
            if r.status_code == 200 and (not leader or r.json().get("routing_engine") == "leader"):
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"{client.base_url} never became ready")


async def open_desks(
    urls: list[str], tokens: list[str], arrivals, stop, ping_every: float, count: int
) -> list[Desk]:
    desks = [Desk(urls[i % len(urls)], tokens[i % len(tokens)], arrivals) for i in range(count)]
    tasks = []
    for i, desk in enumerate(desks):
        tasks.append(asyncio.create_task(desk.run(stop, ping_every)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not stampede the accept queue
    deadline = time.monotonic() + 120
    while sum(d.open for d in desks) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - polling many
        await asyncio.sleep(0.2)
    return desks


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-sockets", type=int, default=5000)
    parser.add_argument(
        "--warmup", type=int, default=100, help="interactions posted (at --rate) before the measured run"
    )
    parser.add_argument(
        "--app-processes",
        type=int,
        default=0,
        help="0: one process does everything; N: engine leader alone + N API/socket processes",
    )
    args = parser.parse_args()

    settings = Settings(secret_key="bench-secret-" + "z" * 40, environment="test")
    schema = f"bench_{os.getpid()}"
    tokens, supervisor = await prepare(schema, args.agents, settings)
    # One process: engine, API and sockets together. --app-processes N: the production shape, the
    # engine leader alone in its own process and N processes serving the API and the sockets.
    if args.app_processes:
        engine_port = free_port()
        engine_proc = start_server(engine_port, schema, settings, engine=True)
        ports = [free_port() for _ in range(args.app_processes)]
        apps = [start_server(p, schema, settings, engine=False) for p in ports]
        servers = [engine_proc, *apps]
    else:
        engine_port = free_port()
        ports = [engine_port]
        apps = servers = [start_server(engine_port, schema, settings)]
    print("server pids:", " ".join(str(p.pid) for p in servers), file=sys.stderr, flush=True)
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    ws_urls = [f"ws://127.0.0.1:{p}/desktop/ws" for p in ports]
    results: dict[str, float | int | str] = {
        "app_processes": len(apps),
        "engine_own_process": bool(args.app_processes),
    }
    # POSTs over minimal keep-alive HTTP/1.1 connections (IN_FLIGHT per app process): httpx's
    # per-request CPU was a large share of the two cores the server also runs on.
    connections: asyncio.Queue[Conn] = asyncio.Queue()
    for port in ports:
        for _ in range(IN_FLIGHT):
            connections.put_nowait(Conn(port, supervisor))
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(lambda: [conn.close() for conn in list(connections._queue)])  # noqa: SLF001
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine_port}", timeout=5) as probe:
                await wait_ready(probe, leader=True)
            for base in bases:
                async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                    await wait_ready(probe, leader=False)
            arrivals: dict[str, float] = {}
            stop = asyncio.Event()
            desks = await open_desks(ws_urls, tokens, arrivals, stop, 10.0, args.agents)
            connected = sum(d.open for d in desks)
            await asyncio.sleep(2)  # resync frames settle

            starts: dict[str, float] = {}
            answered: dict[str, float] = {}  # when the POST's response arrived
            post_ms: list[float] = []
            errors = 0

            async def post(n: int, t0: float) -> None:
                """t0 is the scheduled start: time waiting for a free connection counts too."""
                nonlocal errors
                body = json.dumps(
                    {
                        "channel": "chat",
                        "queue": "retail",
                        "identity": {"kind": "chat", "value": f"bench-{n}-{uuid.uuid4().hex[:8]}"},
                    }
                ).encode()
                conn = await connections.get()
                try:
                    status, reply = await conn.post(body)
                except (OSError, ConnectionError, asyncio.IncompleteReadError):
                    conn.close()  # the server dropped it: count it, reconnect on next use
                    errors += 1
                    return
                finally:
                    connections.put_nowait(conn)
                done = time.perf_counter()
                post_ms.append((done - t0) * 1000)
                if status == 201:
                    interaction_id = json.loads(reply)["id"]
                    starts[interaction_id], answered[interaction_id] = t0, done
                else:
                    errors += 1

            async def run(count: int, first: int) -> float:
                """POST ``count`` interactions at the asked rate; returns the rate achieved."""
                began = time.perf_counter()
                pending = []
                for k in range(count):
                    target = began + k / args.rate
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    pending.append(asyncio.create_task(post(first + k, target)))
                await asyncio.gather(*pending)
                return count / (time.perf_counter() - began)

            if args.warmup:
                # Measured warm, as a server that has been up a while: every pooled connection has
                # prepared its statements and every template is compiled. Not in the figures.
                await run(args.warmup, 10_000_000)
                await asyncio.sleep(1.5)
                results["warmup_interactions"] = len(starts)
                starts.clear(), answered.clear(), post_ms.clear()
                errors = 0
            # The client is the measuring instrument: its own GC pauses (8-20 ms every second or
            # two with 1,000+ sockets, measured) would count in every figure. Freeze its heap as
            # the server does (switchboard.gcfreeze).
            freeze_long_lived()
            client_gc = asyncio.create_task(keep_frozen())
            total = int(args.rate * args.seconds)
            cpu_before = [cpu_seconds(p.pid) for p in servers], postgres_cpu_seconds()
            achieved = await run(total, 0)
            await asyncio.sleep(3)  # last offers land
            client_gc.cancel()
            # CPU per interaction: each server process (engine first in the split shape) and PostgreSQL.
            per = 1000 / max(1, len(starts))
            server_cpu = [
                round((cpu_seconds(p.pid) - b) * per, 2) for p, b in zip(servers, cpu_before[0], strict=True)
            ]
            results.update(
                server_cpu_ms_per_interaction=server_cpu,
                postgres_cpu_ms_per_interaction=round((postgres_cpu_seconds() - cpu_before[1]) * per, 2),
            )
            latencies = [(arrivals[i] - starts[i]) * 1000 for i in starts if i in arrivals]
            # Routing + fan-out alone: from the POST's response (committed, command sent) to the frame.
            routed = [max(0.0, arrivals[i] - answered[i]) * 1000 for i in answered if i in arrivals]
            results.update(
                agents_connected=connected,
                posted=len(starts),
                post_errors=errors,
                post_rate_achieved=round(achieved, 1),
                offers_seen=len(latencies),
                offer_p50_ms=round(percentile(latencies, 0.50), 2),
                offer_p99_ms=round(percentile(latencies, 0.99), 2),
                offer_max_ms=round(max(latencies) if latencies else float("nan"), 2),
                post_p50_ms=round(percentile(post_ms, 0.50), 2),
                post_p99_ms=round(percentile(post_ms, 0.99), 2),
                response_to_offer_p50_ms=round(percentile(routed, 0.50), 2),
                response_to_offer_p99_ms=round(percentile(routed, 0.99), 2),
            )

            # Phase 2: as many sockets as asked on ONE app process (the first), heartbeats flowing.
            first = [d for d in desks if d.url == ws_urls[0]]
            extra = max(0, args.max_sockets - len(first))
            more = await open_desks(ws_urls[:1], tokens, arrivals, stop, 5.0, extra)
            everyone = first + more
            before = sum(d.pongs for d in everyone)
            await asyncio.sleep(12)
            alive = sum(d.open for d in everyone)
            answered = sum(1 for d in everyone if d.pongs > 0)
            results.update(
                sockets_open=alive,
                sockets_answering_pings=answered,
                pongs_in_12s=sum(d.pongs for d in everyone) - before,
                server_rss_mb=round(rss_mb(apps[0].pid), 1),
                mean_frame_bytes=round(
                    sum(d.bytes for d in everyone) / max(1, sum(d.frames for d in everyone))
                ),
            )
            stop.set()
            await asyncio.sleep(1.5)
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        db = Database(PG_URL)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await db.dispose()

    rows = [
        ("agent sockets connected", results.get("agents_connected"), f"{args.agents}"),
        (
            "interactions posted / rate achieved",
            f"{results.get('posted')} / {results.get('post_rate_achieved')}/s",
            f"{args.rate:g}/s",
        ),
        ("offers seen on sockets", results.get("offers_seen"), "all posted"),
        ("POST -> offer frame p50", f"{results.get('offer_p50_ms')} ms", "<= 10 ms"),
        ("POST -> offer frame p99", f"{results.get('offer_p99_ms')} ms", "<= 50 ms"),
        ("POST latency p50 / p99", f"{results.get('post_p50_ms')} / {results.get('post_p99_ms')} ms", ""),
        (
            "POST response -> offer p50 / p99",
            f"{results.get('response_to_offer_p50_ms')} / {results.get('response_to_offer_p99_ms')} ms",
            "(routing + fan-out)",
        ),
        (
            "CPU per interaction: servers / PostgreSQL",
            f"{results.get('server_cpu_ms_per_interaction')} / "
            f"{results.get('postgres_cpu_ms_per_interaction')} ms",
            "(engine first when split)",
        ),
        ("sockets held, one process", results.get("sockets_open"), f">= 5000 (asked {args.max_sockets})"),
        ("sockets answering pings", results.get("sockets_answering_pings"), "all"),
        ("server RSS", f"{results.get('server_rss_mb')} MB", ""),
        ("mean frame size", f"{results.get('mean_frame_bytes')} B", "<= 20 KB"),
    ]
    print_figures(rows, results)


if __name__ == "__main__":
    asyncio.run(main())
