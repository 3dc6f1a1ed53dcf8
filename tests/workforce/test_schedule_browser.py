"""Schedules in a real browser at 1280x800 (issue #13 item 3): a supervisor opens a drafted
schedule from the console, reads the coverage chart and shortfall, moves a shift by keyboard (the
coverage recalculated), sees a rest-rule refusal at its field, and publishes; the agent's desktop,
open meanwhile, shows the new schedule at once."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

from sqlalchemy import select

from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent
from tests.helpers import TEST_PASSWORD, truncate_all
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
from tests.workforce.schedule_week import MONDAY, requirement
from workforce import schedule_service as svc
from workforce.schedule_models import ScheduledShift

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-schedule.png"


@needs_chromium
async def test_supervisor_edits_and_publishes_a_schedule(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="schedule")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        boss = await create_user(
            s, username="sup-sol", display_name="Sol Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        ann = await create_user(
            s, username="ann", display_name="Ann Agent", role=Role.AGENT, password=TEST_PASSWORD
        )
        await s.commit()
        agent = await make_agent(s, ann, name="Ann Agent")
        await svc.create_template(
            s, name="day", earliest=540, latest=540, length=480, step=30, breaks=[], actor=boss
        )
        values = {
            "min_minutes_week": 0,
            "max_minutes_week": 2400,
            "max_days_week": 5,
            "min_rest_minutes": 660,
            "templates": [],
            "availability": {},
        }
        await svc.set_contract(s, agent_id=agent.id, values=values, actor=boss)
        await s.commit()
        schedule = await svc.auto_schedule(
            s,
            first_day=MONDAY,
            days=2,
            time_zone=settings.default_timezone,
            requirement=requirement(2, [(0, 9, 17, 1), (1, 9, 17, 1)]),
            actor=boss,
            time_limit_s=10,
        )
        await s.commit()
        monday = await s.scalar(
            select(ScheduledShift)
            .where(ScheduledShift.schedule_id == schedule.id)
            .order_by(ScheduledShift.start)
        )
        schedule_id, monday_start = schedule.id, monday.start
    await db.dispose()
    assert monday_start.date() == date(2027, 1, 4)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            desk = await sign_in_to_desktop(browser, SimpleNamespace(base=base), "ann", available=False)
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sol")
            await page.wait_for_url(f"{base}/supervisor")
            # Shift templates and contracts: a break outside the shift is refused at its field.
            await page.get_by_role("link", name="shift templates and contracts").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/rosters")
            await page.get_by_label("Name").fill("late")
            await page.get_by_label("Earliest start (HH:MM)").fill("13:00")
            await page.get_by_label("Latest start (HH:MM)").fill("14:00")
            await page.get_by_label("Length (hours)").fill("8")
            breaks = page.get_by_label("Breaks (minutes@from-to into the shift", exact=False)
            await breaks.fill("30@7:45-8:00")
            await breaks.press("Enter")
            await expect(page.locator("form .error")).to_contain_text("inside the shift")
            await breaks.fill("15@1:30-2:30, 30@3:30-5:00")
            await breaks.press("Enter")
            await expect(page.locator("#rosters-notice")).to_have_text("Template late added")
            await expect(page.locator("#templates")).to_contain_text("13:00–14:00")
            await page.get_by_label("Maximum hours a week for Ann Agent").fill("37.5")
            await page.keyboard.press("Enter")
            await expect(page.locator("#rosters-notice")).to_have_text("Contract saved")
            await expect(page.get_by_label("Maximum hours a week for Ann Agent")).to_have_value("37.5")
            await page.goto(f"{base}/supervisor")

            await page.get_by_role("link", name="Schedules: auto-schedule, edit, publish").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/schedules")
            await page.get_by_role("link", name="2027-01-04").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/schedules/{schedule_id}")
            await expect(page.locator("#schedule-chart")).to_have_attribute("data-drawn", "true")
            await expect(page.locator("#shortfall-total")).to_contain_text("Shortfall: 0")

            # Move Tuesday's shift an hour later by keyboard: one hour (4 intervals) short now.
            start = page.get_by_label("Start of Ann Agent's shift 2027-01-05T09:00")
            await start.fill("2027-01-05T10:00")
            await page.get_by_label("End of Ann Agent's shift 2027-01-05T09:00").fill("2027-01-05T18:00")
            await page.keyboard.press("Enter")
            await expect(page.locator("#schedule-notice")).to_have_text("Shift moved")
            await expect(page.locator("#shortfall-total")).to_contain_text("Shortfall: 4")
            await expect(page.locator("#shortfall-table")).to_contain_text("Tue 05 Jan 09:45")

            # Monday moved to end at 23:00 leaves 11 h before Tuesday's 10:00: allowed. Ending later
            # than that is refused at the field, naming the rest rule, and nothing changes.
            await page.get_by_label("Start of Ann Agent's shift 2027-01-04T09:00").fill("2027-01-04T16:00")
            await page.get_by_label("End of Ann Agent's shift 2027-01-04T09:00").fill("2027-01-05T00:00")
            await page.keyboard.press("Enter")
            refusal = page.locator("#shift-table .error")
            await expect(refusal).to_contain_text("rest rule")
            await expect(page.locator("#shortfall-total")).to_contain_text("Shortfall: 4")
            await screenshot(page, SCREENSHOT)

            await page.get_by_role("button", name="Publish to agents").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#schedule-notice")).to_have_text("Published: agents told")
            await expect(desk.locator("#schedule-notice")).to_contain_text(
                "New schedule published: 2 shifts from Mon 04 Jan 09:00"
            )
        finally:
            await browser.close()
