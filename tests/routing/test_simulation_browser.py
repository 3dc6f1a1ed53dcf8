"""The what-if simulation page in a real browser at 1280x800, from the keyboard (issue #13 item 6):
a supervisor opens it from the console home, compares the live rule set with today's agents
against 10 % fewer, submits with Enter, sees the job waiting for a worker, then (the real worker
process having run it) the side-by-side table and the chart; a bad volume is shown at its field."""

from __future__ import annotations

from routing import service as routing_service
from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent, make_queue
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
from tests.workers import run_burst_worker
from workforce.models import QueueMember

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-simulation.png"


@needs_chromium
async def test_supervisor_compares_two_rosters_by_keyboard(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="simulation")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-sam", display_name="Sam Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        queue = await make_queue(s, name="retail", channels=["voice", "chat"])
        for n in range(10):
            agent = await make_agent(s, name=f"Agent {n}")
            s.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
        await s.commit()
        body = {
            "filters": [
                {
                    "name": "gold",
                    "when": 'customer.tier == "gold"',
                    "steps": [{"queue": "retail", "priority": 3}],
                }
            ],
            "default_filter": {"name": "default", "steps": [{"queue": "retail"}]},
            "on_final_timeout": "callback",
        }
        draft = await routing_service.create_draft(s, body=body, comment="simulated", actor_id=None)
        await routing_service.publish(s, version=draft.version, actor_id=None)
        await s.commit()
    await db.dispose()

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="What-if simulation", exact=False).focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/simulation")
            # The defaults: the live rule set on both sides, today's 10 agents against 90 %.
            await expect(page.get_by_label("Rule set").first).to_have_value(str(draft.version))
            await expect(page.locator("#f-b_staffing")).to_have_value("90")
            assert await page.evaluate("document.documentElement.scrollWidth <= 1280")

            volumes = page.get_by_label("Contacts per interval")
            await volumes.fill("30, forty")
            await page.keyboard.press("Enter")
            await expect(volumes).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#e-volumes")).to_be_visible()

            await page.get_by_label("Contacts per interval").fill("30, 40, 40, 30")
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/workforce/simulation?job=*")
            await expect(page.locator("#simulation-result")).to_contain_text("Waiting for a worker")
            await expect(page.get_by_label("Contacts per interval")).to_have_value("30, 40, 40, 30")

            await run_burst_worker(settings)
            table = page.locator("#simulation-table")
            await expect(table).to_be_visible(timeout=15_000)
            await expect(table).to_contain_text("10 agents")
            await expect(table).to_contain_text("9 agents")
            await expect(table).to_contain_text(f"version {draft.version}")
            await expect(page.locator("#simulation-chart")).to_have_attribute("data-drawn", "true")
            await screenshot(page.locator("section:has(#simulation-result)"), SCREENSHOT)
        finally:
            await browser.close()
