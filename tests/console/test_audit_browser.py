"""/supervisor/audit in a real browser at 1280x800, driven from the keyboard: a supervisor opens
the audit log from the console home, filters it to one administrator's changes and sees the
change's before -> after; a bad time range is shown at its field, not as an error page."""

from __future__ import annotations

from switchboard.auth.models import Role
from switchboard.auth.service import change_role, create_user, set_active
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

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-audit.png"


async def _seed(backend_url: str, schema: str | None) -> None:
    """Two administrators each change a user (through the same service calls as the app)."""
    db = Database(backend_url, schema=schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        ops = await create_user(
            s, username="ops-admin", display_name="Alex Admin", role=Role.ADMIN, password=TEST_PASSWORD
        )
        other = await create_user(
            s, username="it-admin", display_name="Ira Admin", role=Role.ADMIN, password=TEST_PASSWORD
        )
        await create_user(
            s, username="sup-sam", display_name="Sam Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        kim = await create_user(
            s, username="agent-kim", display_name="Kim Agent", role=Role.AGENT, password=TEST_PASSWORD
        )
        lee = await create_user(
            s, username="agent-lee", display_name="Lee Agent", role=Role.AGENT, password=TEST_PASSWORD
        )
        await s.commit()
        await change_role(s, user_id=kim.id, role=Role.SUPERVISOR, actor=ops)
        await set_active(s, user_id=lee.id, active=False, actor=other)
        await s.commit()
    await db.dispose()


@needs_chromium
async def test_supervisor_filters_the_audit_log_by_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="audit")
    await _seed(backend_url, settings.database_schema)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")  # a supervisor lands on the console
            await page.get_by_role("link", name="Audit log: who changed what").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/audit")
            entries = page.locator("#audit-entries tbody")
            await expect(entries).to_contain_text("user.role_changed")
            await expect(entries).to_contain_text("user.disabled")

            # Only ops-admin's changes: type in "Who", Enter submits the form.
            await page.get_by_label("Who (username)").focus()
            await page.keyboard.type("ops-admin")
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/audit?*actor=ops-admin*")
            rows = entries.locator("tr")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_contain_text("ops-admin")
            await expect(rows.first).to_contain_text("user.role_changed")
            await expect(rows.first.locator("ul.changes li")).to_have_text("role: agent → supervisor")
            await expect(page.get_by_role("link", name="Export these entries as CSV")).to_have_attribute(
                "href", "/api/audit/export.csv?actor=ops-admin"
            )
            await screenshot(page, SCREENSHOT)

            # A range that ends before it starts: the page says which field, the filters stay.
            await page.get_by_label("From (UTC)").focus()
            await page.keyboard.type("2026-12-06 10:00")
            await page.get_by_label("Until (UTC)").focus()
            await page.keyboard.type("2026-12-06 09:00")
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("alert")).to_contain_text("until")
            await expect(page.get_by_label("Until (UTC)")).to_have_attribute("aria-invalid", "true")
            await expect(page.get_by_label("Who (username)")).to_have_value("ops-admin")
        finally:
            await browser.close()
