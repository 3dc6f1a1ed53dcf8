"""The forecast page in a real browser at 1280x800, from the keyboard (issue #13 item 1): a
supervisor opens it from the console home, forecasts a queue, sees the backtest beside the chart,
overrides an interval and sees the override in the table."""

from __future__ import annotations

import re

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
from tests.workforce.history import HORIZON, seed_history

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-forecast.png"


@needs_chromium
async def test_supervisor_forecasts_and_overrides_by_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="forecast")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-fay", display_name="Fay Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
    await seed_history(db)
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-fay")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Forecast and staffing requirement").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/forecast")

            # The form's default, 8 weeks, over 4 weeks of traffic: read from the first contact.
            await page.get_by_label("Weeks of history (2–16)").fill("8")
            await page.get_by_label("First day (blank: today)").fill(HORIZON.isoformat())
            await page.keyboard.press("Enter")
            heading = page.locator("#forecast-result-heading")
            await expect(heading).to_contain_text("voice contacts forecast for cards")
            await expect(heading).to_be_focused()
            await expect(page.locator("#forecast-chart")).to_have_attribute("data-drawn", "true")
            await expect(page.locator("#backtest-wape")).to_have_text("0.0 %")
            await expect(page.locator("#backtest")).to_contain_text("MAPE")
            await expect(page.locator("#history-used")).to_contain_text("since 05 Oct 2026")
            await expect(page.locator("#history-used")).to_contain_text("not read as zero traffic")
            await expect(page.locator("#backtest")).to_contain_text(re.compile(r"[+-]0\.0 % a week"))

            # Override Wednesday noon from the keyboard: the table shows it beside the model's figure.
            await page.get_by_label("Interval start (Europe/London)").fill("2026-11-04T12:00")
            await page.get_by_label("Contacts", exact=True).fill("60")
            await page.get_by_label("Reason").fill("mailing lands")
            await page.keyboard.press("Enter")
            await expect(page.locator("#forecast-notice")).to_contain_text("Override saved: 60 contacts")
            row = page.locator("#forecast-table tr.overridden")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("Wed 04 Nov 12:00")
            await expect(row).to_contain_text("(mailing lands)")
            await expect(page.locator("#forecast-chart")).to_have_attribute("data-drawn", "true")
            await screenshot(page, SCREENSHOT)

            # A bad bound is refused at its field.
            history = page.get_by_label("Weeks of history (2–16)")
            await history.fill("40")
            await history.press("Enter")
            await expect(history).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#e-history_weeks")).to_be_visible()
        finally:
            await browser.close()
