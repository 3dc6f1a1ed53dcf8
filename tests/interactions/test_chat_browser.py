"""Web chat end to end: a real uvicorn process (routing engine on), two chromium contexts (the
customer on /chat, the agent on /desktop), and the `websockets` client for the socket's refusals.

The customer starts a chat and writes (a card number in it); the agent goes available, accepts
the offer, reads the masked line, replies; the customer sees "agent joined" and the reply; the
agent wraps up and completes through the routing API; the customer rates the chat 5.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from interactions.feedback_models import CustomerFeedback
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import chat_floor
from tests.helpers import TEST_PASSWORD, truncate_all
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ChatServer,
    live_settings,
    needs_chromium,
    running_app,
    screenshot,
)

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "chat-senior.png"


@pytest.fixture
async def server(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[ChatServer]:
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="chat")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    username, agent_headers, supervisor_headers = await chat_floor(db, settings)
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield ChatServer(base, db, username, agent_headers, supervisor_headers)
    finally:
        await db.dispose()


async def _start_chat(server: ChatServer) -> dict:
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
        response = await api.post(
            "/chat/start", json={"name": "Test Visitor"}, headers={"Origin": server.base}
        )
    assert response.status_code == 201, response.text
    return response.json()


async def _close_code(server: ChatServer, origin: str, first: dict | None) -> tuple[int, str]:
    url = server.base.replace("http://", "ws://") + "/chat/ws"
    async with websockets.connect(url, additional_headers={"Origin": origin}, open_timeout=5) as ws:
        # A refusal may come before our first message is even read, so sending can fail too.
        with pytest.raises(ConnectionClosed) as closed:
            if first is not None:
                await ws.send(json.dumps(first))
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None, "the server must close with a code"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_chat_socket_refuses_foreign_origin_and_foreign_token(server: ChatServer) -> None:
    mine, theirs = await _start_chat(server), await _start_chat(server)
    auth = {"type": "auth", "interaction_id": mine["interaction_id"], "token": mine["token"]}
    assert await _close_code(server, "http://evil.example", auth) == (4403, "origin not allowed")
    stolen = {**auth, "interaction_id": theirs["interaction_id"]}
    assert await _close_code(server, server.base, stolen) == (4403, "not your chat")
    assert await _close_code(server, server.base, {**auth, "token": "guess"}) == (4403, "not your chat")
    assert await _close_code(server, server.base, {"type": "message", "body": "hi"}) == (
        4403,
        "not your chat",
    )

    url = server.base.replace("http://", "ws://") + "/chat/ws"
    async with websockets.connect(url, additional_headers={"Origin": server.base}, open_timeout=5) as ws:
        await ws.send(json.dumps(auth))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ready"}
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "history", "messages": []}
        await ws.send(json.dumps({"type": "message", "body": "   "}))
        seen = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert {"type": "error", "field": "body"}.items() <= next(
            m for m in seen if m["type"] == "error"
        ).items()
        status = next(m for m in seen if m["type"] == "status")
        assert status["state"] == "queued" and status["position"] >= 1 and not status["agent_joined"]


async def test_binary_frames_and_control_characters_on_the_chat_socket(server: ChatServer) -> None:
    """A binary frame closes with 1003 (unsupported data), before or after auth; a NUL in a message
    is an error naming the field, the socket stays up and nothing is stored."""
    mine = await _start_chat(server)
    url = server.base.replace("http://", "ws://") + "/chat/ws"
    auth = {"type": "auth", "interaction_id": mine["interaction_id"], "token": mine["token"]}
    for before_auth in (True, False):
        async with websockets.connect(url, additional_headers={"Origin": server.base}, open_timeout=5) as ws:
            if not before_auth:
                await ws.send(json.dumps(auth))
                assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ready"}
            await ws.send(b"\x00\x01binary")
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003

    async with websockets.connect(url, additional_headers={"Origin": server.base}, open_timeout=5) as ws:
        await ws.send(json.dumps(auth))
        await ws.send(json.dumps({"type": "message", "body": "hello\u0000there"}))
        await ws.send(json.dumps({"type": "ping"}))
        seen: list[dict] = []
        while not any(m["type"] == "pong" for m in seen):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        error = next(m for m in seen if m["type"] == "error")
        assert error["field"] == "body" and "Control characters" in error["detail"]
        assert all(m.get("type") != "message" for m in seen)
        # A lone UTF-16 surrogate (valid JSON, no storable text) is refused the same way; it used to
        # fail the write and drop the socket without a close code.
        await ws.send('{"type": "message", "body": "card \\ud800"}')
        await ws.send(json.dumps({"type": "ping"}))
        seen = []
        while not any(m["type"] == "pong" for m in seen):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        error = next(m for m in seen if m["type"] == "error")
        assert error["field"] == "body" and "surrogate" in error["detail"]
        assert all(m.get("type") != "message" for m in seen)


@needs_chromium
async def test_customer_and_agent_chat_end_to_end(server: ChatServer) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            customer = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            agent = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()

            # The customer starts a chat and writes before anyone is available.
            await customer.goto(f"{server.base}/chat")
            await customer.get_by_label("Your name (optional)").fill("Edith Moss")
            await customer.get_by_label("Phone or email (optional, so we recognise you)").fill(
                "+447911123456"
            )
            await customer.get_by_role("button", name="Start chat").click()
            status = customer.locator("#chat-status")
            await expect(status).to_contain_text("You are number 1 in line", timeout=10_000)
            # Nobody is online yet: no made-up estimate, and the ways out are offered.
            await expect(status).to_contain_text("No adviser is online right now")
            await expect(customer.locator("#wait-options")).to_be_visible()
            box = customer.get_by_label("Your message")
            await box.fill("My card 4111 1111 1111 1111 was swallowed by the machine")
            await box.press("Enter")
            await expect(customer.locator("#chat-log .from-customer")).to_contain_text(
                "************1111 was swallowed", timeout=10_000
            )
            chat_id = json.loads(await customer.evaluate("sessionStorage.getItem('sb-chat')"))[
                "interaction_id"
            ]

            # The agent signs in, goes available, gets the offer and accepts it.
            await agent.goto(f"{server.base}/login")
            await agent.get_by_label("Username").fill(server.agent_username)
            await agent.get_by_label("Password").fill(TEST_PASSWORD)
            await agent.get_by_role("button", name="Sign in").click()
            await agent.wait_for_url(f"{server.base}/desktop")
            await expect(agent.locator("#ws-status.live")).to_be_visible(timeout=10_000)
            await agent.get_by_label("Change status").select_option("available")
            await agent.get_by_role("button", name="Set status").click()
            toast = agent.locator(".offer-toast")
            await expect(toast).to_be_visible(timeout=15_000)
            await expect(toast.locator(".customer-name")).to_have_text("Edith Moss")
            await agent.keyboard.press("a")

            panel = agent.locator(f"#panel-{chat_id}")
            await expect(panel).to_be_visible(timeout=10_000)
            # A typed phone number proves nothing: the agent is told so, plainly, with the claim.
            unverified = panel.locator(".identity-unverified")
            await expect(unverified).to_contain_text("Unverified visitor", timeout=10_000)
            await expect(unverified).to_contain_text("+447911123456")
            log = panel.locator(f"#chat-log-{chat_id}")
            await expect(log).to_contain_text("************1111 was swallowed", timeout=10_000)
            await expect(log).not_to_contain_text("4111 1111")
            # The customer's line is in the customer 360's cross-channel timeline too.
            message_event = panel.locator(".timeline li", has_text="message")
            await expect(message_event.first).to_contain_text("by customer")

            # The customer sees the agent join, and the agent sees the customer typing.
            await expect(status).to_contain_text("An adviser has joined the chat", timeout=10_000)
            await expect(customer.locator("#chat-log")).to_contain_text("Agent joined")
            # "Typing" is ephemeral (at most one signal per 2 s while keys are pressed, nothing kept
            # on a socket resync), so the customer keeps typing, as people do, until it shows.
            typing = panel.locator(f"#chat-typing-{chat_id}")
            for _ in range(5):
                await box.press_sequentially("Are you ", delay=30)
                try:
                    await expect(typing).to_have_text("Customer is typing…", timeout=3_000)
                    break
                except AssertionError:
                    continue
            await expect(typing).to_have_text("Customer is typing…", timeout=1)
            await box.fill("")

            # The agent replies from the keyboard-reachable reply box.
            reply = panel.get_by_label("Reply to the customer")
            await reply.fill("I'm sorry, Edith. I have blocked that card and ordered a new one.")
            await panel.get_by_role("button", name="Send").click()
            await expect(customer.locator("#chat-log .from-agent")).to_contain_text(
                "I have blocked that card", timeout=10_000
            )
            await expect(log).to_contain_text("I have blocked that card")
            await expect(reply).to_have_value("")

            # Wrap-up and complete through the routing API: the customer is asked to rate the chat.
            async with httpx.AsyncClient(
                base_url=server.base, timeout=10, headers=server.agent_headers
            ) as api:
                wrap_up = await api.post(f"/api/routing/interactions/{chat_id}/wrap-up")
                assert wrap_up.status_code == 200, wrap_up.text
                # The wrap-up code comes first: completing without one is refused.
                coded = await api.put(
                    f"/api/interactions/{chat_id}/disposition", json={"disposition": "resolved"}
                )
                assert coded.status_code == 200, coded.text
                done = await api.post(f"/api/routing/interactions/{chat_id}/complete")
                assert done.status_code == 200, done.text
                timeline = await api.get(
                    f"/api/interactions/{chat_id}/timeline", headers=server.supervisor_headers
                )
                previews = [
                    e["data"].get("preview") for e in timeline.json()["items"] if e["kind"] == "message"
                ]
                assert "My card ************1111 was swallowed by the machine" in previews

            feedback = customer.locator("#chat-feedback")
            await expect(feedback).to_be_visible(timeout=10_000)
            await expect(status).to_contain_text("The adviser has ended the chat")
            await customer.get_by_label("5", exact=True).check()
            await customer.get_by_label("Anything else? (optional)").fill("Very patient, thank you")
            await customer.get_by_role("button", name="Send rating").click()
            await expect(customer.locator("#feedback-thanks")).to_be_visible(timeout=10_000)

            async with server.db.sessionmaker() as s:
                rows = list(await s.scalars(select(CustomerFeedback)))
                assert [(r.interaction_id, r.csat, r.comment) for r in rows] == [
                    (uuid.UUID(chat_id), 5, "Very patient, thank you")
                ]
                await s.commit()

            # Senior mode, as a screenshot for the docs: large text, high contrast, one big button.
            senior = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await senior.goto(f"{server.base}/chat?senior=1")
            await expect(senior.get_by_role("button", name="Talk to a person")).to_be_visible()
            await expect(senior.get_by_role("button", name="Normal text")).to_have_attribute(
                "aria-pressed", "true"
            )
            await expect(senior.get_by_role("heading", level=1)).to_have_accessible_name("Talk to us")
            await screenshot(senior, SCREENSHOT)
            # One tap starts the chat, marked as a request for a person.
            await senior.get_by_label("Lost card or fraud").check()
            await senior.get_by_role("button", name="Talk to a person").click()
            await expect(senior.locator("#chat-status")).to_contain_text("in the queue", timeout=10_000)
        finally:
            await browser.close()
