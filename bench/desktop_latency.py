"""The agent loop on the production path (PostgreSQL + Redis, uvicorn as the README runs it).

1,000 agents sign in through the login form (real cookie, CSRF and Origin), load the desktop, hold
its websocket (per-message deflate negotiated as uvicorn and browsers do by default) and go
available through the desktop's status selector. Interactions are POSTed at R per second through
the API. By default every offer is accepted through the desktop's accept button route, the agent
works it for --handle-seconds, wraps up and completes it through the desktop's routes. Measured:

- POST -> offer frame on the chosen agent's socket;
- accept click -> the frame that opens the tab on that agent's screen;
- 5xx (and other refusals) by route; interactions offered later than 1 s (or never);
- CPU per full loop of each app process, of PostgreSQL, of Redis and of this client;
- optionally sign-ins during the run at --logins-per-minute with the product's own argon2 cost
  (shift start), and the sockets one process holds (--max-sockets).

    .venv/bin/python bench/desktop_latency.py --agents 1000 --rate 100 --seconds 15
    .venv/bin/python bench/desktop_latency.py --app-processes 2 ...  # two identical app processes
    .venv/bin/python bench/desktop_latency.py --no-accept ...        # the old offer-only figure

The bench's agents carry argon2 hashes made with a cheap cost, so that signing 1,000 of them in
takes seconds, not the ~3 CPU-minutes the product's cost needs; --logins-per-minute signs in other
users whose hashes have the product's cost. Needs PostgreSQL (BENCH_PG_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/test) and Redis (BENCH_REDIS_URL, default
redis://127.0.0.1:6379/5). Works in its own schema, dropped at the end. Prints figures beside the
DESIGN section 7 / issue #15 targets; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_loop import FORM, AgentDesk, Pool, Run, Stats, form, sign_in  # noqa: E402
from bench.common import (  # noqa: E402
    Conn,
    cpu_seconds,
    load_context,
    percentile,
    postgres_cpu_seconds,
    print_figures,
    runqueue_wait_seconds,
)
from bench.desktop_setup import (  # noqa: E402
    PASSWORD,
    drop_schema,
    engine_leads,
    free_port,
    prepare,
    redis_server_pid,
    rss_mb,
    start_engine,
    start_server,
    wait_ready,
)
from switchboard.gcfreeze import freeze_long_lived, keep_frozen  # noqa: E402

IN_FLIGHT = 32  # concurrent API POSTs per app process


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q), 1)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="interactions POSTed per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the measured run")
    parser.add_argument("--app-processes", type=int, default=1, help="identical app processes (one leads)")
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="the routing engine in a process of its own (switchboard engine); the apps run without one",
    )
    parser.add_argument(
        "--no-accept", action="store_true", help="offers only: nobody accepts (the old figure)"
    )
    parser.add_argument("--handle-seconds", type=float, default=3.0, help="accept -> wrap-up")
    parser.add_argument("--wrap-seconds", type=float, default=1.0, help="wrap-up -> complete")
    parser.add_argument("--click-ms", type=float, default=300.0, help="offer shown -> accept clicked")
    parser.add_argument("--warmup", type=int, default=100, help="interactions before the measured run")
    parser.add_argument("--server-log", type=Path, help="directory for the app processes' output")
    parser.add_argument("--settle-seconds", type=float, default=2.0, help="after sign-in, before anything")
    parser.add_argument("--idle-seconds", type=float, default=4.0, help="idle CPU measured (then subtracted)")
    parser.add_argument(
        "--ws-deflate",
        choices=["default", "on", "off"],
        default="default",
        help="server per-message deflate: the README command's own (default), or forced to compare",
    )
    parser.add_argument("--client-deflate", choices=["on", "off"], default="on", help="the client offers it")
    parser.add_argument(
        "--logins-per-minute",
        type=float,
        default=0,
        help="sign-ins at the product's argon2 cost during the run",
    )
    parser.add_argument(
        "--product-password-cost", action="store_true", help="agents' hashes at the product cost"
    )
    parser.add_argument(
        "--max-sockets", type=int, default=0, help="then open sockets up to this on process 1"
    )
    args = parser.parse_args()

    load_before = load_context()
    schema = f"bench_{os.getpid()}"
    shift_users = int(args.logins_per_minute * args.seconds / 60) + 5
    await prepare(schema, args.agents, shift_users, args.product_password_cost)
    secret = secrets.token_urlsafe(48)
    origin = "https://desk.bench.example"
    ports = [free_port() for _ in range(args.app_processes)]
    no_engine = {"SWITCHBOARD_ROUTING_ENGINE": "false"} if args.engine_process else None
    servers = [
        start_server(p, schema, secret, origin, args.ws_deflate, args.server_log, extra_env=no_engine)
        for p in ports
    ]
    # Measured like the app processes (CPU, run-queue wait), listed after them.
    processes = (
        [*servers, start_engine(schema, secret, origin, args.server_log)] if args.engine_process else servers
    )
    print("server pids:", " ".join(str(p.pid) for p in processes), file=sys.stderr, flush=True)
    run = Run(args, ports)
    results: dict[str, Any] = {
        "app_processes": len(servers),
        "accept": run.accept,
        "ws_deflate_server": args.ws_deflate,
        "ws_deflate_client": args.client_deflate,
        "load_before": load_before,
    }
    stop = asyncio.Event()
    desks: list[AgentDesk] = []
    socket_tasks: list[asyncio.Task[None]] = []
    try:
        roles = [await wait_ready(p) for p in ports]
        for _ in range(100):
            if "leader" in roles or (args.engine_process and await engine_leads()):
                break
            await asyncio.sleep(0.2)
            roles = [await wait_ready(p) for p in ports]
        results["engine_roles"] = [*roles, "engine process"] if args.engine_process else roles

        # Sign-in at shift start: login form, desktop page, socket, "available".
        desks = [AgentDesk(run, ports[i % len(ports)], f"bench{i:05d}") for i in range(args.agents)]
        began = time.perf_counter()
        gate = asyncio.Semaphore(16)

        async def bring_up(desk: AgentDesk) -> None:
            """One agent's sign-in; a refusal is counted (by route, in the figures), not fatal."""
            async with gate:
                try:
                    await desk.sign_in()
                    opened = asyncio.Event()
                    socket_tasks.append(asyncio.create_task(desk.hold_socket(stop, opened)))
                    await asyncio.wait_for(opened.wait(), 60)
                    if desk.open:
                        await desk.go_available()
                except (RuntimeError, TimeoutError, OSError) as exc:
                    run.errors[f"sign-in: {exc!r}"[:200]] += 1

        await asyncio.gather(*(bring_up(d) for d in desks))
        results["sign_in_5xx"] = run.stats.fivexx()
        results["sign_in_refused"] = run.stats.refused()
        run.stats = Stats()
        results["sign_in_seconds"] = round(time.perf_counter() - began, 1)
        progress(f"signed in: {results['sign_in_seconds']} s")
        results["agents_connected"] = sum(d.open for d in desks)
        results["agents_available"] = sum(d.available for d in desks)
        await asyncio.sleep(args.settle_seconds)  # presence commands applied, resync frames settled

        # The API client: a supervisor's Bearer token from the OAuth2 password grant.
        grant = await Conn(ports[0]).request(
            "POST",
            "/api/auth/token",
            form(username="bench-sup", password=PASSWORD),
            {"Content-Type": FORM},
        )
        token = json.loads(grant[2])["access_token"]
        posts: asyncio.Queue[Conn] = asyncio.Queue()
        for port in ports:
            for _ in range(IN_FLIGHT):
                posts.put_nowait(Conn(port, token))

        starts: dict[str, float] = {}
        answered: dict[str, float] = {}
        post_ms: list[float] = []

        async def post(n: int, t0: float) -> None:
            body = json.dumps(
                {
                    "channel": "chat",
                    "queue": "retail",
                    "identity": {"kind": "chat", "value": f"bench-{n}-{uuid.uuid4().hex[:8]}"},
                }
            ).encode()
            conn = await posts.get()
            try:
                status, reply = await conn.post(body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                conn.close()
                run.stats.failures["POST /api/interactions"] += 1
                return
            finally:
                posts.put_nowait(conn)
            done = time.perf_counter()
            run.stats.count("POST /api/interactions", status)
            post_ms.append((done - t0) * 1000)
            if status == 201:
                interaction_id = json.loads(reply)["id"]
                starts[interaction_id], answered[interaction_id] = t0, done

        async def arrivals(count: int, first: int) -> float:
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

        login_ms: list[float] = []

        async def shift_logins(duration: float) -> None:
            """Other agents signing in meanwhile, at the product's argon2 cost."""
            if args.logins_per_minute <= 0:
                return
            began, pending = time.perf_counter(), []

            async def one(n: int) -> None:
                pool_n = Pool(ports[n % len(ports)], 1)
                try:
                    _, took = await sign_in(pool_n, run.stats, origin, f"shift{n:05d}")
                    login_ms.append(took * 1000)
                finally:
                    pool_n.close()

            n = 0
            while time.perf_counter() - began < duration and n < shift_users:
                pending.append(asyncio.create_task(one(n)))
                n += 1
                await asyncio.sleep(60 / args.logins_per_minute)
            await asyncio.gather(*pending, return_exceptions=True)

        loop_tail = args.handle_seconds + args.wrap_seconds + 2 if run.accept else 1.5

        async def drain(patience: float) -> None:
            """Until every posted interaction's loop is done (offered, or completed), or patience ends."""
            deadline = time.perf_counter() + patience
            while time.perf_counter() < deadline:
                done = len(run.completed) if run.accept else len(run.offered.keys() & starts.keys())
                if done >= len(starts):
                    return
                await asyncio.sleep(0.25)

        if args.warmup:
            # Measured warm, as a server that has been up a while; its loops finish before we measure.
            await arrivals(args.warmup, 10_000_000)
            await drain(loop_tail + 20)
            await asyncio.sleep(1)
            results["warmup_interactions"] = len(starts)
            results["warmup_completed"] = len(run.completed)
            starts.clear(), answered.clear(), post_ms.clear(), run.tab_ms.clear(), run.completed.clear()
            run.stats = Stats()
            for desk in desks:
                desk.accepting.clear()
        freeze_long_lived()  # the client's own GC pauses would count in every figure
        client_gc = asyncio.create_task(keep_frozen())

        redis_pid = redis_server_pid()
        pids = [s.pid for s in processes]

        def cpu_now() -> list[float]:
            """App processes..., PostgreSQL, Redis, this client (CPU seconds so far)."""
            redis_cpu = cpu_seconds(redis_pid) if redis_pid else 0.0
            return [
                *(cpu_seconds(p) for p in pids),
                postgres_cpu_seconds(),
                redis_cpu,
                cpu_seconds(os.getpid()),
            ]

        # What 1,000 held sockets cost with nothing arriving (heartbeats, engine timers, reconcile):
        # subtracted to give the CPU of the loops themselves.
        idle0, idle_wall0 = cpu_now(), time.perf_counter()
        await asyncio.sleep(args.idle_seconds)
        idle_rate = [
            (b - a) / (time.perf_counter() - idle_wall0) for a, b in zip(idle0, cpu_now(), strict=True)
        ]
        cpu0 = cpu_now()
        waited0 = [runqueue_wait_seconds(p) for p in pids]
        wall0 = time.perf_counter()
        progress("measuring")
        total = int(args.rate * args.seconds)
        logins = asyncio.create_task(shift_logins(args.seconds))
        achieved = await arrivals(total, 0)
        await drain(loop_tail + 10)  # every measured loop finishes (or is given up on)
        await logins
        wall = time.perf_counter() - wall0
        # A loaded machine shows here: the event loop was runnable but had no core.
        results["app_loop_waiting_for_cpu_percent"] = [
            round((runqueue_wait_seconds(p) - w) / wall * 100, 1) for p, w in zip(pids, waited0, strict=True)
        ]
        progress("measured")
        loops = len(run.completed) if run.accept else len(starts)
        per = 1000 / max(1, loops)
        used = [b - a for a, b in zip(cpu0, cpu_now(), strict=True)]
        net = [round(max(0.0, u - r * wall) * per, 2) for u, r in zip(used, idle_rate, strict=True)]
        n = len(pids)
        results.update(
            cpu_ms_per_loop_app=net[:n],
            cpu_ms_per_loop_postgres=net[n],
            cpu_ms_per_loop_redis=net[n + 1],
            cpu_ms_per_loop_client=net[n + 2],
            cpu_ms_per_loop_gross_app=[round(u * per, 2) for u in used[:n]],
            # Whatever got done: the figure that still means something when loops did not finish.
            cpu_ms_per_posted_gross=[round(u * 1000 / max(1, len(starts)), 2) for u in used],
            idle_cpu_percent=[round(r * 100, 1) for r in idle_rate],  # apps..., postgres, redis, client
            measured_wall_seconds=round(wall, 1),
        )
        client_gc.cancel()

        latencies = [(run.offered[i] - starts[i]) * 1000 for i in starts if i in run.offered]
        routed = [max(0.0, run.offered[i] - answered[i]) * 1000 for i in answered if i in run.offered]
        late = sum(1 for i in starts if i not in run.offered or run.offered[i] - starts[i] > 1.0)
        results.update(
            posted=len(starts),
            post_rate_achieved=round(achieved, 1),
            offers_seen=len(latencies),
            offer_p50_ms=ms(latencies, 0.50),
            offer_p99_ms=ms(latencies, 0.99),
            offer_max_ms=round(max(latencies), 1) if latencies else None,
            offered_later_than_1s=late,
            post_p50_ms=ms(post_ms, 0.50),
            post_p99_ms=ms(post_ms, 0.99),
            response_to_offer_p50_ms=ms(routed, 0.50),
            response_to_offer_p99_ms=ms(routed, 0.99),
            accepted_tabs=len(run.tab_ms),
            accept_to_tab_p50_ms=ms(run.tab_ms, 0.50),
            accept_to_tab_p99_ms=ms(run.tab_ms, 0.99),
            accept_to_tab_max_ms=round(max(run.tab_ms), 1) if run.tab_ms else None,
            loops_completed=len(run.completed),
            http_5xx=run.stats.fivexx(),
            requests_by_route=dict(Counter(route for route, _ in run.stats.by_route.elements())),
            http_refused=run.stats.refused(),
            transport_failures=dict(run.stats.failures),
            client_errors=dict(run.errors),
            logins_during_run=len(login_ms),
            login_p50_ms=ms(login_ms, 0.50),
            login_p99_ms=ms(login_ms, 0.99),
            mean_frame_bytes=round(sum(d.bytes for d in desks) / max(1, sum(d.frames for d in desks))),
            load_after=load_context(),
        )

        if args.max_sockets:
            await more_sockets(run, desks, ports[0], args.max_sockets, stop, results, servers[0].pid)
    finally:
        stop.set()
        for task in socket_tasks:
            task.cancel()
        await asyncio.gather(*socket_tasks, return_exceptions=True)
        for pool in run.pools.values():
            pool.close()
        for server in processes:
            server.send_signal(signal.SIGTERM)
        for server in processes:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        await drop_schema(schema)

    report(args, results)


async def more_sockets(
    run: Run,
    desks: list[AgentDesk],
    port: int,
    target: int,
    stop: asyncio.Event,
    results: dict[str, Any],
    pid: int,
) -> None:
    """As many sockets as asked on one app process (the agents' sessions reused), heartbeats flowing."""
    held = [d for d in desks if d.port == port]
    extra: list[AgentDesk] = []
    tasks = []
    for n in range(max(0, target - len(held))):
        twin = AgentDesk(run, port, held[n % len(held)].username)
        twin.session, twin.csrf = held[n % len(held)].session, held[n % len(held)].csrf
        extra.append(twin)
        tasks.append(asyncio.create_task(twin.hold_socket(stop, asyncio.Event())))
        if n % 50 == 49:
            await asyncio.sleep(0.05)  # do not stampede the accept queue
    await asyncio.sleep(15)
    everyone = held + extra
    results.update(sockets_open=sum(d.open for d in everyone), server_rss_mb=round(rss_mb(pid), 1))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def progress(what: str) -> None:
    """Phases on stderr, for a profiler to attach to the servers at the right moment."""
    print(f"phase: {what}", file=sys.stderr, flush=True)


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    accept = r.get("accept")
    rows = [
        (
            "load average before / after (1, 5, 15 min)",
            f"{r.get('load_before')} / {r.get('load_after')}",
            "2 cores",
        ),
        ("app processes (engine role)", f"{r.get('app_processes')} {r.get('engine_roles')}", "1 and 2"),
        (
            "agents signed in / sockets / available",
            f"{args.agents} / {r.get('agents_connected')} / "
            f"{r.get('agents_available')} in {r.get('sign_in_seconds')} s",
            f"{args.agents}",
        ),
        (
            "interactions posted / rate achieved",
            f"{r.get('posted')} / {r.get('post_rate_achieved')}/s",
            f"{args.rate:g}/s",
        ),
        ("POST -> offer frame p50", f"{r.get('offer_p50_ms')} ms", "<= 10 ms"),
        ("POST -> offer frame p99", f"{r.get('offer_p99_ms')} ms", "<= 50 ms"),
        ("offered later than 1 s (or never)", r.get("offered_later_than_1s"), "0"),
        ("POST latency p50 / p99", f"{r.get('post_p50_ms')} / {r.get('post_p99_ms')} ms", ""),
        (
            "POST response -> offer p50 / p99",
            f"{r.get('response_to_offer_p50_ms')} / {r.get('response_to_offer_p99_ms')} ms",
            "(routing + fan-out)",
        ),
    ]
    if accept:
        rows += [
            ("accept click -> tab p50", f"{r.get('accept_to_tab_p50_ms')} ms", "<= 20 ms"),
            ("accept click -> tab p99", f"{r.get('accept_to_tab_p99_ms')} ms", "<= 100 ms"),
            (
                "tabs opened / loops completed",
                f"{r.get('accepted_tabs')} / {r.get('loops_completed')}",
                "all posted",
            ),
        ]
    rows += [
        ("5xx by route", json.dumps(r.get("http_5xx")), "none"),
        ("5xx while signing in, by route", json.dumps(r.get("sign_in_5xx")), "none"),
        (
            "other refusals by route",
            json.dumps(
                {k: v for k, v in (r.get("http_refused") or {}).items() if int(k.rsplit(" ", 1)[1]) < 500}
            ),
            "",
        ),
        ("transport failures by route", json.dumps(r.get("transport_failures")), "none"),
        ("CPU per full loop: app processes", f"{r.get('cpu_ms_per_loop_app')} ms", "(net of idle)"),
        (
            "app event loop runnable but without a core",
            f"{r.get('app_loop_waiting_for_cpu_percent')} % of wall",
            "0",
        ),
        ("  idle CPU % (apps, PG, Redis, client)", f"{r.get('idle_cpu_percent')}", "(sockets held)"),
        (
            "CPU per full loop: PostgreSQL / Redis",
            f"{r.get('cpu_ms_per_loop_postgres')} / {r.get('cpu_ms_per_loop_redis')} ms",
            "(measured)",
        ),
        ("CPU per full loop: this client", f"{r.get('cpu_ms_per_loop_client')} ms", "(shares the cores)"),
        ("CPU per posted, gross (apps, PG, Redis, client)", f"{r.get('cpu_ms_per_posted_gross')} ms", ""),
        ("mean frame size", f"{r.get('mean_frame_bytes')} B", "<= 20 KB"),
    ]
    if args.logins_per_minute:
        rows.append(
            (
                "sign-ins during the run / p50 / p99",
                f"{r.get('logins_during_run')} / {r.get('login_p50_ms')} / {r.get('login_p99_ms')} ms",
                f"{args.logins_per_minute:g}/min",
            )
        )
    if args.max_sockets:
        rows.append(
            (
                "sockets held, one process / RSS",
                f"{r.get('sockets_open')} / {r.get('server_rss_mb')} MB",
                f">= 5000 (asked {args.max_sockets})",
            )
        )
    print_figures(rows, r)


if __name__ == "__main__":
    asyncio.run(main())
