"""Set-up of the desktop bench: its schema, data and app processes (as the README runs them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from sqlalchemy import insert, text

from bench.agent_loop import PASSWORD
from bench.common import Conn, retail_queue_row
from switchboard.auth.models import Role, User
from switchboard.db import Database, utcnow
from switchboard.redis import rkey
from switchboard.security import hash_password
from workforce.models import Agent, Presence, Queue, QueueMember

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")


# ------------------------------------------------------------------ data


async def migrate(schema: str) -> None:
    """The bench's own schema, at the migrations' head (as scripts/setup makes the product's)."""
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


async def prepare(schema: str, agents: int, shift_users: int, product_cost: bool) -> None:
    await migrate(schema)
    # Hash once, reuse (as the demo seed does). The server verifies each login with the cost its
    # stored hash names.
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    product = hash_password(PASSWORD)
    db = Database(PG_URL, schema=schema)
    now = utcnow()
    queue_id = uuid.uuid4()

    def user(name: str, role: Role, password_hash: str) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "username": name,
            "display_name": name.title(),
            "role": role,
            "password_hash": password_hash,
            "is_active": True,
            "created_at": now,
        }

    agent_users = [
        user(f"bench{n:05d}", Role.AGENT, product if product_cost else cheap) for n in range(agents)
    ]
    others = [user("bench-sup", Role.SUPERVISOR, cheap)]
    others += [user(f"shift{n:05d}", Role.AGENT, product) for n in range(shift_users)]
    async with db.sessionmaker() as s:
        await s.execute(
            insert(Queue),
            [retail_queue_row(queue_id, wrap_up_seconds=30, settings={}, created_at=now)],
        )
        await s.execute(insert(User), [*agent_users, *others])
        agent_rows = [
            {
                "id": uuid.uuid4(),
                "user_id": u["id"],
                "display_name": u["display_name"],
                "languages": ["en"],
                "teams": [],
                "capacity_units": 100,
                "channel_max": {"voice": 1, "chat": 3, "ticket": 5, "email": 5},
                "presence": Presence.OFFLINE,  # they go available through the desktop
                "presence_since": now,
                "idle_since": now,
                "created_at": now,
            }
            for u in agent_users
        ]
        await s.execute(insert(Agent), agent_rows)
        await s.execute(
            insert(QueueMember),
            [{"id": uuid.uuid4(), "queue_id": queue_id, "agent_id": a["id"]} for a in agent_rows],
        )
        await s.commit()
    await db.dispose()


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def production_env(
    schema: str, secret: str, origin: str, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The settings the README's Production section gives every process, in the bench's schema."""
    return {
        **os.environ,
        "SWITCHBOARD_ENVIRONMENT": "production",
        "SWITCHBOARD_DATABASE_URL": PG_URL,
        "SWITCHBOARD_DATABASE_SCHEMA": schema,
        "SWITCHBOARD_REDIS_URL": REDIS_URL,
        "SWITCHBOARD_SECRET_KEY": secret,
        "SWITCHBOARD_COOKIE_SECURE": "true",
        "SWITCHBOARD_ALLOWED_ORIGINS": json.dumps([origin]),
        **(extra_env or {}),  # the create bench measures the API alone (engine off)
    }


async def engine_leads() -> bool:
    """A host (e.g. the engine process) holds the routing lease."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return await client.get(rkey("engine", "default", "lease")) is not None
    finally:
        await client.aclose()


def start_engine(schema: str, secret: str, origin: str, log_dir: Path | None = None) -> subprocess.Popen:
    """``switchboard engine``: a routing-engine host in a process of its own (no web server)."""
    out: Any = subprocess.DEVNULL
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        out = (log_dir / "engine.log").open("w")
    env = production_env(schema, secret, origin)
    command = [sys.executable, "-m", "switchboard", "engine"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_server(
    port: int,
    schema: str,
    secret: str,
    origin: str,
    deflate: str,
    log_dir: Path | None = None,
    *,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen:
    """One app process as the README's Production section runs it: its uvicorn command line and
    its settings (production, a random secret, secure cookies, the desktop's origin); nothing else."""
    env = production_env(schema, secret, origin, extra_env)
    command = [sys.executable, "-m", "uvicorn", "--factory", "switchboard.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += extra_args
    if deflate != "default":  # only to measure the choice; the README's command decides otherwise
        command += ["--ws-per-message-deflate", "true" if deflate == "on" else "false"]
    out: Any = subprocess.DEVNULL
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        out = (log_dir / f"app-{port}.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_ready(port: int) -> str:
    """The process's routing-engine role once /readyz answers 200."""
    conn = Conn(port)
    try:
        for _ in range(300):
            try:
                status, _, body = await conn.request("GET", "/readyz")
                if status == 200:
                    return str(json.loads(body).get("routing_engine"))
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                conn.close()
            await asyncio.sleep(0.2)
    finally:
        conn.close()
    raise SystemExit(f"app on port {port} never became ready")


def redis_server_pid() -> int | None:
    port = REDIS_URL.rsplit(":", 1)[-1].split("/", 1)[0]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "redis-server" and f":{port}" in (
                    entry / "cmdline"
                ).read_text():
                    return int(entry.name)
    return None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drop_schema(schema: str) -> None:
    db = Database(PG_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    await db.dispose()
