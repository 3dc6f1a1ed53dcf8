"""/admin/users in a real browser at 1280x800, driven from the keyboard: an admin disables an agent
whose desktop is open in another browser; that desktop is sent to the sign-in page within seconds
(its socket closed with 4401), and the agent can sign in again once enabled."""

from __future__ import annotations

from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent, make_staff_user
from tests.helpers import truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    accept_dialog,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
    sign_in,
)
from workforce.models import Presence

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "admin-users.png"


@needs_chromium
async def test_admin_disables_an_agent_whose_desktop_then_closes(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="users")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await make_staff_user(s, Role.ADMIN, name="Alex Admin", username="ops-admin")
        agent = await make_staff_user(s, name="Kim Agent", username="agent-kim")
        await make_agent(s, agent, presence=Presence.OFFLINE)
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            desk = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(desk, base, "agent-kim")
            await desk.wait_for_url(f"{base}/desktop")
            await expect(desk.locator("#ws-status.live")).to_be_visible(timeout=10_000)

            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            page.on("dialog", accept_dialog)
            await sign_in(page, base, "ops-admin")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Users: disable, enable, end sessions").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/admin/users")
            row = page.locator(f"#user-{agent.id}")
            await expect(row).to_contain_text("active")
            await screenshot(page, SCREENSHOT)

            await row.get_by_role("button", name="Disable agent-kim").focus()
            await page.keyboard.press("Enter")
            notice = page.locator("#users-notice")
            await expect(notice).to_contain_text("Kim Agent (agent-kim) disabled. Their sessions have ended.")
            await expect(notice).to_be_focused()
            await expect(row).to_contain_text("disabled")

            # The open desktop is closed by the server and goes to the sign-in page.
            await desk.wait_for_url(f"{base}/login", timeout=5_000)
            await sign_in(desk, base, "agent-kim")
            await expect(desk.locator(".error, [role=alert]").first).to_contain_text(
                "Wrong username or password"
            )

            await row.get_by_role("button", name="Enable agent-kim").focus()
            await page.keyboard.press("Enter")
            await expect(notice).to_contain_text("enabled")
            await sign_in(desk, base, "agent-kim")
            await desk.wait_for_url(f"{base}/desktop")
        finally:
            await browser.close()
