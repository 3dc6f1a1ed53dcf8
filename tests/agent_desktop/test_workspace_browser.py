"""The three-pane workspace (issue #10 item 3): the main loop at 1280x800 without page scrolling,
done from the keyboard alone, with focus going where the next action is; unread badges on tabs.

A real app process with its engine, Debian's chromium through Playwright; customers write over
the chat socket (the `websockets` client), as the chat widget does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

from tests.helpers import eventually
from tests.live_app import CHROMIUM, CHROMIUM_ARGS, DeskServer, needs_chromium, sign_in


@dataclass
class Customer:
    interaction_id: str
    ws: Any

    async def say(self, body: str) -> None:
        await self.ws.send(json.dumps({"type": "message", "body": body}))


@asynccontextmanager
async def customer_chat(server: DeskServer, name: str) -> AsyncIterator[Customer]:
    """A customer who started a web chat (queued to "cards", the floor's chat queue) and is on its socket."""
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
        started = await api.post("/chat/start", json={"name": name}, headers={"Origin": server.base})
    assert started.status_code == 201, started.text
    chat = started.json()
    url = server.base.replace("http://", "ws://") + "/chat/ws"
    async with websockets.connect(url, additional_headers={"Origin": server.base}, open_timeout=5) as ws:
        await ws.send(
            json.dumps({"type": "auth", "interaction_id": chat["interaction_id"], "token": chat["token"]})
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ready"}
        drain = asyncio.ensure_future(_drain(ws))
        try:
            yield Customer(chat["interaction_id"], ws)
        finally:
            drain.cancel()


async def _drain(ws: Any) -> None:
    async for _ in ws:  # the customer's side is not under test here
        pass


def watch_console(page: Any) -> list[str]:
    """Console errors and failed requests (an htmx oob error, a 404 favicon) collected as they happen."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return problems


async def desk_page(browser: Any, server: DeskServer) -> tuple[Any, list[str]]:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    problems = watch_console(page)
    await sign_in(page, server.base, server.agent_username)
    await page.wait_for_url(f"{server.base}/desktop")
    await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)
    return page, problems


async def go_available_by_keyboard(page: Any) -> None:
    from playwright.async_api import expect

    await page.keyboard.press("s")  # the shortcut to my status
    select = page.get_by_label("Change status")
    await expect(select).to_be_focused()
    await page.keyboard.press("Home")  # "Available" is the first choice
    await expect(select).to_have_value("available")
    await page.keyboard.press("Tab")  # break reason
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Set status")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#desktop-status .presence-badge")).to_have_text("Available")
    # The form came back from the server; focus stayed on its button, not on the page.
    await expect(page.get_by_role("button", name="Set status")).to_be_focused()


async def assert_three_panes_without_page_scroll(page: Any, interaction_id: str) -> None:
    sizes = await page.evaluate(
        "() => [document.scrollingElement.scrollHeight, document.scrollingElement.scrollWidth,"
        " innerHeight, innerWidth]"
    )
    assert sizes[0] <= sizes[2] and sizes[1] <= sizes[3], f"the page scrolls: {sizes}"
    panel = page.locator(f"#panel-{interaction_id}")
    work = await page.locator("#work-list").bounding_box()
    conv = await panel.locator(".interaction-conv").bounding_box()
    side = await panel.locator(".customer-360").bounding_box()
    assert work and conv and side
    assert work["x"] + work["width"] <= conv["x"] < conv["x"] + conv["width"] <= side["x"], (work, conv, side)
    # The main loop's controls are all in view at once: reply, send, End / Wrap up, the history.
    for control in (
        panel.get_by_label("Reply to the customer"),
        panel.get_by_role("button", name="Send"),
        panel.get_by_role("button", name="End / Wrap up"),
        panel.locator(".history-box"),
    ):
        box = await control.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 800, (control, box)


@needs_chromium
async def test_main_loop_by_keyboard_only_in_three_panes(server: DeskServer) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = await desk_page(browser, server)
            away = page.get_by_text("Go available to receive offers")
            waiting = page.get_by_text("Offers appear above")
            await expect(away).to_be_visible()
            await expect(waiting).to_be_hidden()
            await go_available_by_keyboard(page)
            await expect(away).to_be_hidden()  # never "Go available" while available
            await expect(waiting).to_be_visible()

            async with customer_chat(server, "Ada Keys") as ada:
                await ada.say("My card was blocked at a cash machine")
                accept = page.locator(".offer-toast").get_by_role("button", name="Accept")
                # The offer arrived while the agent sat at their status: Accept is next.
                await expect(accept).to_be_focused(timeout=10_000)
                await page.keyboard.press("a")

                panel = page.locator(f"#panel-{ada.interaction_id}")
                reply = panel.get_by_label("Reply to the customer")
                await expect(reply).to_be_focused(timeout=10_000)  # the new tab opens at its reply box
                await expect(panel.locator(".desk-chat-log")).to_contain_text("cash machine")
                await assert_three_panes_without_page_scroll(page, ada.interaction_id)

                await page.keyboard.type("Sorry to hear that, let me look.")
                await page.keyboard.press("Tab")
                await expect(panel.get_by_role("button", name="Send")).to_be_focused()
                await page.keyboard.press("Enter")
                await expect(panel.locator(".desk-chat-line.from-agent")).to_contain_text("let me look")
                await expect(reply).to_be_focused()  # sent: ready for the next line
                await expect(reply).to_have_value("")

                await page.keyboard.press("Escape")  # out of the reply box, where letters are shortcuts
                await page.keyboard.press("?")
                help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
                await expect(help_dialog).to_be_visible()
                await expect(help_dialog).to_contain_text("End / Wrap up the open interaction")
                await page.keyboard.press("Escape")
                await expect(help_dialog).to_be_hidden()
                await page.keyboard.press("w")
                code = panel.get_by_label("Wrap-up code")
                await expect(code).to_be_focused(timeout=10_000)
                await page.keyboard.press("ArrowDown")
                await expect(code).not_to_have_value("")
                await page.keyboard.press("Tab")
                complete = panel.get_by_role("button", name="Complete")
                await expect(complete).to_be_focused()
                await page.keyboard.press("Enter")

                await expect(page.locator(f"#tab-{ada.interaction_id}")).to_have_count(0, timeout=10_000)
                pulse = page.locator(f"#pulse-{ada.interaction_id}")
                await expect(pulse).to_be_focused()  # no other work: the optional pulse is next
                await page.keyboard.press("Tab")
                await page.keyboard.press("Space")  # the first tag
                await expect(pulse.locator("input[type=checkbox]").first).to_be_checked()
            assert problems == [], problems
        finally:
            await browser.close()


@needs_chromium
async def test_unread_badge_counts_lines_in_the_tab_not_in_view(server: DeskServer) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = await desk_page(browser, server)
            await go_available_by_keyboard(page)
            async with customer_chat(server, "Ada First") as ada, customer_chat(server, "Ben Second") as ben:
                for customer in (ada, ben):
                    await expect(page.locator(".offer-toast")).to_have_count(1, timeout=10_000)
                    await page.keyboard.press("Escape")  # out of the last reply box
                    await page.keyboard.press("a")
                    await expect(page.locator(f"#tab-{customer.interaction_id}")).to_have_attribute(
                        "aria-selected", "true", timeout=10_000
                    )
                first, second = (
                    page.locator(f"#tab-{ada.interaction_id}"),
                    page.locator(f"#tab-{ben.interaction_id}"),
                )
                badge = first.locator(".unread-badge")
                await expect(badge).to_be_hidden()

                await ada.say("Are you still there?")
                await ada.say("Hello?")
                await expect(badge).to_have_text("2", timeout=10_000)
                await expect(badge).to_have_attribute("aria-label", "2 unread")
                await ben.say("Thanks")  # Ben's tab is open: nothing unread there
                await expect(page.locator(f"#panel-{ben.interaction_id} .desk-chat-log")).to_contain_text(
                    "Thanks"
                )
                await expect(second.locator(".unread-badge")).to_be_hidden()

                await page.keyboard.press("Escape")  # out of Ben's reply box
                await page.keyboard.press("1")  # opens the first interaction, at its reply box
                await expect(first).to_have_attribute("aria-selected", "true")
                await expect(
                    page.locator(f"#panel-{ada.interaction_id}").get_by_label("Reply to the customer")
                ).to_be_focused()
                await expect(badge).to_be_hidden()
            assert problems == [], problems
        finally:
            await browser.close()


# The browser's Notification API is the outer edge: a stand-in records what the page shows.
FAKE_NOTIFICATIONS = """
window.__shown = [];
class FakeNotification {
  constructor(title, options) { window.__shown.push({ title: title, body: (options || {}).body || "" }); }
  close() {}
}
FakeNotification.permission = "granted";
FakeNotification.requestPermission = () => Promise.resolve("granted");
window.Notification = FakeNotification;
"""


@needs_chromium
async def test_offer_alerts_auto_scroll_and_enter_sends(server: DeskServer) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = await desk_page(browser, server)
            await page.context.add_init_script(FAKE_NOTIFICATIONS)
            await page.reload()
            await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)
            bell = page.get_by_label("Browser notification")
            await expect(bell).not_to_be_checked()  # opt-in
            await expect(page.get_by_label("Sound")).to_be_checked()
            await bell.check()
            await expect(page.locator("#alert-status")).to_have_text("Offers show a browser notification.")
            await page.reload()  # remembered in this browser
            await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)
            await expect(bell).to_be_checked()
            await go_available_by_keyboard(page)

            async with customer_chat(server, "Cleo Scroll") as cleo:
                await expect(page.locator(".offer-toast")).to_have_count(1, timeout=10_000)
                shown = await page.evaluate("window.__shown")
                assert shown == [{"title": "New chat offer", "body": "Cleo Scroll"}], shown
                assert await page.evaluate("window.SwitchboardAlerts.chimes") == 1
                await expect(page).to_have_title("● New offer · Desktop · Switchboard")
                await page.keyboard.press("a")
                panel = page.locator(f"#panel-{cleo.interaction_id}")
                reply = panel.get_by_label("Reply to the customer")
                await expect(reply).to_be_focused(timeout=10_000)
                await expect(page).to_have_title("Desktop · Switchboard")  # nothing waits: no flashing

                # Enter sends; Shift+Enter is a new line in the same message.
                await page.keyboard.type("Hello Cleo")
                await page.keyboard.press("Shift+Enter")
                await page.keyboard.type("how can I help?")
                await expect(reply).to_have_value("Hello Cleo\nhow can I help?")
                await page.keyboard.press("Enter")
                line = panel.locator(".desk-chat-line.from-agent .body")
                await expect(line).to_have_text("Hello Cleo\nhow can I help?")
                await expect(reply).to_have_value("")
                await expect(reply).to_be_focused()

                # The log follows new lines...
                log = panel.locator(".desk-chat-log")
                for n in range(25):
                    await cleo.say(f"line {n}")
                await expect(log.locator(".desk-chat-line").last).to_contain_text("line 24", timeout=10_000)
                at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 24"
                await eventually(lambda: log.evaluate(at_bottom), what="the log at its latest line")
                # ...unless the agent scrolled up to read: then a pill says there is more.
                await log.evaluate("el => { el.scrollTop = 0; }")
                await eventually(lambda: log.evaluate("el => el.dataset.pinned === 'false'"), what="unpinned")
                await cleo.say("one more thing")
                await expect(log).to_contain_text("one more thing")
                pill = panel.get_by_role("button", name="New messages ↓")
                await expect(pill).to_be_visible()
                assert await log.evaluate("el => el.scrollTop") == 0
                await pill.click()
                await expect(pill).to_be_hidden()
                await eventually(lambda: log.evaluate(at_bottom), what="the log at its latest line")
                await expect(reply).to_be_focused()
            assert problems == [], problems
        finally:
            await browser.close()
