"""Chat verification end to end in real browsers: a visitor types a registered customer's email;
the agent accepts the chat and is told plainly the visitor is unverified (no profile of the
customer); the visitor asks for a code, gets it by email (the outbound relay, a sink here), types
it; the agent's panel turns to the verified customer on its own (no reload)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from customers.models import IdentityKind
from customers.service import link_identity
from demo.smtp_sink import SmtpSink
from switchboard.db import Database
from tests.factories import chat_floor, make_customer
from tests.helpers import TEST_PASSWORD, truncate_all
from tests.live_app import CHROMIUM, CHROMIUM_ARGS, ChatServer, live_settings, needs_chromium, running_app

EMAIL = "grace.hopper@example.com"


@pytest.fixture
async def mail_server(
    backend_url, redis_handle, redis_sync, tmp_path, monkeypatch
) -> AsyncIterator[tuple[ChatServer, SmtpSink]]:
    sink = SmtpSink(host="127.0.0.1", port=0)
    await sink.start()
    # The app process reads its settings from the environment (tests.live_app.start_app).
    monkeypatch.setenv("SWITCHBOARD_SMTP_OUT_HOST", "127.0.0.1")
    monkeypatch.setenv("SWITCHBOARD_SMTP_OUT_PORT", str(sink.port))
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="verify")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    username, agent_headers, supervisor_headers = await chat_floor(db, settings)
    async with db.sessionmaker() as s:
        grace = await make_customer(s, display_name="Grace Hopper", segments=["private"])
        await link_identity(
            s, customer_id=grace.id, kind=IdentityKind.EMAIL, raw_value=EMAIL, default_region="GB"
        )
        await s.commit()
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield ChatServer(base, db, username, agent_headers, supervisor_headers), sink
    finally:
        await db.dispose()
        await sink.stop()


@needs_chromium
async def test_agent_sees_unverified_then_the_verified_customer(mail_server) -> None:
    from playwright.async_api import async_playwright, expect

    server, sink = mail_server
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            customer = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            agent = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()

            await customer.goto(f"{server.base}/chat")
            await customer.get_by_label("Phone or email (optional, so we recognise you)").fill(EMAIL)
            await customer.get_by_role("button", name="Start chat").click()
            await expect(customer.locator("#chat-status")).to_contain_text("in line", timeout=10_000)
            await expect(customer.locator("#chat-log")).not_to_contain_text("Grace")

            await agent.goto(f"{server.base}/login")
            await agent.get_by_label("Username").fill(server.agent_username)
            await agent.get_by_label("Password").fill(TEST_PASSWORD)
            await agent.get_by_role("button", name="Sign in").click()
            await agent.wait_for_url(f"{server.base}/desktop")
            await expect(agent.locator("#ws-status.live")).to_be_visible(timeout=10_000)
            await agent.get_by_label("Change status").select_option("available")
            await agent.get_by_role("button", name="Set status").click()
            await expect(agent.locator(".offer-toast")).to_be_visible(timeout=15_000)
            await agent.keyboard.press("a")

            panel = agent.locator(".customer-360").first
            unverified = panel.locator(".identity-unverified")
            await expect(unverified).to_contain_text("Unverified visitor", timeout=10_000)
            await expect(unverified).to_contain_text(EMAIL)
            await expect(panel).not_to_contain_text("Grace Hopper")

            await customer.get_by_text("Prove it's you").click()
            await customer.get_by_role("button", name="Send me a code").click()
            await expect(customer.locator("#verify-note")).to_contain_text(
                "a code is on its way", timeout=10_000
            )
            assert [m.rcpt_tos for m in sink.messages] == [(EMAIL,)]
            code = re.search(r"\b(\d{6})\b", sink.messages[0].parsed().get_content()).group(1)
            await customer.get_by_label("Code").fill(code)
            await customer.get_by_role("button", name="Check code").click()
            await expect(customer.locator("#chat-log")).to_contain_text("You are verified", timeout=10_000)

            # The agent's panel changes by itself: the verified customer, and how.
            verified = agent.locator(".identity-verified")
            await expect(verified).to_contain_text("Verified by a code sent by email", timeout=10_000)
            await expect(agent.locator(".customer-360 .c360-name").first).to_have_text("Grace Hopper")
            await expect(agent.locator(".identity-unverified")).to_have_count(0)
        finally:
            await browser.close()
