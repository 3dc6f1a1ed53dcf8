"""Issue #12's browser test for the experience dashboard: with answers and pulses in the database,
the worker's periodic rollup job fills the dashboard's figures; a supervisor opens
/supervisor/experience by keyboard at 1280x800 and the trend and group charts are drawn with data;
agents' EX of a small team reads "fewer than 5 responses"; the drill-down lists the answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from customers.models import ValueTier
from interactions.feedback_models import CustomerFeedback
from interactions.pulse_models import AgentPulse, PulseKind
from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent, make_customer, make_interaction, make_queue
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

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-experience.png"


async def _seed(backend_url: str, schema: str | None) -> None:
    """Two days of answers: team "alpha" (6 agents, all answering pulses) and "beta" (2 agents)."""
    db = Database(backend_url, schema=schema)
    await truncate_all(db)
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    async with db.sessionmaker() as s:
        await create_user(
            s, username="sup-sam", display_name="Sam Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
        queue = await make_queue(s, "cards")
        agents = [await make_agent(s, name=f"Alpha {n}", teams=["alpha"]) for n in range(6)]
        agents += [await make_agent(s, name=f"Beta {n}", teams=["beta"]) for n in range(2)]
        customer = await make_customer(s, value_tier=ValueTier.GOLD, display_name="Gail Gold")
        n = 0
        for back in (2, 1):
            at = today - timedelta(days=back)
            for agent in agents:
                n += 1
                interaction = await make_interaction(s, customer=customer, agent=agent)
                interaction.queue_id = queue.id
                s.add(
                    CustomerFeedback(
                        interaction_id=interaction.id,
                        customer_id=customer.id,
                        csat=1 + n % 5,
                        nps=n % 11,
                        created_at=at,
                    )
                )
                s.add(
                    AgentPulse(
                        agent_id=agent.id,
                        interaction_id=interaction.id,
                        kind=PulseKind.INTERACTION,
                        score=1 + (n * 2) % 5,
                        tags=["system slow"] if n % 2 else [],
                        queue="cards",
                        team=agent.teams[0],
                        day=at.date(),
                        created_at=at,
                    )
                )
        await s.commit()
    await db.dispose()


@needs_chromium
async def test_the_dashboard_draws_its_charts_with_data(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="experience")
    await _seed(backend_url, settings.database_schema)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        output = await run_burst_worker(settings)  # the maintenance pass queues the rollup job
        assert "'days': 2" in output, output
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Experience dashboard", exact=False).focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/experience")

            for chart in ("experience-trend", "experience-groups"):
                canvas = page.locator(f"#{chart}")
                await expect(canvas).to_have_attribute("data-drawn", "true")
                # Drawn with data: the canvas has non-blank pixels and Chart.js holds the points.
                drawn = await page.evaluate(
                    """(id) => {
                        const c = document.getElementById(id);
                        const chart = window.Chart.getChart(c);
                        const points = chart.data.datasets[0].data.filter((v) => v !== null).length;
                        const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                        let ink = 0;
                        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
                        return { points, ink };
                    }""",
                    chart,
                )
                assert drawn["points"] >= 2 and drawn["ink"] > 1000, (chart, drawn)

            table = page.locator("#experience-summary")
            await expect(table.get_by_role("row", name="alpha")).to_contain_text("(n 12)")
            await expect(table.get_by_role("row", name="beta")).to_contain_text("fewer than 5 responses")
            await expect(page.locator("#experience-tags")).to_contain_text("system slow")
            await screenshot(page, SCREENSHOT)

            # Keyboard: change the grouping and submit; then drill down into a tag.
            await page.get_by_label("Group by").focus()
            await page.get_by_label("Group by").select_option("queue")
            await page.get_by_role("button", name="Show").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#experience-summary")).to_contain_text("Cards")
            await page.get_by_role("link", name="Answers on interactions tagged system slow").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#experience-interactions tbody tr")).to_have_count(8)
            await expect(page.locator("#experience-interactions")).to_contain_text("customer timeline")
        finally:
            await browser.close()
