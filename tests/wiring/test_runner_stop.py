"""``switchboard run`` as a real process tree (worker, SMTP listener, dialer, app, demo traffic):
SIGTERM to the runner, or Ctrl-C to its terminal's process group, stops every child within seconds
and leaves no process behind; and the traffic generator went first, so none of its chats or calls
is left queued for agents on the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from customers.timeline_models import TimelineEvent
from interactions.models import Interaction
from switchboard.cli import migrate
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import chat_floor
from tests.helpers import eventually
from tests.live_app import free_port

# The generator's customers take up to demo.traffic.LEAVE_SECONDS to leave, then the rest stop
# together (CI's two cores make an RQ worker's warm shutdown take seconds on its own).
STOP_WITHIN_S = 20.0


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc: no dependency for one walk of the tree)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _command_lines(pids: set[int]) -> set[bytes]:
    return {Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in pids}


def _start_runner(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "switchboard", "run"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives a foreground job
    )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _waiting_contacts(db: Database) -> int:
    async with db.sessionmaker() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(Interaction)
            .where(Interaction.channel.in_(["chat", "voice"]), Interaction.state.in_(["queued", "offered"]))
        )
        await s.commit()
    return int(count or 0)


async def _describe_waiting(db: Database) -> str:
    """The contacts still waiting, each with its timeline: what a failure needs to be diagnosed."""
    async with db.sessionmaker() as s:
        waiting = (
            await s.scalars(
                select(Interaction).where(
                    Interaction.channel.in_(["chat", "voice"]), Interaction.state.in_(["queued", "offered"])
                )
            )
        ).all()
        lines = []
        for interaction in waiting:
            events = (
                await s.execute(
                    select(TimelineEvent.at, TimelineEvent.kind, TimelineEvent.data)
                    .where(TimelineEvent.interaction_id == interaction.id)
                    .order_by(TimelineEvent.id)
                )
            ).all()
            lines.append(f"{interaction.channel} {interaction.id} {interaction.state}: {events}")
        await s.commit()
    return "\n".join(lines)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
async def test_run_stops_every_child_generators_first(how: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"
    settings = Settings(environment="test", database_url=url, data_dir=tmp_path, secret_key="r" * 40)
    await asyncio.to_thread(migrate, settings)  # alembic runs its own event loop
    db = Database(url)
    await chat_floor(db, settings)  # users exist, so the runner does not seed the demo bank
    port = free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": url,
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
        "SWITCHBOARD_ENVIRONMENT": "test",
        "SWITCHBOARD_SECRET_KEY": settings.secret_key,
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_SMTP_PORT": str(free_port()),
        "SWITCHBOARD_SMTP_OUT_PORT": str(free_port()),
        "SWITCHBOARD_DEMO_CARRIER_PORT": str(free_port()),
        "SWITCHBOARD_DEMO_TRAFFIC_PER_MINUTE": "120",
    }
    env.pop("SWITCHBOARD_REDIS_URL", None)  # the embedded Redis, as on a new machine
    log_path = tmp_path / "run.log"
    runner = _start_runner(env, log_path)
    try:

        async def contacts_waiting() -> bool:
            assert runner.poll() is None, log_path.read_text()
            return await _waiting_contacts(db) > 0

        # Demo customers are in the queue (nobody answers them): the generator must end them.
        await eventually(contacts_waiting, within=90, what="demo contacts waiting")
        children = _children(runner.pid)
        commands = _command_lines(children)
        for role in (b"worker", b"smtp", b"dialer", b"serve", b"traffic"):
            assert any(b"switchboard " + role in c for c in commands), (role, commands)

        began = time.monotonic()
        if how == "sigterm":
            runner.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C: SIGINT to the foreground process group
            os.killpg(runner.pid, signal.SIGINT)
        await asyncio.to_thread(runner.wait, STOP_WITHIN_S)
        took = time.monotonic() - began

        async def all_gone() -> bool:
            return not [pid for pid in children if _alive(pid)]

        await eventually(all_gone, within=2, what="every child exited")
        assert took < STOP_WITHIN_S
        log = log_path.read_text()
        assert "did not stop" not in log, log[-3000:]
        # The generator left while the app still answered: nothing of its waits for agents.
        assert await _waiting_contacts(db) == 0, await _describe_waiting(db) + "\n" + log[-3000:]
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        await db.dispose()
