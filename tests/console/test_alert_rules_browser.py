"""/supervisor/alert-rules by keyboard at 1280x800: a supervisor edits a shipped rule's
condition; a type error comes back at that rule with its column (as the routing rules editor
words it), the text kept; the fixed condition saves as version 2."""

from __future__ import annotations

from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from tests.helpers import TEST_PASSWORD, truncate_all
from tests.live_app import CHROMIUM, CHROMIUM_ARGS, live_settings, needs_chromium, running_app, sign_in

RULE = "Unhappy gold or platinum customer"


async def _seed(backend_url: str, schema: str | None) -> None:
    db = Database(backend_url, schema=schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-sam", display_name="Sam Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
    await db.dispose()


@needs_chromium
async def test_supervisor_edits_an_alert_rule_by_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="alert-rules")
    await _seed(backend_url, settings.database_schema)
    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")
            await page.goto(f"{base}/supervisor/follow-ups")
            await page.get_by_role("link", name="alert rules").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/alert-rules")
            forms = page.locator("form.rule-form[id^=rule-]")
            await expect(forms).to_have_count(5)  # the shipped rules, seeded at start-up

            condition = page.get_by_label(f"Condition of “{RULE}”")
            await condition.focus()
            await page.keyboard.press("Control+A")
            await page.keyboard.type('feedback.csat <= "two"')
            await page.get_by_role("button", name=f"Save {RULE}").focus()
            await page.keyboard.press("Enter")
            alert = page.get_by_role("alert")
            await expect(alert).to_contain_text("at column 15")
            await expect(condition).to_have_value('feedback.csat <= "two"')
            await expect(condition).to_have_attribute("aria-invalid", "true")

            await condition.focus()
            await page.keyboard.press("Control+A")
            await page.keyboard.type("feedback.csat <= 1")
            await page.get_by_role("button", name=f"Save {RULE}").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/alert-rules?saved=*")
            await expect(page.get_by_role("status")).to_have_text("Rule saved.")
            await expect(page.locator("h2", has_text=RULE)).to_contain_text("version 2")
            await expect(condition).to_have_value("feedback.csat <= 1")
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        finally:
            await browser.close()


@needs_chromium
async def test_supervisor_sets_a_team_lead_by_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.factories import make_agent

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="owners")
    await _seed(backend_url, settings.database_schema)
    db = Database(backend_url, schema=settings.database_schema)
    async with db.sessionmaker() as s:
        await make_agent(s, name="Ann Agent", teams=["alpha"])
    await db.dispose()
    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="team leads and queue owners").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/owners")
            lead = page.get_by_label("Lead of team alpha", exact=True)
            await lead.focus()
            await page.keyboard.press("s")  # Sam Supervisor
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/owners?saved=*")
            await expect(page.get_by_role("status")).to_have_text("Saved.")
            assert await lead.evaluate("s => s.selectedOptions[0].textContent") == "Sam Supervisor"
        finally:
            await browser.close()
