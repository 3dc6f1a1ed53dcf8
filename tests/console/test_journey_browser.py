"""The journeys page in a real browser at 1280x800, by keyboard: a supervisor opens it from the
console home, narrows it to a topic, sees the funnel chart drawn and the paths, then reads one
customer's journey line."""

from __future__ import annotations

from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.experience.journey_history import lost_card_history
from tests.helpers import TEST_PASSWORD, truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
    sign_in,
)

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-journeys.png"


@needs_chromium
async def test_supervisor_reads_a_topics_journeys_and_a_customers_line(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="journeys")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    ids = await lost_card_history(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-jo", display_name="Jo Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-jo")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role(
                "link", name="Customer journeys: paths, repeats and first-contact resolution"
            ).focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/journeys")

            await page.get_by_label("Topic").select_option("lost_card")
            await page.get_by_role("button", name="Show").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/journeys?topic=lost_card*")
            await expect(page.locator("#journey-funnel-chart")).to_have_attribute("data-drawn", "true")
            await expect(page.locator("#journey-funnel tbody tr").first).to_contain_text("4")
            await expect(page.locator("#journey-paths")).to_contain_text("Chat → Voice")
            await expect(page.locator("#journey-agents")).to_contain_text("Yusuf")
            await screenshot(page, SCREENSHOT)

            await page.goto(f"{base}/supervisor/customers/{ids['a']}/journey")
            line = page.locator("#journey-line li")
            await expect(line).to_have_count(2)
            await expect(line.nth(0)).to_contain_text("Abandoned")
            await expect(line.nth(1)).to_contain_text("repeat")
            await expect(line.nth(1)).to_contain_text("Xena")
        finally:
            await browser.close()
