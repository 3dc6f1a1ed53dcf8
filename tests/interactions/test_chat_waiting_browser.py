"""The chat widget when the wait is long, in chromium against a real app process: the customer is
offered a callback and leaving a message; a callback queues a call in their place, a message becomes
an email ticket; a chat nobody answered asks for no rating and offers a new chat; in the
large-text mode "Talk to a person" comes after the name and phone fields; and a supervisor sets
the queue's threshold on /supervisor/queues from the keyboard."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from interactions.models import Interaction, TimelineEvent
from interactions.states import Channel, Direction, State
from switchboard.audit import AuditEntry
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import chat_floor
from tests.helpers import eventually, truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ChatServer,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
    sign_in,
)
from workforce.models import Agent, Presence, Queue

pytestmark = needs_chromium
SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "chat-waiting.png"


@pytest.fixture
async def server(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[ChatServer]:
    """The shipped rules and queues; the one agent is offline, so nobody answers."""
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="chat-wait")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    username, agent_headers, supervisor_headers = await chat_floor(db, settings)
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield ChatServer(base, db, username, agent_headers, supervisor_headers)
    finally:
        await db.dispose()


@pytest.fixture
async def page(server: ChatServer) -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            yield await context.new_page()
        finally:
            await browser.close()


async def _start(page, server: ChatServer, *, contact: str = "+447911123456") -> uuid.UUID:
    from playwright.async_api import expect

    await page.goto(f"{server.base}/chat")
    await page.get_by_label("Your name (optional)").fill("Wendy Wait")
    await page.get_by_label("Phone or email (optional, so we recognise you)").fill(contact)
    await page.get_by_role("button", name="Start chat").click()
    await expect(page.locator("#chat-live")).to_be_visible()
    stored = await page.evaluate("sessionStorage.getItem('sb-chat')")
    return uuid.UUID(json.loads(stored)["interaction_id"])


async def _interaction(db: Database, interaction_id: uuid.UUID) -> Interaction:
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, interaction_id)
        await s.commit()
    assert row is not None
    return row


async def _follow_up(db: Database, chat_id: uuid.UUID, kind: str) -> Interaction:
    async with db.sessionmaker() as s:
        event = await s.scalar(
            select(TimelineEvent).where(TimelineEvent.interaction_id == chat_id, TimelineEvent.kind == kind)
        )
        await s.commit()
    assert event is not None, kind
    return await _interaction(db, uuid.UUID(event.data["follow_up_id"]))


async def test_nobody_online_offers_a_callback_that_keeps_the_place(server: ChatServer, page) -> None:
    from playwright.async_api import expect

    chat_id = await _start(page, server)
    await expect(page.locator("#chat-status")).to_contain_text("No adviser is online right now")
    options = page.locator("#wait-options")
    await expect(options).to_be_visible()
    await expect(options).to_contain_text("No adviser is available right now")
    await page.get_by_text("Call me back (you keep your place in line)").click()
    phone = page.get_by_label("Phone number to call")
    await expect(phone).to_have_value("+447911123456")  # the number they gave at the start
    await screenshot(page, SCREENSHOT)
    await phone.fill("call me")
    await page.get_by_role("button", name="Call me back", exact=True).click()
    await expect(page.locator("#callback-phone-error")).to_be_visible()  # named, and nothing ended
    assert (await _interaction(server.db, chat_id)).state is State.QUEUED
    await phone.fill("07911 123456")
    await page.get_by_role("button", name="Call me back", exact=True).click()
    await expect(page.locator("#chat-outcome")).to_contain_text("We will call you back on 07911 123456")
    await expect(page.locator("#chat-feedback")).to_be_hidden()  # nobody answered: nothing to rate
    await expect(page.get_by_role("button", name="Start a new chat")).to_be_focused()

    original = await _interaction(server.db, chat_id)
    call = await _follow_up(server.db, chat_id, "chat_callback_requested")
    assert original.state is State.ABANDONED
    assert (call.channel, call.direction, call.state) == (Channel.VOICE, Direction.OUTBOUND, State.QUEUED)
    assert call.callback_of_id == chat_id and call.virtual_start_at == original.virtual_start_at

    await page.get_by_role("button", name="Start a new chat").click()
    await expect(page.get_by_role("button", name="Start chat")).to_be_visible()


async def test_a_message_left_while_waiting_becomes_an_email_ticket(server: ChatServer, page) -> None:
    from playwright.async_api import expect

    chat_id = await _start(page, server, contact="wendy@example.org")
    await expect(page.locator("#wait-options")).to_be_visible(timeout=10_000)
    await page.get_by_text("Leave a message, we will answer by email").click()
    await expect(page.get_by_label("Email address for our answer")).to_have_value("wendy@example.org")
    await page.get_by_label("What should we answer?").fill("Why was my card declined today?")
    await page.get_by_role("button", name="Send message").click()
    outcome = page.locator("#chat-outcome")
    await expect(outcome).to_contain_text("We will answer by email to wendy@example.org")
    await expect(page.locator("#chat-feedback")).to_be_hidden()

    ticket = await _follow_up(server.db, chat_id, "chat_message_left")
    assert ticket.channel is Channel.TICKET and ticket.state is State.QUEUED
    await expect(outcome).to_contain_text("SB-" + ticket.id.hex[:8].upper())
    assert (await _interaction(server.db, chat_id)).state is State.ABANDONED


async def test_a_long_wait_with_advisers_busy_offers_the_ways_out(server: ChatServer, page) -> None:
    from playwright.async_api import expect

    async with server.db.sessionmaker() as s:  # an adviser online but busy, a 10 s threshold
        await s.execute(update(Agent).values(presence=Presence.BUSY))
        await s.execute(update(Queue).values(settings={"chat_wait_offer_after_seconds": 10}))
        await s.commit()
    await _start(page, server)
    status = page.locator("#chat-status")
    await expect(status).to_contain_text("Estimated wait", timeout=10_000)
    options = page.locator("#wait-options")
    await expect(options).to_be_visible()
    await expect(options).to_contain_text("The wait is long right now")


async def test_an_unanswered_chat_asks_no_rating_and_offers_a_new_one(server: ChatServer, page) -> None:
    from playwright.async_api import expect

    chat_id = await _start(page, server)
    await expect(page.locator("#chat-status")).to_contain_text("in line", timeout=10_000)
    await page.get_by_role("button", name="End chat").click()
    await expect(page.locator("#chat-after")).to_contain_text("No adviser answered this chat")
    await expect(page.locator("#chat-feedback")).to_be_hidden()
    await page.get_by_role("button", name="Start a new chat").click()
    await expect(page.get_by_role("button", name="Start chat")).to_be_visible()

    async def abandoned() -> bool:
        return (await _interaction(server.db, chat_id)).state is State.ABANDONED

    await eventually(abandoned, what="the left chat abandoned")


async def test_large_text_mode_puts_talk_to_a_person_after_name_and_phone(server: ChatServer, page) -> None:
    from playwright.async_api import expect

    await page.goto(f"{server.base}/chat?senior=1")
    talk = page.get_by_role("button", name="Talk to a person")
    await expect(talk).to_be_visible()
    phone = page.get_by_label("Your phone number or email (you can leave this empty)")
    name = page.get_by_label("Your name (you can leave this empty)")
    talk_box, phone_box, name_box = (
        await talk.bounding_box(),
        await phone.bounding_box(),
        await name.bounding_box(),
    )
    assert talk_box and phone_box and name_box
    assert talk_box["y"] > phone_box["y"] + phone_box["height"] > name_box["y"]
    # And in reading order too (keyboard and screen readers): name, phone, then the button.
    fields = "#chat-name, #chat-contact, #talk-to-person"
    order = await page.evaluate(f"() => [...document.querySelectorAll('{fields}')].map(e => e.id)")
    assert order == ["chat-name", "chat-contact", "talk-to-person"]


async def test_a_supervisor_sets_the_chat_wait_threshold_by_keyboard(server: ChatServer, page) -> None:
    from playwright.async_api import expect

    await sign_in(page, server.base, "chat-sup")
    await page.wait_for_url(f"{server.base}/supervisor")
    await page.goto(f"{server.base}/supervisor/queues")
    minutes = page.get_by_label("Minutes of estimated chat wait before Retail offers a callback")
    await expect(minutes).to_have_value("5")  # the default, 300 s
    await minutes.focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("0.2")
    await page.keyboard.press("Enter")  # below the floor: the browser's own check refuses it
    await expect(minutes).to_have_value("0.2")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("2")
    await page.keyboard.press("Enter")
    await expect(page.locator("#queues-notice")).to_have_text("Retail: chat wait threshold saved.")
    await expect(minutes).to_have_value("2")
    async with server.db.sessionmaker() as s:
        queue = await s.scalar(select(Queue).where(Queue.name == "retail"))
        entry = await s.scalar(
            select(AuditEntry).where(AuditEntry.action == "queue.chat_wait_threshold_changed")
        )
        await s.commit()
    assert queue is not None and queue.chat_wait_offer_after_seconds == 120
    assert entry is not None and entry.data["after"] == {"chat_wait_offer_after_seconds": 120}
