"""Wrap-up, notes, EX pulse and transfer end to end: a real uvicorn process (engine host on) and
Debian's chromium driven by Playwright.

1. Agent accepts an offer, adds a note, clicks "End / Wrap up", sees the ACW clock, cannot
   complete until a wrap-up code is chosen, completes, and rates the interaction with a tag.
2. Agent transfers to a named colleague with a note (second browser context); the tab leaves the
   sender's desktop and the colleague sees the note in the new tab.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from customers.models import ValueTier
from interactions.models import Interaction
from interactions.pulse_models import AgentPulse
from interactions.states import State
from switchboard.auth.models import Role
from switchboard.auth.service import token_for
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import make_agent, make_customer, make_queue, make_staff_user
from tests.helpers import truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    go_available,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
    sign_in_to_desktop,
)
from workforce.models import Agent, Presence

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "desktop-wrapup.png"
CUSTOMER_PHONE = "+447400777001"
QUEUE_SETTINGS = {
    "dispositions": ["card_reissued", "card_blocked", "resolved"],
    "canned": [{"title": "Card on its way", "body": "Your new card will arrive within 3-5 working days."}],
}


@dataclass
class Server:
    base: str
    db: Database
    supervisor_headers: dict[str, str]


async def _seed(db: Database, settings: Settings) -> dict[str, str]:
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "cards", channels=["chat"], wrap_up_seconds=45, settings=QUEUE_SETTINGS)
        supervisor = await make_staff_user(s, Role.SUPERVISOR, name="Sam Sup", username="wrap-sup")
        for username, name in (("wrap-a", "Dana Desk"), ("wrap-b", "Bea Backup")):
            user = await make_staff_user(s, name=name, username=username)
            await make_agent(s, user, presence=Presence.OFFLINE, teams=["Retail A"], queues=[queue])
        await make_customer(
            s,
            bare=True,
            phone=CUSTOMER_PHONE,
            verified=True,
            display_name="Margaret Hale",
            segments=["senior"],
            value_tier=ValueTier.GOLD,
        )
    return {"Authorization": f"Bearer {token_for(supervisor, settings)[0]}"}


@pytest.fixture
async def server(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[Server]:
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="wrapup")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    supervisor = await _seed(db, settings)
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield Server(base, db, supervisor)
    finally:
        await db.dispose()
        await db.dispose()


async def _new_chat(server: Server, subject: str) -> str:
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
        created = await api.post(
            "/api/interactions",
            json={
                "channel": "chat",
                "queue": "cards",
                "identity": {"kind": "phone", "value": CUSTOMER_PHONE},
                "subject": subject,
                "topic": "cards",
            },
            headers=server.supervisor_headers,
        )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _accept(page, interaction_id: str):
    from playwright.async_api import expect

    toast = page.locator(".offer-toast")
    await expect(toast).to_be_visible(timeout=10_000)
    await toast.get_by_role("button", name="Accept").click()
    panel = page.locator(f"#panel-{interaction_id}")
    await expect(panel).to_be_visible(timeout=10_000)
    await expect(panel.get_by_role("button", name="End / Wrap up")).to_be_visible(timeout=10_000)
    return panel


@needs_chromium
async def test_note_wrap_up_with_code_complete_and_pulse(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await sign_in_to_desktop(browser, server, "wrap-a")
            interaction_id = await _new_chat(server, "Replacement card has not arrived")
            panel = await _accept(page, interaction_id)

            await panel.get_by_label("New note").fill("Card posted on the 3rd; customer moved house.")
            await panel.get_by_role("button", name="Add note").click()
            await expect(panel.locator(".note-list")).to_contain_text("customer moved house")

            # Canned response goes into the chat reply box.
            await panel.get_by_role("button", name="Insert Card on its way").click()
            await expect(panel.locator(f"#chat-reply-body-{interaction_id}")).to_have_value(
                re.compile("arrive within 3-5 working days")
            )

            await panel.get_by_role("button", name="End / Wrap up").click()
            clock = panel.locator(".acw-clock")
            await expect(clock).to_have_text(re.compile(r"^0:[0-4]\d left$"), timeout=10_000)
            await expect(page.locator(f"#tab-{interaction_id}")).to_contain_text("wrap-up")
            # The socket updates the tab, the header's state and the wrap-up bar in place: the
            # panel is not replaced, so the reply being typed is still there.
            await expect(panel.locator(f"#state-{interaction_id}")).to_have_text("Wrap-up")
            await expect(panel.locator(f"#chat-reply-body-{interaction_id}")).to_have_value(
                re.compile("arrive within 3-5 working days")
            )
            complete = panel.get_by_role("button", name="Complete")
            await expect(complete).to_be_disabled()
            await panel.get_by_label("Wrap-up code").select_option("card_reissued")
            await expect(complete).to_be_enabled()

            await panel.get_by_label("Wrap-up code").focus()
            await screenshot(page, SCREENSHOT)

            await complete.click()
            await expect(page.locator(f"#tab-{interaction_id}")).to_have_count(0, timeout=10_000)
            pulse = page.locator(f"#pulse-{interaction_id}")
            await expect(pulse).to_be_visible()
            await pulse.get_by_label("System slow").check()
            await pulse.get_by_role("button", name="4", exact=True).click()
            await expect(pulse).to_contain_text("Thanks")
        finally:
            await browser.close()

    async with server.db.sessionmaker() as s:
        row = await s.get(Interaction, uuid.UUID(interaction_id))
        assert row.state is State.COMPLETED and row.disposition == "card_reissued"
        (rating,) = (await s.scalars(select(AgentPulse))).all()
        assert rating.interaction_id == row.id and rating.score == 4 and rating.tags == ["system slow"]
        assert rating.queue == "cards" and rating.team == "Retail A"


@needs_chromium
async def test_transfer_to_a_named_agent_carries_the_note(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            sender = await sign_in_to_desktop(browser, server, "wrap-a")
            receiver = await sign_in_to_desktop(browser, server, "wrap-b", available=False)
            interaction_id = await _new_chat(server, "Payment I don't recognise")
            panel = await _accept(sender, interaction_id)
            await go_available(receiver)

            await panel.get_by_text("Transfer…").click()  # opening the dialog re-reads who is available
            agent_select = panel.get_by_label("To agent")
            await expect(agent_select.locator("option", has_text="Bea Backup")).to_have_count(
                1, timeout=10_000
            )
            await agent_select.select_option(label="Bea Backup")
            await panel.get_by_label("Warm (stay until they accept)").check()
            await panel.get_by_label("Note for the next agent").fill("Verified; disputes two card payments.")
            await panel.get_by_role("button", name="Transfer", exact=True).click()
            # Warm: the sender stays with the customer while Bea is consulted.
            pending = panel.locator(f"#consult-{interaction_id}")
            await expect(pending).to_contain_text("Warm transfer to Bea Backup", timeout=10_000)
            await expect(sender.locator(f"#tab-{interaction_id}")).to_have_count(1)

            toast = receiver.locator(".offer-toast")
            await expect(toast).to_be_visible(timeout=10_000)
            await toast.get_by_role("button", name="Accept").click()
            # Only once Bea accepted does the conversation leave the sender's desktop.
            await expect(sender.locator(f"#tab-{interaction_id}")).to_have_count(0, timeout=10_000)
            await expect(sender.locator(f"#panel-{interaction_id}")).to_have_count(0)
            new_panel = receiver.locator(".interaction-panel:not([hidden])")
            await expect(new_panel.locator(".transfer-handover")).to_contain_text(
                "Verified; disputes two card payments.", timeout=10_000
            )
            await expect(new_panel.locator(".transfer-handover")).to_contain_text("Dana Desk")
        finally:
            await browser.close()

    async with server.db.sessionmaker() as s:
        parent = await s.get(Interaction, uuid.UUID(interaction_id))
        assert parent.state is State.TRANSFERRED
        child = await s.scalar(select(Interaction).where(Interaction.parent_id == parent.id))
        bea = await s.scalar(select(Agent).where(Agent.display_name == "Bea Backup"))
        assert child.agent_id == bea.id and child.attributes["transfer"]["mode"] == "warm"


@needs_chromium
async def test_withdrawn_warm_transfer_keeps_the_customer_with_the_sender(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            sender = await sign_in_to_desktop(browser, server, "wrap-a")
            receiver = await sign_in_to_desktop(browser, server, "wrap-b", available=False)
            interaction_id = await _new_chat(server, "Standing order question")
            panel = await _accept(sender, interaction_id)
            await go_available(receiver)

            await panel.get_by_text("Transfer…").click()
            agent_select = panel.get_by_label("To agent")
            await expect(agent_select.locator("option", has_text="Bea Backup")).to_have_count(
                1, timeout=10_000
            )
            await agent_select.select_option(label="Bea Backup")
            await panel.get_by_label("Warm (stay until they accept)").check()
            await panel.get_by_role("button", name="Transfer", exact=True).click()
            toast = receiver.locator(".offer-toast")
            await expect(toast).to_be_visible(timeout=10_000)

            await panel.get_by_role("button", name="Withdraw transfer").click()
            # Bea's offer is rescinded; the sender keeps the tab and gets the dialog back.
            await expect(toast).to_have_count(0, timeout=10_000)
            await expect(panel.locator(f"#consult-{interaction_id}")).to_have_count(0)
            await expect(panel.get_by_text("Transfer…")).to_be_visible()
            await expect(sender.locator(f"#tab-{interaction_id}")).to_have_count(1)
        finally:
            await browser.close()

    async with server.db.sessionmaker() as s:
        parent = await s.get(Interaction, uuid.UUID(interaction_id))
        sender_agent = await s.scalar(select(Agent).where(Agent.display_name == "Dana Desk"))
        assert parent.state is State.CONNECTED and parent.agent_id == sender_agent.id
        child = await s.scalar(select(Interaction).where(Interaction.parent_id == parent.id))
        assert child.state is State.FAILED and child.agent_id is None
        assert child.attributes["transfer"]["consult"] == "cancelled"


async def _warm_transfer_to_bea(panel, note: str) -> None:
    from playwright.async_api import expect

    await panel.get_by_text("Transfer…").click()
    agent_select = panel.get_by_label("To agent")
    await expect(agent_select.locator("option", has_text="Bea Backup")).to_have_count(1, timeout=10_000)
    await agent_select.select_option(label="Bea Backup")
    await panel.get_by_label("Warm (stay until they accept)").check()
    await panel.get_by_label("Note for the next agent").fill(note)
    await panel.get_by_role("button", name="Transfer", exact=True).click()


@needs_chromium
async def test_warm_transfer_offer_says_who_and_why_and_a_refusal_or_miss_comes_back_at_once(
    server: Server,
) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            sender = await sign_in_to_desktop(browser, server, "wrap-a")
            receiver = await sign_in_to_desktop(browser, server, "wrap-b", available=False)
            interaction_id = await _new_chat(server, "New PIN")
            panel = await _accept(sender, interaction_id)
            await go_available(receiver)

            # The target's offer says it is a warm transfer, from whom, with the note: before accepting.
            await _warm_transfer_to_bea(panel, "Wants a new PIN, already verified")
            toast = receiver.locator(".offer-toast")
            await expect(toast.locator(".offer-origin")).to_have_text(
                "Warm transfer from Dana Desk", timeout=10_000
            )
            await expect(toast.locator(".offer-note")).to_contain_text("Wants a new PIN, already verified")
            await expect(panel.locator(f"#consult-{interaction_id}")).to_contain_text("Bea Backup")

            # Declined: the consult ends at once and the sender is told.
            await toast.get_by_role("button", name="Reject").click()
            ended = panel.locator(f"#consult-ended-{interaction_id}")
            await expect(ended).to_have_text(
                "Bea Backup declined the warm transfer: the customer is still with you.", timeout=5_000
            )
            await expect(panel.locator(f"#consult-{interaction_id}")).to_have_count(0)

            # Missed (the chat offer's 30 s run out): told as soon as the offer is gone, not a minute on.
            await _warm_transfer_to_bea(panel, "Second try")
            await expect(toast.locator(".offer-note")).to_contain_text("Second try", timeout=10_000)
            await expect(ended).to_have_count(0)  # a new consult is pending: the old notice went
            await expect(toast).to_have_count(0, timeout=40_000)
            await expect(ended).to_have_text(
                "Bea Backup did not answer the warm transfer in time: the customer is still with you.",
                timeout=5_000,
            )
            await expect(panel.get_by_text("Transfer…")).to_be_visible()
            await expect(sender.locator(f"#tab-{interaction_id}")).to_have_count(1)
        finally:
            await browser.close()
