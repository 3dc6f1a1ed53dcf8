"""One offer at a time on the desktop, and a break that waits for the pending offer (issue #10
items 1 and 2): a real app process with its engine, Debian's chromium through Playwright."""

from __future__ import annotations

import httpx

from tests.live_app import CHROMIUM, CHROMIUM_ARGS, DeskServer, needs_chromium, sign_in_to_desktop

CUSTOMERS = ("Ada First", "Ben Second", "Cleo Third")


@needs_chromium
async def test_going_available_with_three_chats_queued_offers_one_then_the_next(server: DeskServer) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await sign_in_to_desktop(browser, server, server.agent_username, available=False)

            ids = []
            async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
                for n, name in enumerate(CUSTOMERS):
                    created = await api.post(
                        "/api/interactions",
                        json={
                            "channel": "chat",
                            "queue": "cards",
                            "identity": {"kind": "phone", "value": f"+44740011100{n}"},
                            "customer_name": name,
                        },
                        headers=server.supervisor_headers,
                    )
                    assert created.status_code == 201, created.text
                    ids.append(created.json()["id"])

            await page.get_by_label("Change status").select_option("available")
            await page.get_by_role("button", name="Set status").click()
            toasts = page.locator(".offer-toast")
            await expect(toasts.locator(".customer-name")).to_have_text(CUSTOMERS[0], timeout=10_000)
            await expect(toasts).to_have_count(1)  # three chats fit, one is offered

            await page.keyboard.press("a")
            await expect(page.locator(f"#tab-{ids[0]}")).to_be_visible(timeout=10_000)
            await expect(toasts.locator(".customer-name")).to_have_text(CUSTOMERS[1], timeout=10_000)
            await expect(toasts).to_have_count(1)

            # A break asked for now waits for this offer, and the desktop says so.
            await page.get_by_label("Change status").select_option("break")
            await page.get_by_role("button", name="Set status").click()
            await expect(page.locator("#presence-pending")).to_have_text("Break after this offer")
            await expect(page.locator("#desktop-status .presence-badge")).to_have_text("Available")
            await page.keyboard.press("r")  # answered: the break starts, nothing more is offered
            await expect(page.locator("#desktop-status .presence-badge")).to_have_text(
                "Break", timeout=10_000
            )
            await expect(page.locator("#presence-pending")).to_have_count(0)
            await expect(page.get_by_label("Change status")).to_have_value("break")
            await expect(toasts).to_have_count(0)
        finally:
            await browser.close()


def test_the_status_menu_shows_a_state_the_agent_cannot_choose() -> None:
    """Not responding (set by routing) is what the menu shows, not the first choice (Available)."""
    from datetime import UTC, datetime

    from agent_desktop.pages import status_fragment
    from workforce.models import Agent, Presence

    agent = Agent(presence=Presence.NOT_RESPONDING, presence_since=datetime.now(UTC), presence_reason=None)
    html = status_fragment(agent)
    assert '<option value="" selected disabled>Not responding</option>' in html
    assert 'value="available" selected' not in html
