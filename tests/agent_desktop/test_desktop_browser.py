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

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from switchboard.settings import PROJECT_ROOT
from tests.factories import DESK_CUSTOMER_PHONE
from tests.helpers import TEST_PASSWORD
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DeskServer,
    needs_chromium,
    screenshot,
    sign_in_to_desktop,
)

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "desktop.png"


def _ws_url(server: DeskServer) -> str:
    return server.base.replace("http://", "ws://") + "/desktop/ws"


async def _close_code(server: DeskServer, headers: dict[str, str]) -> tuple[int, str]:
    """Connect and read until the server closes; the close code and reason it gave."""
    async with websockets.connect(_ws_url(server), additional_headers=headers, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    rcvd = closed.value.rcvd
    assert rcvd is not None, "the server must close with a code, not drop the connection"
    return rcvd.code, rcvd.reason


@needs_chromium
async def test_offer_accepted_from_the_keyboard_shows_the_customer_360(server: DeskServer) -> None:
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
                        "identity": {"kind": "phone", "value": DESK_CUSTOMER_PHONE},
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
                await expect(toast).to_contain_text("Senior")
                await expect(toast).to_contain_text("Card blocked")  # the topic's label, not its code
                await expect(toast.locator(".countdown")).to_have_text(re.compile(r"^\d+s$"), timeout=3_000)
                await expect(toast.get_by_role("button", name="Accept")).to_have_attribute(
                    "aria-keyshortcuts", "A"
                )

                # What the browser fetches for this interaction once its tab opens.
                fetched: list[str] = []
                own = f"/desktop/interactions/{interaction_id}/"
                page.on("request", lambda r: fetched.append(r.url) if own in r.url else None)
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
                await expect(panel.locator(".timeline-events")).to_contain_text("Contact started")
                await expect(page.locator("#desktop-capacity")).to_contain_text("Chat")
                chat_row = page.locator("#desktop-capacity tr", has_text="Chat")
                await expect(chat_row.locator("td").first).to_have_text("1")
                # The panel came whole over the socket: its wrap-up bar, notes and transcript are in
                # place, and the browser made no request to load them.
                await expect(panel.get_by_role("button", name="End / Wrap up")).to_be_visible()
                await expect(panel.locator(f"#notes-{interaction_id}")).to_be_attached()
                await expect(panel.locator(f"#chat-log-{interaction_id}")).to_be_attached()
                await expect(panel.locator(".chat-loading, [aria-busy=true]")).to_have_count(0)
                assert fetched == [], fetched

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
                # Neutral focus for the picture (the reply box had it since the accept).
                await page.evaluate("document.activeElement.blur()")
                await screenshot(page, SCREENSHOT)

                # Rejecting with "R" withdraws the toast and says why (Esc first: a swap settling
                # late may have put focus back in the reply box, where "r" is a letter).
                await page.keyboard.press("Escape")
                await page.keyboard.press("r")
                await expect(page.locator(".offer-toast")).to_have_count(0, timeout=10_000)
                await expect(page.locator("#offer-notice")).to_have_text("Offer rejected")
        finally:
            await browser.close()


@needs_chromium
async def test_offer_shown_before_a_socket_reconnect_is_withdrawn_once_accepted(server: DeskServer) -> None:
    """The toast came over one socket, the accept's tab over the next: the toast still goes."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await sign_in_to_desktop(browser, server, server.agent_username)
            sockets: list[tuple[object, object]] = []  # (page side, server side) of each socket

            async def through(ws) -> None:  # noqa: ANN001 - Playwright's WebSocketRoute
                sockets.append((ws, ws.connect_to_server()))  # frames pass through unchanged

            await page.route_web_socket(re.compile(r"/desktop/ws$"), through)
            await page.reload()  # the desktop's socket now goes through ``through``
            await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)

            async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
                created = await api.post(
                    "/api/interactions",
                    json={
                        "channel": "chat",
                        "queue": "cards",
                        "identity": {"kind": "phone", "value": DESK_CUSTOMER_PHONE},
                        "subject": "Card blocked abroad",
                    },
                    headers=server.supervisor_headers,
                )
                assert created.status_code == 201, created.text
                interaction_id = created.json()["id"]
            toast = page.locator(f'.offer-toast[data-interaction-id="{interaction_id}"]')
            await expect(toast).to_be_visible(timeout=10_000)

            # The socket drops as at a server restart (1012): the page reconnects by itself.
            first_page_side, first_server_side = sockets[0]
            await first_page_side.close(code=1012, reason="restart")
            await first_server_side.close()
            await expect(page.locator("#ws-status.live")).not_to_be_visible(timeout=5_000)
            await expect(page.locator("#ws-status.live")).to_be_visible(timeout=15_000)
            assert len(sockets) == 2
            await expect(toast).to_be_visible()

            await page.keyboard.press("a")
            await expect(page.locator(f"#tab-{interaction_id}")).to_be_visible(timeout=10_000)
            await expect(page.locator(".offer-toast")).to_have_count(0)
        finally:
            await browser.close()


async def test_socket_refuses_forged_cookie_and_foreign_origin(server: DeskServer) -> None:
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


async def test_socket_resyncs_answers_pings_and_hangs_up_on_unknown_messages(server: DeskServer) -> None:
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
