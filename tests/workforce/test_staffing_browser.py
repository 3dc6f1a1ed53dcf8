"""The staffing calculator in a real browser at 1280x800, from the keyboard: a supervisor opens it
from the console home, asks for Erlang A with impatient callers, reads the answer and the chart,
and a bad target is shown at its field."""

from __future__ import annotations

from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
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

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-staffing.png"


@needs_chromium
async def test_supervisor_sizes_an_interval_by_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="staffing")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-sam", display_name="Sam Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Staffing calculator (Erlang C / A)").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/staffing")

            # The worked example is filled in; Enter in a field calculates it (Erlang C).
            await page.get_by_label("Contacts in the interval").focus()
            await page.keyboard.press("Enter")
            result = page.locator("#staffing-result-heading")
            await expect(result).to_have_text("14 agents on the phones, 20 scheduled")
            await expect(result).to_be_focused()
            await expect(page.locator("#staffing-chart")).to_have_attribute("data-drawn", "true")
            await expect(page.locator("#staffing-curve tr.current")).to_contain_text("88.8 %")

            # Impatient callers (Erlang A): fewer agents, and an abandonment figure.
            await page.get_by_label("Mean caller patience (seconds; blank: nobody abandons)").fill("120")
            await page.keyboard.press("Enter")
            await expect(page.locator("#staffing-result")).to_contain_text("Erlang A")
            await expect(page.locator("#staffing-result")).to_contain_text("% abandon")
            await screenshot(page, SCREENSHOT)

            target = page.get_by_label("Service level target (0–1)")
            await target.fill("1.5")
            await page.keyboard.press("Enter")
            await expect(target).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#e-service_level_target")).to_be_visible()
        finally:
            await browser.close()
