"""Administration in a real browser at 1280x800, from the keyboard (issue #11 item 4): a chat
needing a skill waits while the only available agent lacks it; a supervisor opens the agent from
the console, gives them the skill and saves; the agent's open desktop is offered the chat, with no
restart of anything. A mistyped proficiency is shown at its field first, and nothing is saved."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from sqlalchemy import select

from switchboard.auth.models import Role
from switchboard.auth.service import token_for
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import make_agent, make_queue, make_skills, make_staff_user
from tests.helpers import engine_caught_up, truncate_all
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
from workforce.models import AgentSkill, Presence

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "admin-agent.png"


@needs_chromium
async def test_a_supervisor_gives_an_agent_a_skill_and_the_waiting_chat_is_offered(
    backend_url, redis_handle, redis_sync, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="admin")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        await make_skills(s, "cards", "mortgages")
        await make_queue(s, "mortgages", channels=["chat"], required_skills={"mortgages": 3})
        kim = await make_staff_user(s, name="Kim Desk", username="desk-kim")
        sup = await make_staff_user(s, Role.SUPERVISOR, name="Sam Sup", username="sup-sam")
        agent = await make_agent(s, kim, presence=Presence.OFFLINE, skills={"cards": 4})
    sup_headers = {"Authorization": f"Bearer {token_for(sup, settings)[0]}"}
    redis = redis_handle.async_client()

    try:
        async with running_app(settings, tmp_path / "app.log") as base, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                desk = await sign_in_to_desktop(browser, SimpleNamespace(base=base), "desk-kim")
                async with httpx.AsyncClient(base_url=base, timeout=10) as api:
                    created = await api.post(
                        "/api/interactions",
                        json={
                            "channel": "chat",
                            "queue": "mortgages",
                            "identity": {"kind": "phone", "value": "+447400111222"},
                            "customer_name": "Ada Mortgage",
                        },
                        headers=sup_headers,
                    )
                    assert created.status_code == 201, created.text
                await engine_caught_up(redis)
                toasts = desk.locator(".offer-toast")
                await expect(toasts).to_have_count(0)  # the engine has the chat; Kim lacks the skill

                page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
                await sign_in(page, base, "sup-sam")
                await page.wait_for_url(f"{base}/supervisor")
                await page.get_by_role("link", name="Agents: skills, capacity, teams").focus()
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{base}/supervisor/agents")
                await page.get_by_role("link", name="Edit Kim Desk").focus()
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{base}/supervisor/agents/{agent.id}/edit")

                # A proficiency out of range: refused at its field, nothing saved.
                await page.get_by_label("mortgages").focus()
                await page.keyboard.type("9")
                await page.keyboard.press("Enter")
                errors = page.locator("#form-errors")
                await expect(errors).to_be_focused()
                await expect(errors).to_contain_text("skills: mortgages:")
                await expect(page.locator("#e-skills")).to_contain_text("less than or equal to 5")
                await expect(page.get_by_role("group", name="Skills (proficiency 1-5)")).to_have_attribute(
                    "aria-invalid", "true"
                )
                await screenshot(page, SCREENSHOT)

                await page.get_by_label("mortgages").fill("")
                await page.get_by_label("mortgages").focus()
                await page.keyboard.type("3")
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{base}/supervisor/agents?saved={agent.id}*")
                await expect(page.locator("#admin-notice")).to_have_text("Kim Desk: saved.")
                await expect(page.locator(f"#row-{agent.id}")).to_contain_text("mortgages 3")

                # The desktop is offered the chat: routing applied the change without a restart.
                await expect(toasts.locator(".customer-name")).to_have_text("Ada Mortgage", timeout=10_000)

                # The audit log has the change, before -> after.
                await page.goto(f"{base}/supervisor/audit?action=agent.updated")
                await expect(page.locator("#audit-entries tbody")).to_contain_text("mortgages")
            finally:
                await browser.close()
        async with db.sessionmaker() as s:
            levels = dict(
                (
                    await s.execute(
                        select(AgentSkill.skill_name, AgentSkill.proficiency).where(
                            AgentSkill.agent_id == agent.id
                        )
                    )
                ).all()
            )
        assert levels == {"cards": 4, "mortgages": 3}
    finally:
        await redis.aclose()
        await db.dispose()
