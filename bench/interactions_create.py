"""Interaction-create throughput through the API (DESIGN §7: >= 1,000/s, p99 <= 50 ms).

One real uvicorn app process (uvloop + httptools, routing engine off) on PostgreSQL; N concurrent
keep-alive clients POST new interactions for S seconds, as fast as the server answers. The mix:
channels chat / email / voice in turn, and half the contacts from customers that already exist
(created in an unmeasured warm-up), half from brand-new identities.

    .venv/bin/python bench/interactions_create.py --clients 32 --seconds 15

The clients speak minimal HTTP/1.1 over asyncio streams (no httpx): the client shares the two cores
with the server and the database, and httpx's per-request CPU would otherwise cap the figure.
Needs PostgreSQL (BENCH_PG_URL) and Redis (BENCH_REDIS_URL, default DB 5); own schema, dropped
after. The last stdout line is one JSON object. Reuses bench/desktop_setup.py's helpers.
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
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (  # noqa: E402
    Conn,
    cpu_seconds,
    percentile,
    postgres_cpu_seconds,
    print_figures,
)
from bench.desktop_setup import PASSWORD, PG_URL, free_port, prepare, rss_mb, start_server, wait_ready  # noqa: E402
from switchboard.db import Database  # noqa: E402

CHANNELS = (("chat", "chat"), ("email", "email"), ("voice", "phone"))


def identity(kind: str, n: int) -> str:
    if kind == "email":
        return f"bench.customer{n}@example.com"
    if kind == "phone":
        return f"+447911{n % 1_000_000:06d}"
    return f"bench-visitor-{n}"


def payload(n: int, existing: int, new_base: int) -> tuple[bytes, bool]:
    """The n-th request: channel by turn, an existing customer on even n, a new one on odd n."""
    channel, kind = CHANNELS[n % 3]
    reuse = existing > 0 and n % 2 == 0
    who = (n // 2) % existing if reuse else new_base + n
    body = {"channel": channel, "queue": "retail", "identity": {"kind": kind, "value": identity(kind, who)}}
    return json.dumps(body).encode(), reuse


async def run_load(
    port: int, token: str, clients: int, seconds: float, existing: int, new_base: int, counter: list[int]
) -> dict[str, float | int]:
    latencies: list[float] = []
    errors: dict[int, int] = {}
    conns = [Conn(port, token) for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        while time.perf_counter() < deadline:
            n = counter[0]
            counter[0] += 1
            body, _ = payload(n, existing, new_base)
            t0 = time.perf_counter()
            try:
                status, _resp = await conn.post(body)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                errors[0] = errors.get(0, 0) + 1
                conn.close()
                conn.writer = None
                continue
            if status == 201:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors[status] = errors.get(status, 0) + 1

    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    elapsed = time.perf_counter() - began
    return {
        "created": len(latencies),
        "errors": sum(errors.values()),
        "error_statuses": json.dumps(errors),
        "creates_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies) if latencies else float("nan"), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--existing", type=int, default=600, help="customers created in the warm-up")
    args = parser.parse_args()

    schema = f"bench_create_{os.getpid()}"
    await prepare(schema, 1, 0, False)
    port = free_port()
    # As before this round: the API alone (engine off), uvloop + httptools, no access log.
    server = start_server(
        port,
        schema,
        secrets.token_urlsafe(48),
        "http://bench.local",
        "off",
        extra_env={"SWITCHBOARD_ROUTING_ENGINE": "false", "SWITCHBOARD_ENVIRONMENT": "test"},
        extra_args=("--log-level", "warning", "--loop", "uvloop", "--http", "httptools", "--backlog", "4096"),
    )
    print("server pid:", server.pid, file=sys.stderr, flush=True)
    results: dict[str, float | int | str] = {"clients": args.clients, "seconds": args.seconds}
    try:
        await wait_ready(port)
        grant = await Conn(port).request(
            "POST",
            "/api/auth/token",
            f"username=bench-sup&password={PASSWORD}".encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        supervisor = json.loads(grant[2])["access_token"]
        # Warm-up (not measured): the customers later requests reuse, and a warm process.
        counter = [0]
        conns = [Conn(port, supervisor) for _ in range(8)]

        async def seed(i: int) -> None:
            for who in range(i, args.existing, len(conns)):
                channel, kind = CHANNELS[who % 3]
                ident = {"kind": kind, "value": identity(kind, who)}
                body = {"channel": channel, "queue": "retail", "identity": ident}
                status, resp = await conns[i].post(json.dumps(body).encode())
                if status != 201:
                    raise SystemExit(f"warm-up POST failed: {status} {resp[:300]!r}")

        await asyncio.gather(*(seed(i) for i in range(len(conns))))
        for c in conns:
            c.close()
        print(f"warm-up: {args.existing} customers created", file=sys.stderr, flush=True)
        # CPU per create, beside the rate: on a shared two-core machine the rate moves with other
        # load, the server's CPU per request much less.
        cpu0, pg0 = cpu_seconds(server.pid), postgres_cpu_seconds()
        results.update(
            await run_load(port, supervisor, args.clients, args.seconds, args.existing, 10**6, counter)
        )
        created = max(1, int(results["created"]))
        results["server_cpu_ms_per_create"] = round((cpu_seconds(server.pid) - cpu0) * 1000 / created, 2)
        results["postgres_cpu_ms_per_create"] = round((postgres_cpu_seconds() - pg0) * 1000 / created, 2)
        results["load_average_1m"] = os.getloadavg()[0]
        results["server_rss_mb"] = round(rss_mb(server.pid), 1)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        db = Database(PG_URL)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await db.dispose()

    rows = [
        ("interactions created (201)", results.get("created"), ""),
        ("errors (non-201 / dropped)", f"{results.get('errors')} {results.get('error_statuses')}", "0"),
        ("creates per second", results.get("creates_per_s"), ">= 1000/s"),
        ("latency p50", f"{results.get('p50_ms')} ms", ""),
        ("latency p99", f"{results.get('p99_ms')} ms", "<= 50 ms"),
        ("latency max", f"{results.get('max_ms')} ms", ""),
        (
            "server CPU per create",
            f"{results.get('server_cpu_ms_per_create')} ms",
            "<= 2 ms (1000/s, 2 cores)",
        ),
        ("postgres CPU per create (host)", f"{results.get('postgres_cpu_ms_per_create')} ms", ""),
        ("server RSS", f"{results.get('server_rss_mb')} MB", ""),
    ]
    print_figures(rows, results)


if __name__ == "__main__":
    asyncio.run(main())
