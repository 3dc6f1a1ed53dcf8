"""The simulated agent of the desktop bench: it signs in through the login form, holds the desktop
socket and clicks as htmx would (cookie, CSRF header from the page, Origin): accept on each offer,
the panel's load requests when the tab opens, wrap-up and complete after the handle time."""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import websockets

from bench.common import Conn

PASSWORD = "bench-password"
AGENT_CONNS = 64  # keep-alive connections per app process the agents' clicks share
DISPOSITION = "resolved"

OFFER = re.compile(r'id="offer-([0-9a-f-]{36})" class="offer-toast" data-interaction-id="([0-9a-f-]{36})"')
TAB_OPENED = re.compile(r'beforeend:#work-tabs"><button[^>]*?id="tab-([0-9a-f-]{36})"', re.S)
LOAD_GET = re.compile(r'hx-get="([^"]+)"[^>]*?hx-trigger="load"', re.S)  # htmx fetches these on swap
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRF-Token": "([^"]+)"')


# ------------------------------------------------------------------ HTTP as the browser sends it


class Stats:
    def __init__(self) -> None:
        self.by_route: Counter[tuple[str, int]] = Counter()
        self.failures: Counter[str] = Counter()  # transport failures by route

    def count(self, route: str, status: int) -> None:
        self.by_route[(route, status)] += 1

    def fivexx(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (route, status), n in self.by_route.items():
            if status >= 500:
                out[f"{route} {status}"] += n
        return dict(out)

    def refused(self) -> dict[str, int]:
        """Every answer but the route's plain success (202 "still pending" included), by status."""
        return {f"{r} {s}": n for (r, s), n in sorted(self.by_route.items()) if s not in (200, 201, 303)}


class Pool:
    """Keep-alive connections to one app process, shared by the clicks of its agents."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.free: asyncio.Queue[Conn] = asyncio.Queue()
        for _ in range(size):
            self.free.put_nowait(Conn(port))

    async def request(
        self,
        stats: Stats,
        route: str,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, list[str]], bytes] | None:
        conn = await self.free.get()
        try:
            answer = await conn.request(method, path, body, headers)
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            conn.close()
            stats.failures[route] += 1
            return None
        finally:
            self.free.put_nowait(conn)
        stats.count(route, answer[0])
        return answer

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().close()


def cookie_value(headers: dict[str, list[str]], name: str) -> str | None:
    for header in headers.get("set-cookie", []):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None


def form(**fields: str) -> bytes:
    return urlencode(fields).encode()


FORM = "application/x-www-form-urlencoded"


async def sign_in(pool: Pool, stats: Stats, origin: str, username: str) -> tuple[str, float]:
    """The login form as a browser submits it: the session cookie and how long the POST took."""
    answer = await pool.request(stats, "GET /login", "GET", "/login")
    if answer is None or answer[0] != 200:
        raise RuntimeError(f"GET /login failed for {username}: {answer and answer[0]}")
    marker = cookie_value(answer[1], "sb_csrf")
    field = CSRF_FIELD.search(answer[2].decode())
    assert marker and field, "login page without its CSRF cookie and field"
    began = time.perf_counter()
    answer = await pool.request(
        stats,
        "POST /login",
        "POST",
        "/login",
        form(username=username, password=PASSWORD, csrf_token=field.group(1)),
        {"Content-Type": FORM, "Cookie": f"sb_csrf={marker}", "Origin": origin},
    )
    took = time.perf_counter() - began
    session = cookie_value(answer[1], "sb_session") if answer else None
    if answer is None or answer[0] != 303 or not session:
        raise RuntimeError(f"login failed for {username}: {answer and answer[0]}")
    return session, took


# ------------------------------------------------------------------ one agent


class AgentDesk:
    """One signed-in agent: the desktop page, its socket, its clicks."""

    def __init__(self, run: Run, port: int, username: str) -> None:
        self.run, self.port, self.username = run, port, username
        self.pool = run.pools[port]
        self.session = self.csrf = ""
        self.open = False
        self.available = False
        self.accepting: dict[str, float] = {}  # interaction id -> when the accept was clicked
        self.tasks: set[asyncio.Task[None]] = set()
        self.frames = self.bytes = 0

    def headers(self, **extra: str) -> dict[str, str]:
        """What htmx sends with a click: the cookie, the CSRF header from the page, the origin."""
        return {
            "Cookie": f"sb_session={self.session}",
            "X-CSRF-Token": self.csrf,
            "HX-Request": "true",
            "Origin": self.run.origin,
            **extra,
        }

    async def sign_in(self) -> None:
        self.session, _ = await sign_in(self.pool, self.run.stats, self.run.origin, self.username)
        answer = await self.pool.request(
            self.run.stats,
            "GET /desktop",
            "GET",
            "/desktop",
            headers={"Cookie": f"sb_session={self.session}", "Accept": "text/html"},
        )
        match = CSRF_HEADER.search(answer[2].decode()) if answer else None
        if match is None:
            raise RuntimeError(f"desktop page without a CSRF token for {self.username}")
        self.csrf = match.group(1)

    async def go_available(self) -> None:
        answer = await self.pool.request(
            self.run.stats,
            "POST /desktop/presence",
            "POST",
            "/desktop/presence",
            form(presence="available"),
            self.headers(**{"Content-Type": FORM}),
        )
        self.available = answer is not None and answer[0] == 200

    async def hold_socket(self, stop: asyncio.Event, opened: asyncio.Event) -> None:
        try:
            await self._hold_socket(stop, opened)
        except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError) as exc:
            self.run.stats.count(
                "GET /desktop/ws (handshake)", getattr(getattr(exc, "response", None), "status_code", 0)
            )
            self.run.errors[f"socket: {exc!r}"[:200]] += 1
        finally:
            opened.set()  # whoever waits for it learns from self.open

    async def _hold_socket(self, stop: asyncio.Event, opened: asyncio.Event) -> None:
        async with websockets.connect(
            f"ws://127.0.0.1:{self.port}/desktop/ws",
            additional_headers={"Cookie": f"sb_session={self.session}", "Origin": self.run.origin},
            compression=None if self.run.client_deflate_off else "deflate",  # a browser offers it
            max_size=2**20,
            open_timeout=60,
            ping_interval=None,  # the desktop's own JSON heartbeat below, as the page sends it
        ) as ws:
            self.open = True
            opened.set()
            pinger = asyncio.create_task(self._ping(ws, stop))
            try:
                while not stop.is_set():
                    try:
                        frame = await asyncio.wait_for(ws.recv(), timeout=1.0)
                    except TimeoutError:
                        continue
                    try:
                        self.on_frame(frame, time.perf_counter())
                    except Exception as exc:  # noqa: BLE001 - a bench bug is counted, not hidden
                        self.run.errors[repr(exc)[:200]] += 1
            except websockets.ConnectionClosed:
                pass
            finally:
                self.open = False
                pinger.cancel()

    async def _ping(self, ws: Any, stop: asyncio.Event) -> None:
        await asyncio.sleep(secrets.randbelow(10_000) / 1000)  # spread, as page loads are
        while not stop.is_set():
            await ws.send('{"type":"ping"}')
            await asyncio.sleep(10)

    def on_frame(self, frame: str | bytes, now: float) -> None:
        if isinstance(frame, bytes):
            frame = frame.decode()
        self.frames += 1
        self.bytes += len(frame)
        run = self.run
        if "offer-toast" in frame:
            for offer_id, interaction_id in OFFER.findall(frame):
                run.offered.setdefault(interaction_id, now)
                if run.accept and offer_id not in run.clicked:  # a resync shows it again
                    run.clicked.add(offer_id)
                    self._spawn(self.accept(offer_id, interaction_id))
        if "#work-tabs" in frame:
            for interaction_id in TAB_OPENED.findall(frame):
                clicked = self.accepting.pop(interaction_id, None)
                if clicked is not None:
                    run.tab_ms.append((now - clicked) * 1000)
                    self._spawn(self.work(interaction_id))
        if 'hx-trigger="load"' in frame:
            # What htmx does with swapped-in content that loads itself (a panel's tools, thread, chat).
            for url in LOAD_GET.findall(frame):
                self._spawn(
                    self.pool.request(run.stats, "GET panel load", "GET", url, headers=self.headers())
                )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a bench bug must not hide
            self.run.errors[repr(task.exception())[:200]] += 1

    async def accept(self, offer_id: str, interaction_id: str) -> None:
        await asyncio.sleep(self.run.click_delay)
        self.accepting[interaction_id] = time.perf_counter()
        answer = await self.pool.request(
            self.run.stats,
            "POST accept",
            "POST",
            f"/api/routing/offers/{offer_id}/accept",
            headers=self.headers(),
        )
        if answer is None or answer[0] not in (200, 202):  # 202: the engine will answer later
            self.accepting.pop(interaction_id, None)

    async def work(self, interaction_id: str) -> None:
        """Handle the contact, end it (wrap-up), pick a code and complete it."""
        await asyncio.sleep(self.run.handle_seconds)
        answer = await self.pool.request(
            self.run.stats,
            "POST wrap-up",
            "POST",
            f"/desktop/interactions/{interaction_id}/wrap-up",
            headers=self.headers(),
        )
        if answer is None or answer[0] not in (200, 202):
            return
        await asyncio.sleep(self.run.wrap_seconds)
        for _ in range(10):
            answer = await self.pool.request(
                self.run.stats,
                "POST complete",
                "POST",
                f"/desktop/interactions/{interaction_id}/complete",
                form(disposition=DISPOSITION),
                self.headers(**{"Content-Type": FORM}),
            )
            if answer is None or answer[0] != 409:
                break
            # A wrap-up answered 202 is not applied yet: the agent sees no code form and waits.
            await asyncio.sleep(1.0)
        if answer is not None and answer[0] in (200, 202):
            self.run.completed[interaction_id] = time.perf_counter()


# ------------------------------------------------------------------ the run


class Run:
    def __init__(self, args: argparse.Namespace, ports: list[int]) -> None:
        self.origin = "https://desk.bench.example"
        self.accept = not args.no_accept
        self.client_deflate_off = args.client_deflate == "off"
        self.click_delay = args.click_ms / 1000
        self.handle_seconds, self.wrap_seconds = args.handle_seconds, args.wrap_seconds
        self.pools = {port: Pool(port, AGENT_CONNS) for port in ports}
        self.stats = Stats()
        self.offered: dict[str, float] = {}  # interaction id -> first offer frame seen
        self.clicked: set[str] = set()  # offer ids accepted
        self.completed: dict[str, float] = {}
        self.tab_ms: list[float] = []
        self.errors: Counter[str] = Counter()  # the simulated agents' own failures
