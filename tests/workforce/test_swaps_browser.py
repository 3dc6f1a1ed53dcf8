"""Swaps and time off in a real browser at 1280x800 (issue #13 items 5 and 8): the agent opens
"My schedule" from the desktop by keyboard, sees their published shift, asks for time off and sees
it pending; the supervisor approves it by keyboard on the console's requests page and the agent's
desktop is told at once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from tests.factories import make_agent
from tests.helpers import TEST_PASSWORD, truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    live_settings,
    needs_chromium,
    running_app,
    sign_in,
    sign_in_to_desktop,
)
from workforce.schedule_models import Schedule, ScheduledShift, ScheduleStatus


@needs_chromium
async def test_agent_asks_for_time_off_and_the_supervisor_approves(
    backend_url, redis_handle, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="swaps")
    zone = ZoneInfo(settings.default_timezone)
    tomorrow = datetime.now(zone).date() + timedelta(days=1)

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(tomorrow, time(hour, minute), tzinfo=zone).astimezone(UTC)

    next_midnight = datetime.combine(tomorrow + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    slots = int((next_midnight - at(0)) / timedelta(minutes=15))  # 92 or 100 on a DST day
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-sol", display_name="Sol Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        ann = await create_user(
            s, username="ann", display_name="Ann Agent", role=Role.AGENT, password=TEST_PASSWORD
        )
        bob = await create_user(
            s, username="bob", display_name="Bob Agent", role=Role.AGENT, password=TEST_PASSWORD
        )
        await s.commit()
        ann_agent = await make_agent(s, ann, name="Ann Agent")
        bob_agent = await make_agent(s, bob, name="Bob Agent")
        schedule = Schedule(
            first_day=tomorrow,
            days=1,
            time_zone=settings.default_timezone,
            status=ScheduleStatus.PUBLISHED,
            requirement=[
                1 if at(9) <= at(0) + timedelta(minutes=15 * k) < at(17) else 0 for k in range(slots)
            ],
            published_at=datetime.now(UTC),
        )
        s.add(schedule)
        await s.flush()
        for agent in (ann_agent, bob_agent):
            s.add(
                ScheduledShift(
                    schedule_id=schedule.id,
                    agent_id=agent.id,
                    template="day",
                    start=at(9),
                    end=at(17),
                    breaks=[[at(12).isoformat(), at(12, 30).isoformat()]],
                )
            )
        await s.commit()
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            desk = await sign_in_to_desktop(browser, SimpleNamespace(base=base), "ann", available=False)
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "ann")
            await page.wait_for_url(f"{base}/desktop")
            await page.get_by_role("link", name="My schedule, adherence and requests").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/desktop/schedule")
            await expect(page.locator("#my-shifts")).to_contain_text(f"{tomorrow:%a %d %b}")
            await expect(page.locator("#my-shifts")).to_contain_text("12:00–12:30")  # the break
            await expect(page.locator("#my-adherence")).to_have_text("No published shift today.")

            # Time off for the whole shift, from the keyboard.
            await page.get_by_label("Shift", exact=True).focus()
            await page.get_by_label("Note", exact=True).first.fill("Dentist")
            await page.keyboard.press("Enter")
            await expect(page.locator("#my-schedule-saved")).to_have_text(
                "Time off asked: waiting for a supervisor"
            )
            row = page.locator("#my-requests tbody tr").first
            await expect(row).to_contain_text(f"Time off for Ann Agent {tomorrow:%a %d %b} 09:00")
            await expect(row.locator(".request-state")).to_have_text("requested (waiting for a supervisor)")
            await expect(row.get_by_role("button", name="Cancel", exact=False)).to_be_visible()
            box = await page.locator("#my-requests").bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1280

            # The supervisor approves by keyboard: Bob still covers Monday.
            boss = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(boss, base, "sup-sol")
            await boss.wait_for_url(f"{base}/supervisor")
            await boss.get_by_role("link", name="swaps and time off").focus()
            await boss.keyboard.press("Enter")
            await boss.wait_for_url(f"{base}/supervisor/workforce/requests")
            await expect(boss.locator("#requests-table")).to_contain_text("waiting for you")
            await boss.get_by_role("button", name="Approve: Time off for Ann Agent", exact=False).focus()
            await boss.keyboard.press("Enter")
            await expect(boss.locator("#requests-saved")).to_contain_text(": approved")
            await expect(boss.locator("#requests-table")).to_contain_text("No open requests.")
            await expect(desk.locator("#schedule-notice")).to_contain_text("approved")
            await page.reload()
            await expect(page.locator("#my-requests .request-state").first).to_have_text("approved")
            await expect(page.locator("#my-shifts")).to_contain_text("No published shift in the coming days.")
        finally:
            await browser.close()
