"""Issue #12's browser test: a CSAT of 1 from a gold customer creates a follow-up for the team
lead (the worker's periodic alerts job evaluates the shipped rule), which appears in the lead's
console and on the customer's timeline; the lead works it by keyboard at 1280x800 (filter, open,
change the state, add a note)."""

from __future__ import annotations

from sqlalchemy import update

from customers.models import ValueTier
from interactions.models import Interaction
from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent, make_customer, make_feedback, make_interaction, make_team
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

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-follow-up.png"
TITLE = "CSAT 1 from a gold customer"


async def _seed(backend_url: str, schema: str | None) -> None:
    """Team "alpha" led by Lena; its agent Ann handled a gold customer's chat, rated CSAT 1."""
    db = Database(backend_url, schema=schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        lena = await create_user(
            s, username="lead-lena", display_name="Lena Lead", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await create_user(
            s, username="sup-sam", display_name="Sam Supervisor", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
        await make_team(s, "alpha", lena)
        ann = await make_agent(s, name="Ann Agent", teams=["alpha"])
        customer = await make_customer(s, value_tier=ValueTier.GOLD, display_name="Gail Gold")
        chat = await make_interaction(s, customer=customer, agent=ann)
        await s.execute(update(Interaction).where(Interaction.id == chat.id).values(topic="card-declined"))
        await s.commit()
        await make_feedback(s, chat, csat=1)
    await db.dispose()


@needs_chromium
async def test_a_gold_customers_csat_of_1_becomes_the_team_leads_follow_up(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="follow-ups")
    await _seed(backend_url, settings.database_schema)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        # The app seeded the shipped rules at start-up; the worker's maintenance pass queues the
        # alerts job and a work horse raises the follow-up.
        output = await run_burst_worker(settings)
        assert "'raised': 1" in output, output
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "lead-lena")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Follow-ups raised by alert rules").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/follow-ups")

            # Only mine: type-ahead in the owner select, then Enter on the Filter button.
            await page.get_by_label("Owner").focus()
            await page.keyboard.press("m")
            await page.get_by_role("button", name="Filter").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/follow-ups?owner=me*")
            rows = page.locator("#follow-ups tbody tr")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_contain_text(TITLE)
            await expect(rows.first).to_contain_text("Lena Lead")
            await expect(rows.first).to_contain_text("team lead")
            await expect(rows.first).to_contain_text("Open")

            await page.get_by_role("link", name=TITLE).focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/follow-ups/*")
            await expect(page.locator("#follow-up-owner")).to_contain_text("Lena Lead (team lead)")
            await expect(page.locator("#follow-up-links")).to_contain_text("card-declined")
            # On the customer's timeline: raised, and to whom.
            raised = page.locator(".timeline li", has_text="follow up raised")
            await expect(raised).to_have_count(1)
            await expect(raised).to_contain_text("→ Lena Lead")

            # Work it: In progress, with a note, all from the keyboard.
            await page.get_by_label("Change the state").focus()
            await page.keyboard.press("i")
            await page.get_by_label("Add a note").focus()
            await page.keyboard.type("Called Gail back; card re-issued.")
            await page.get_by_role("button", name="Save").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/follow-ups/*?saved=1")
            await expect(page.locator("#follow-up-state")).to_have_text("In progress")
            await expect(page.locator("#follow-up-notes")).to_contain_text(
                "Lena Lead: Called Gail back; card re-issued."
            )
            await expect(page.locator(".timeline li", has_text="follow up in progress")).to_have_count(1)
            # It fits the 1280-wide screen: nothing scrolls sideways.
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await screenshot(page, SCREENSHOT)

            # Saving nothing is refused at the form (naming the field), not with an error page.
            await page.get_by_role("button", name="Save").focus()
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("alert")).to_contain_text("Nothing to change")
            await expect(page.get_by_role("alert")).to_contain_text("(state)")
            await expect(page.locator("#follow-up-state")).to_have_text("In progress")
        finally:
            await browser.close()


IMPROVEMENTS_SHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-improvements.png"


@needs_chromium
async def test_follow_ups_with_one_cause_become_an_improvement_item(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    """The big loop: two teams' follow-ups with the cause "app outage" are grouped into one item
    with a cross-team owner, by keyboard; the page shows its age and the weekly trend chart."""
    from playwright.async_api import async_playwright, expect

    from experience.jobs import run_alerts
    from experience.models import FollowUp

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="improvements")
    await _seed(backend_url, settings.database_schema)
    db = Database(backend_url, schema=settings.database_schema)
    async with db.sessionmaker() as s:
        bea = await make_agent(s, name="Bea Agent", teams=["beta"])
        customer = await make_customer(s, value_tier=ValueTier.PLATINUM)
        chat = await make_interaction(s, customer=customer, agent=bea)
        await s.execute(update(Interaction).where(Interaction.id == chat.id).values(topic="card-declined"))
        await s.commit()
        await make_feedback(s, chat, csat=2)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        assert (await run_alerts(db))["raised"] == 2
        async with db.sessionmaker() as s:
            await s.execute(update(FollowUp).values(cause="app outage"))
            await s.commit()
        await db.dispose()
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-sam")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="improvement items").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/improvements")
            candidate = page.locator("#candidates tbody tr").first
            await expect(candidate).to_contain_text("card-declined · app outage")
            await expect(candidate.locator("td").nth(0)).to_have_text("2")  # follow-ups
            await expect(candidate.locator("td").nth(1)).to_have_text("2")  # teams

            await page.get_by_label("Title of the item for card-declined · app outage").focus()
            await page.keyboard.type("Card app outages decline payments")
            await page.keyboard.press("Tab")  # to the owner select
            await page.keyboard.press("s")  # Sam Supervisor
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")  # Create item
            await page.wait_for_url(f"{base}/supervisor/improvements?saved=created")
            item = page.locator("#improvements tbody tr").first
            await expect(item).to_contain_text("Card app outages decline payments")
            await expect(item.locator("td").nth(0)).to_have_text("2 (2)")
            await expect(item.locator("td").nth(1)).to_have_text("2")
            owner = item.get_by_label("Owner of Card app outages decline payments")
            assert await owner.evaluate("s => s.selectedOptions[0].textContent") == "Sam Supervisor"
            await expect(page.locator("#candidates tbody")).to_contain_text("Nothing to group")
            await expect(page.locator("#improvements-chart")).to_have_attribute("data-drawn", "true")
            await expect(page.locator("#trend tbody tr").last).to_contain_text("2")
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await screenshot(page, IMPROVEMENTS_SHOT)
        finally:
            await browser.close()
