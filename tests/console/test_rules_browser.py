"""/supervisor/rules in a real browser at 1280x800, from the keyboard (issue #11 item 3): a supervisor
starts a draft from the live rules, adds a filter and types a broken condition, sees the error at
its position (the caret under the column), fixes it with the completion offered, saves, dry-runs
"a platinum senior chatting in Cantonese about a lost card at 18:05" and sees the agents by name
(and why another is not eligible), publishes, and the next chat is routed by the new rule to the
agent the dry-run ranked first."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from interactions.models import Interaction
from routing import service as routing_service
from routing.models import Offer
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import demo_catalogue, everything_to, make_agent, make_staff_user
from tests.helpers import eventually, truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
    sign_in,
)
from workforce.models import Presence, Queue

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "supervisor-rules-dry-run.png"


async def _seed(db: Database) -> dict[str, str]:
    """The demo queues and skills; version 1 (everything to retail) live; three available agents:
    Mei Wong and Lee Chan in "cards" (card_fraud 4 and 1), Dana Desk in "retail"."""
    await demo_catalogue(db)
    async with db.sessionmaker() as s:
        sup = await make_staff_user(s, Role.SUPERVISOR, name="Sam Supervisor", username="sup-rules")
        queues = {q.name: q for q in await s.scalars(select(Queue))}
        ids = {}
        for username, name, queue, fraud in (
            ("mei", "Mei Wong", "cards", 4),
            ("lee", "Lee Chan", "cards", 1),
            ("dana", "Dana Desk", "retail", 0),
        ):
            user = await make_staff_user(s, name=name, username=username)
            agent = await make_agent(
                s,
                user,
                presence=Presence.AVAILABLE,
                languages=["en", "yue"],
                queues=[queues[queue]],
                skills={"card_fraud": fraud} if fraud else None,
            )
            ids[name] = str(agent.id)
        await routing_service.create_draft(s, body=everything_to("retail"), comment="Start", actor_id=sup.id)
        await routing_service.publish(s, version=1, actor_id=sup.id)
        await s.commit()
    return ids


@needs_chromium
async def test_supervisor_edits_dry_runs_and_publishes_a_rule(
    backend_url, redis_handle, redis_sync, tmp_path
):
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="rules")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    agents = await _seed(db)

    async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            keys = page.keyboard
            await sign_in(page, base, "sup-rules")
            await page.wait_for_url(f"{base}/supervisor")
            await page.get_by_role("link", name="Routing rules: edit, dry-run, publish, roll back").focus()
            await keys.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/rules")
            await expect(page.locator("#version-1")).to_contain_text("Sam Supervisor")
            await page.get_by_role("link", name="New draft from the live version (1)").focus()
            await keys.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/rules/new")

            # A new filter, moved before the catch-all: the page comes back focused where work goes on.
            await page.get_by_role("button", name="Add a filter").focus()
            await keys.press("Enter")
            await expect(page.locator("#f1-name")).to_be_focused()
            await keys.type("lost-cards")
            await page.get_by_role("button", name="Move filter 2 up").focus()
            await keys.press("Enter")
            await expect(page.locator("#f0-name")).to_have_value("lost-cards")

            # The condition is checked as it is typed: completions, then the error at its column.
            when = page.locator("#f0-when")
            await when.focus()
            await keys.type("interaction.to")
            await expect(page.locator('#f0-when-options option[value="interaction.topic"]')).to_have_count(1)
            await keys.type('pic = "card_fraud"')
            check = page.locator("#f0-when-check")
            await expect(check.locator("p.error")).to_have_text("unexpected character '=' at column 19")
            await expect(check.locator("pre.caret")).to_have_text(
                'interaction.topic = "card_fraud"\n' + " " * 18 + "^"
            )
            await expect(when).to_have_attribute("aria-invalid", "true")
            for _ in range(len('= "card_fraud"')):
                await keys.press("Backspace")
            await keys.type('== "card_fraud"')
            await expect(check).to_have_text("✓ Valid condition")
            await expect(when).not_to_have_attribute("aria-invalid", "true")

            await page.locator("#f0-s0-queue").focus()
            await page.locator("#f0-s0-queue").select_option("cards")
            await page.locator("#f0-s0-required_skills").focus()
            await keys.type("card_fraud=3")
            await page.locator("#comment").focus()
            await keys.press("Control+a")
            await keys.type("Lost cards go to the card team")
            await page.get_by_role("button", name="Save draft").focus()
            await keys.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/rules/2?saved=1")
            await expect(page.locator("#rules-diff")).to_contain_text("filter 'lost-cards'")

            # Dry-run a described contact under the draft.
            form = page.locator("#dry-run-form")
            await form.get_by_label("Tier").select_option("platinum")
            await form.get_by_label("Senior").check()
            await form.get_by_label("Language").fill("yue")
            await form.get_by_label("Channel").select_option("chat")
            await form.get_by_label("Topic").select_option("card_fraud")
            await form.get_by_label("Time of day").focus()
            await keys.type("1805")
            await form.get_by_role("button", name="Dry-run this contact").focus()
            await keys.press("Enter")
            result = page.locator("#dry-run-result")
            await expect(result).to_be_focused()  # the answer takes the focus when it arrives
            await expect(result.locator("ol.trace li").first).to_contain_text("lost-cards")
            await expect(result.locator("ol.trace li").first).to_contain_text("matched")
            await expect(page.locator("#dry-run-agents tbody tr")).to_have_count(1)
            await expect(page.locator("#dry-run-agents tbody tr").first).to_contain_text("Mei Wong")
            await expect(page.locator("#dry-run-others")).to_contain_text("Lee Chan")
            await expect(page.locator("#dry-run-others")).to_contain_text(
                "skill too low: card_fraud=1, needs 3"
            )
            await screenshot(page, SCREENSHOT)

            await page.get_by_role("button", name="Publish version 2").focus()
            await keys.press("Enter")
            await page.wait_for_url(f"{base}/supervisor/rules/2?done=published")
            await expect(page.get_by_role("status").first).to_contain_text("Published")

            # The next chat about a lost card is routed by the new rule, without a restart.
            async with httpx.AsyncClient(base_url=base, timeout=10) as api:
                started = await api.post(
                    "/chat/start", json={"name": "Ada Lost", "topic": "card_fraud"}, headers={"Origin": base}
                )
            assert started.status_code == 201, started.text
            chat_id = started.json()["interaction_id"]

            async def offered_to() -> str | None:
                async with db.sessionmaker() as s:
                    offer = await s.scalar(select(Offer).where(Offer.interaction_id == chat_id))
                return str(offer.agent_id) if offer is not None else None

            async def offered() -> bool:
                return await offered_to() is not None

            await eventually(offered, what="an offer for the lost-card chat")
            assert await offered_to() == agents["Mei Wong"]
            async with db.sessionmaker() as s:
                chat = await s.get(Interaction, chat_id)
                assert chat is not None and chat.rule_set_version == 2
                queue = await s.get(Queue, chat.queue_id)
                assert queue is not None and queue.name == "cards"
                audited = list(
                    await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == "default:2"))
                )
            assert audited == ["rule_set.draft_created", "rule_set.published"]
        finally:
            await browser.close()
            await db.dispose()
