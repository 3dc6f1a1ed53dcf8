"""The embedded default (SQLite) under a shift-start burst: 30 agents sign in and go available at
once against a real app process. Every answer is a success and no "database is locked" reaches a
request or the log (writers wait for the single write lock instead of failing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from pathlib import Path

import httpx
import websockets
from sqlalchemy import func, select

from switchboard.db import Database
from switchboard.security import hash_password
from tests.factories import make_agent, make_queue, make_staff_user, queued
from tests.helpers import TEST_PASSWORD, eventually, truncate_all
from tests.live_app import live_settings, running_app
from workforce.models import Agent, Presence

AGENTS = 30
PING_EVERY_S = 5.0  # the page pings every 10 s
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


async def _floor(db: Database) -> list[str]:
    """``AGENTS`` offline agents of queue "retail", and chats already waiting for them."""
    password_hash = hash_password(TEST_PASSWORD)  # argon2 is slow on purpose: hash once
    names = [f"burst{n:02d}-{uuid.uuid4().hex[:4]}" for n in range(AGENTS)]
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "retail")
        for name in names:
            user = await make_staff_user(s, name=name, username=name, password_hash=password_hash)
            await make_agent(
                s,
                user,
                presence=Presence.OFFLINE,
                channel_max={"voice": 1, "chat": 2, "ticket": 5, "email": 5},
                queues=[queue],
            )
    await queued(db, 20)  # going available then also writes offers while others still sign in
    return names


async def _sign_in_and_go_available(
    base: str, username: str, posted: list[list[int]], hold: asyncio.Event
) -> list[int]:
    """The browser's path: the login form, the desktop, then "Set status: Available"; the desktop's
    socket then stays open (as the browser tab does) until ``hold`` is set."""
    async with httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=False) as http:
        statuses = []
        form = await http.get("/login")
        statuses.append(form.status_code)
        marker = http.cookies.get("sb_csrf", path="/login")
        login = await http.post(
            "/login", data={"username": username, "password": TEST_PASSWORD, "csrf_token": marker or ""}
        )
        statuses.append(login.status_code)
        assert login.headers.get("location") == "/desktop", login.text[:300]
        desk = await http.get("/desktop")
        statuses.append(desk.status_code)
        match = CSRF.search(desk.text)
        assert match is not None, desk.text[:300]
        # The desktop's socket is open, as in a browser: its resync and heartbeats read and write too.
        cookie = "; ".join(f"{key}={value}" for key, value in http.cookies.items())
        socket_url = base.replace("http://", "ws://") + "/desktop/ws"
        async with websockets.connect(socket_url, origin=base, additional_headers={"Cookie": cookie}) as ws:
            assert await ws.recv()  # the resync
            presence = await http.post(
                "/desktop/presence",
                data={"presence": "available"},
                headers={"X-CSRF-Token": match.group(1)},
            )
            statuses.append(presence.status_code)
            posted.append(statuses)
            await _stay_open(ws, hold)
        return statuses


async def _stay_open(ws: websockets.ClientConnection, hold: asyncio.Event) -> None:
    """What the open tab does until ``hold`` is set: ping as the page does (a desktop that stops
    pinging is taken offline after a grace period), and read what the app pushes."""
    loop = asyncio.get_running_loop()
    next_ping = loop.time()
    while not hold.is_set():
        if loop.time() >= next_ping:
            await ws.send(json.dumps({"type": "ping"}))
            next_ping = loop.time() + PING_EVERY_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)


async def test_thirty_agents_sign_in_and_go_available_at_once_on_sqlite(
    sqlite_url: str, redis_handle, redis_sync, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    await truncate_all(db)
    try:
        names = await _floor(db)
        settings = live_settings(sqlite_url, redis_handle.url, tmp_path, name="burst")
        log_path = tmp_path / "app.log"
        posted: list[list[int]] = []
        hold = asyncio.Event()
        async with running_app(settings, log_path) as base:
            agents = [
                asyncio.create_task(_sign_in_and_go_available(base, name, posted, hold)) for name in names
            ]
            try:

                async def all_posted() -> bool:
                    for task in agents:  # a failed agent fails the test now, not at the timeout
                        if task.done() and task.exception() is not None:
                            raise task.exception()  # type: ignore[misc]
                    return len(posted) == AGENTS

                await eventually(all_posted, within=240, what="every agent signed in and available")
                async with db.sessionmaker() as s:  # while their desktops are still open
                    online = await s.scalar(
                        select(func.count()).select_from(Agent).where(Agent.presence != Presence.OFFLINE)
                    )
                    await s.commit()
            finally:
                hold.set()
                results = await asyncio.gather(*agents, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, failures[:3]
        bad = [statuses for statuses in posted if any(code >= 400 for code in statuses)]
        assert not bad, f"{len(bad)} agents got an error: {bad[:5]}"
        assert online == AGENTS  # available (or already busy with an offer): none left offline
        log = log_path.read_text()
        assert "database is locked" not in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
    finally:
        await db.dispose()
