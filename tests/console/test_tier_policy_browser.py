"""Issue #11 item 4: the value-tier policy editor in a real browser at 1280x800 — editing a threshold
recomputes the worked examples before saving (htmx), an invalid draft shows its error at the field,
and saving stores a new version (audited). Also the wallboard's filters and charts (item 1): a team
filter kept in the URL narrows the agents, and the charts are drawn from the pushed figures."""

from __future__ import annotations

from sqlalchemy import select

from customers.models import TierPolicyVersion
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import make_agent, make_staff_user, make_team
from tests.helpers import truncate_all
from tests.live_app import CHROMIUM, CHROMIUM_ARGS, live_settings, needs_chromium, running_app, sign_in
from workforce.models import Presence


@needs_chromium
async def test_editing_a_threshold_recomputes_the_worked_example(
    backend_url, redis_handle, redis_sync, tmp_path
):
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="tierpolicy")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await make_staff_user(s, Role.SUPERVISOR, name="Tia Supervisor", username="sup-tia")
        for name, team in (("Nora North", "north"), ("Sid South", "south")):
            user = await make_staff_user(s, name=name, username=name.split()[0].lower())
            await make_agent(s, user, presence=Presence.AVAILABLE, teams=[team])
        await make_team(s, "north", display_name="North")
        await make_team(s, "south", display_name="South")

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await sign_in(page, base, "sup-tia")
            await page.wait_for_url(f"{base}/supervisor")

            # The wallboard: a team filter in the URL narrows the agents; the charts are drawn.
            await page.goto(f"{base}/supervisor?team=north")
            await expect(page.locator("#floor[data-pushed-at]")).to_be_attached()
            await expect(page.locator("#wallboard-agents")).to_contain_text("Nora North")
            await expect(page.locator("#wallboard-agents")).not_to_contain_text("Sid South")
            await expect(page.locator("#floor-team")).to_have_value("north")
            await expect(page.locator("#chart-arrivals[data-drawn-at]")).to_be_attached()
            await expect(page.locator("#chart-service-level[data-series]")).to_be_attached()

            await page.goto(f"{base}/supervisor/tier-policy")
            # The "family with a mortgage" sample: 8 + 20 + 1 + 2*tenure points -> silver by default.
            family = page.locator("#tier-examples-table tr", has_text="family with a mortgage")
            await expect(family.locator(".draft-tier")).to_contain_text("silver")
            silver = page.get_by_label("silver", exact=True)
            gold = page.get_by_label("gold", exact=True)
            await gold.fill("40")  # the sample's points now reach gold
            await expect(family.locator(".draft-tier")).to_contain_text("gold", timeout=3_000)
            await expect(family.locator(".draft-tier")).to_contain_text("moves from silver")

            await silver.fill("50")  # above gold: refused at its field, nothing saved
            await expect(page.locator("#err-thresholds-silver")).to_contain_text("below gold", timeout=3_000)
            await silver.fill("25")
            await expect(page.locator("#err-thresholds-silver")).to_be_empty(timeout=3_000)
            await page.get_by_role("button", name="Save as a new version").click()
            await expect(page.locator("#tier-notice")).to_contain_text("Version 1 saved")
        finally:
            await browser.close()

    async with db.sessionmaker() as s:
        (version,) = (await s.scalars(select(TierPolicyVersion))).all()
        assert version.policy["thresholds"]["gold"] == 40
        (entry,) = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "tier_policy.updated"))
        ).all()
        assert (
            entry.data["before"]["thresholds"]["gold"] == 60
            and entry.data["after"]["thresholds"]["gold"] == 40
        )
    await db.dispose()
