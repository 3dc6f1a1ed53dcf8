"""The failed-jobs page in a real browser at 1280x800, driven from the keyboard: an admin signs in,
follows the home page's link, retries one job and discards another (Enter on each button)."""

from __future__ import annotations

import rq

from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.helpers import TEST_PASSWORD, truncate_all
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
from tests.wiring.failing_jobs import fail_with
from tests.workers import run_burst_worker

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "admin-jobs.png"


HTMX_IDLE = "!document.querySelector('.htmx-settling, .htmx-added, .htmx-request')"


@needs_chromium
async def test_admin_retries_and_discards_failed_jobs_from_the_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="jobs")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="ops-admin", display_name="Alex Admin", role=Role.ADMIN, password=TEST_PASSWORD
        )
        await s.commit()
    await db.dispose()
    connection = redis_handle.sync_client()
    queue = rq.Queue("default", connection=connection)
    retried = queue.enqueue(fail_with, "ledger offline")
    discarded = queue.enqueue(fail_with, "mail relay refused")
    await run_burst_worker(settings)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("dialog", accept_dialog)
            await sign_in(page, base, "ops-admin")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Failed background jobs").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/admin/jobs")

            table = page.locator("#failed-jobs table")
            await expect(table).to_contain_text("RuntimeError: ledger offline")
            await expect(table).to_contain_text("RuntimeError: mail relay refused")
            await screenshot(page, SCREENSHOT)

            await page.locator(f"#job-{retried.id}").get_by_role("button", name="Retry").focus()
            await page.keyboard.press("Enter")
            notice = page.locator("#jobs-notice")
            await expect(notice).to_contain_text("queued again")
            await expect(notice).to_be_focused()
            await expect(page.locator(f"#job-{retried.id}")).to_have_count(0)
            assert retried.id in queue.job_ids
            # The list was swapped in: Chrome may focus its autofocus notice natively on insertion,
            # before htmx's settle step (20 ms on) wires the new forms. Go on once htmx is done, as
            # a person reading the notice would.
            await page.wait_for_function(HTMX_IDLE)

            await page.locator(f"#job-{discarded.id}").get_by_role("button", name="Discard").focus()
            await page.keyboard.press("Enter")
            await expect(notice).to_contain_text("discarded")
            await expect(page.locator("#failed-jobs")).to_contain_text("No failed jobs.")
            assert not rq.job.Job.exists(discarded.id, connection=connection)
        finally:
            await browser.close()
            connection.close()
