"""The agent desktop end to end: a real uvicorn process (engine host on), Debian's chromium driven
by Playwright, and the `websockets` client for the socket's refusals.

Login through the real page -> go available -> a supervisor creates an inbound chat -> the offer
toast shows the customer and a countdown -> "A" accepts -> the tab with the customer 360 appears.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from customers.models import Customer, Identity, IdentityKind, ValueTier
from routing.models import Agent, Presence, Queue, QueueMember
from switchboard.auth.models import Role
from switchboard.auth.service import create_user, token_for
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.conftest import TEST_PASSWORD, _truncate
from tests.live_app import CHROMIUM, CHROMIUM_ARGS, live_settings, needs_chromium, running_app, screenshot

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "desktop.png"
CUSTOMER_PHONE = "+447400123456"


@dataclass
class Server:
    base: str
    origin: str
    settings: Settings
    agent_username: str
    agent_token: str
    supervisor_headers: dict[str, str]


async def _seed(db: Database, settings: Settings) -> tuple[str, str, dict[str, str]]:
    async with db.sessionmaker() as s:
        queue = Queue(name="cards", display_name="Cards", channels=["chat", "voice"])
        s.add(queue)
        agent_user = await create_user(
            s, username="desk-agent", display_name="Dana Desk", role=Role.AGENT, password=TEST_PASSWORD
        )
        supervisor = await create_user(
            s, username="desk-sup", display_name="Sam Sup", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.flush()
        agent = Agent(user_id=agent_user.id, display_name="Dana Desk", presence=Presence.OFFLINE)
        s.add(agent)
        await s.flush()
        s.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
        customer = Customer(
            display_name="Margaret Hale",
            segments=["senior", "private-banking"],
            value_tier=ValueTier.GOLD,
            products_held=4,
            marketing_consent=True,
            tier_breakdown={
                "policy_version": 1,
                "tier": "gold",
                "points_total": 62,
                "inputs": {
                    "relationship_balance": {"raw": "250000.00", "points": 40, "clamped": False},
                    "products_held": {"raw": "4", "points": 12, "clamped": False},
                    "tenure_years": {"raw": "12", "points": 10, "clamped": True},
                },
            },
            relationship_balance=Decimal("250000.00"),
        )
        s.add(customer)
        await s.flush()
        s.add(Identity(customer_id=customer.id, kind=IdentityKind.PHONE, value=CUSTOMER_PHONE, verified=True))
        await s.commit()
    return (
        agent_user.username,
        token_for(agent_user, settings)[0],
        {"Authorization": f"Bearer {token_for(supervisor, settings)[0]}"},
    )


@pytest.fixture
async def server(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[Server]:
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="desktop")
    db = Database(backend_url, schema=settings.database_schema)
    await _truncate(db)
    username, agent_token, supervisor = await _seed(db, settings)
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield Server(base, base, settings, username, agent_token, supervisor)
    finally:
        await db.dispose()


def _ws_url(server: Server) -> str:
    return server.base.replace("http://", "ws://") + "/desktop/ws"


async def _close_code(server: Server, headers: dict[str, str]) -> tuple[int, str]:
    """Connect and read until the server closes; the close code and reason it gave."""
    async with websockets.connect(_ws_url(server), additional_headers=headers, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    rcvd = closed.value.rcvd
    assert rcvd is not None, "the server must close with a code, not drop the connection"
    return rcvd.code, rcvd.reason


@needs_chromium
async def test_offer_accepted_from_the_keyboard_shows_the_customer_360(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{server.base}/login")
            await page.get_by_label("Username").fill(server.agent_username)
            await page.get_by_label("Password").fill(TEST_PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{server.base}/desktop")

            # The socket is up once the heartbeat/resync marks the connection live.
            await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)
            await page.get_by_label("Change status").select_option("available")
            await page.get_by_role("button", name="Set status").click()
            await expect(page.locator("#desktop-status .presence-badge")).to_have_text("Available")

            async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
                created = await api.post(
                    "/api/interactions",
                    json={
                        "channel": "chat",
                        "queue": "cards",
                        "identity": {"kind": "phone", "value": CUSTOMER_PHONE},
                        "subject": "Card blocked abroad",
                        "topic": "card_blocked",
                    },
                    headers=server.supervisor_headers,
                )
                assert created.status_code == 201, created.text
                interaction_id = created.json()["id"]

                toast = page.locator(".offer-toast")
                await expect(toast).to_be_visible(timeout=10_000)
                await expect(toast.locator(".customer-name")).to_have_text("Margaret Hale")
                await expect(toast).to_contain_text("Gold")
                await expect(toast).to_contain_text("senior")
                await expect(toast).to_contain_text("card_blocked")
                await expect(toast.locator(".countdown")).to_have_text(re.compile(r"^\d+s$"), timeout=3_000)
                await expect(toast.get_by_role("button", name="Accept")).to_have_attribute(
                    "aria-keyshortcuts", "A"
                )

                await page.keyboard.press("a")

                tab = page.locator(f"#tab-{interaction_id}")
                await expect(tab).to_be_visible(timeout=10_000)
                await expect(tab).to_have_attribute("aria-selected", "true")
                await expect(page.locator(".offer-toast")).to_have_count(0)
                panel = page.locator(f"#panel-{interaction_id}")
                await expect(panel).to_be_visible()
                await expect(panel.locator("h3")).to_have_text("Card blocked abroad")
                await expect(panel.locator(".c360-name")).to_have_text("Margaret Hale")
                await expect(panel.locator(".tier-badge").first).to_have_text("Gold")
                await expect(panel.locator(".timeline")).to_contain_text("interaction created")
                await expect(page.locator("#desktop-capacity")).to_contain_text("Chat")
                chat_row = page.locator("#desktop-capacity tr", has_text="Chat")
                await expect(chat_row.locator("td").first).to_have_text("1")

                # A second contact arrives while the first is worked: the screenshot shows both.
                second = await api.post(
                    "/api/interactions",
                    json={
                        "channel": "chat",
                        "queue": "cards",
                        "identity": {"kind": "phone", "value": "+447400654321"},
                        "customer_name": "Owen Price",
                        "subject": "Mortgage overpayment",
                        "topic": "mortgage",
                    },
                    headers=server.supervisor_headers,
                )
                assert second.status_code == 201, second.text
                await expect(page.locator(".offer-toast .customer-name")).to_have_text(
                    "Owen Price", timeout=10_000
                )
                await page.locator("#desktop-status").focus()  # neutral focus for the picture
                await screenshot(page, SCREENSHOT)

                # Rejecting with "R" withdraws the toast and says why.
                await page.keyboard.press("r")
                await expect(page.locator(".offer-toast")).to_have_count(0, timeout=10_000)
                await expect(page.locator("#offer-notice")).to_have_text("Offer rejected")
        finally:
            await browser.close()


async def test_socket_refuses_forged_cookie_and_foreign_origin(server: Server) -> None:
    ok_origin = {"Origin": server.origin}
    assert await _close_code(server, {**ok_origin, "Cookie": "sb_session=forged.jwt.value"}) == (
        4401,
        "session invalid or expired",
    )
    assert (await _close_code(server, ok_origin))[0] == 4401  # no cookie at all
    good_cookie = {"Cookie": f"sb_session={server.agent_token}"}
    assert await _close_code(server, {**good_cookie, "Origin": "http://evil.example"}) == (
        4403,
        "origin not allowed",
    )
    assert (await _close_code(server, good_cookie))[0] == 4403  # no Origin: not a page of ours


async def test_socket_resyncs_answers_pings_and_hangs_up_on_unknown_messages(server: Server) -> None:
    headers = {"Origin": server.origin, "Cookie": f"sb_session={server.agent_token}"}
    async with websockets.connect(_ws_url(server), additional_headers=headers, open_timeout=5) as ws:
        resync = await asyncio.wait_for(ws.recv(), 5)
        for region in ('id="desktop-status"', 'id="desktop-capacity"', 'id="offers"', 'id="work"'):
            assert region in resync
        await ws.send(json.dumps({"type": "ping"}))
        pong = await asyncio.wait_for(ws.recv(), 5)
        assert 'id="ws-status"' in pong and "Live" in pong
        await ws.send(json.dumps({"type": "accept_everything", "offer_id": str(uuid.uuid4())}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
