"""Email and voice tabs end to end: a real uvicorn process (engine host on), Debian's chromium
driven by Playwright, a real SMTP listener + outbound sink, the carrier simulator's signed webhooks,
and a fake carrier REST API (the outer edge) for call control.

1. A customer emails; the agent is offered the email, accepts, reads the thread (sanitised HTML,
   attachment link), replies from the tab, and the reply arrives at the SMTP sink.
2. The customer calls; the agent accepts and the call is bridged. While the call is open, the
   same customer emails: the email shows at once in the call's customer 360 (customer topic).
   The agent holds, resumes and ends the call from the panel (keyboard), each reaching the
   carrier and coming back over the socket; "End call" moves the call to wrap-up.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from customers.models import ValueTier
from customers.timeline import publish_after_commit
from demo.carrier import CarrierSimulator
from demo.smtp_sink import SmtpSink
from interactions.email.inbound import EmailListener
from interactions.models import Interaction, TimelineEvent
from interactions.states import Channel, State
from routing import service as routing_service
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import make_agent, make_customer, make_queue, make_staff_user
from tests.helpers import (
    ACCOUNT,
    AGENT_CALL_SID,
    CALL_SID,
    CONFERENCE_SID,
    FakeCarrier,
    db_schema_for,
    eventually,
    truncate_all,
)
from tests.interactions.email_helpers import customer_email, smtp_send
from tests.live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    go_available,
    needs_chromium,
    screenshot,
    sign_in,
    sign_in_to_desktop,
    stop_app,
)
from tests.live_app import free_port as _free_port
from tests.live_app import start_app as _start
from tests.live_app import wait_for_leader as _wait_for_leader
from workforce.models import Agent, Presence

EMAIL_SHOT = PROJECT_ROOT / "docs" / "screenshots" / "desktop-email.png"
VOICE_SHOT = PROJECT_ROOT / "docs" / "screenshots" / "desktop-voice.png"
CARRIER_TOKEN = "browser-carrier-token-0123456789"
PHONE = "+447400555010"
EMAIL = "margaret.hale@example.com"
SENDER = f"Margaret Hale <{EMAIL}>"
HTML = "<p>My card was <b>swallowed</b> by the machine at Euston.<script>alert(1)</script></p>"


@dataclass
class Server:
    base: str
    db: Database
    sink: SmtpSink
    listener: EmailListener
    carrier: FakeCarrier


async def _seed(db: Database) -> None:
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "support", channels=["email", "voice", "ticket", "chat"])
        user = await make_staff_user(s, name="Dana Desk", username="conv-agent")
        await make_agent(s, user, presence=Presence.OFFLINE, queues=[queue])
        await make_customer(
            s,
            bare=True,
            phone=PHONE,
            email=EMAIL,
            verified=True,
            display_name="Margaret Hale",
            segments=["senior"],
            value_tier=ValueTier.GOLD,
        )
        # Everything goes to "support": the routing engine routes queue-less work by the live rule set.
        draft = await routing_service.create_draft(
            s,
            body={
                "filters": [
                    {
                        "name": "email",
                        "when": 'channel == "email"',
                        "steps": [{"queue": "support"}],
                    }
                ],
                "default_filter": {"name": "default", "steps": [{"queue": "support"}]},
                "on_final_timeout": "support",
            },
            comment="test",
            actor_id=None,
        )
        await routing_service.publish(s, version=draft.version, actor_id=None)
        await s.commit()


@pytest.fixture
async def server(backend_url, redis_handle, redis_sync, tmp_path, monkeypatch) -> AsyncIterator[Server]:
    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = Settings(
        environment="test",
        database_url=backend_url,
        database_schema=db_schema_for(backend_url),
        redis_url=redis_handle.url,
        data_dir=tmp_path,
        secret_key="conversation-test-secret-" + "c" * 32,
        smtp_from="support@bank.example",
        gc_freeze=False,  # an app built inside the test process (see tests/conftest.py)
    )
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    await _seed(db)
    sink = SmtpSink(host="127.0.0.1", port=0)
    await sink.start()
    carrier = FakeCarrier()
    carrier.thread.start()
    # The inbound listener is its own process in production (`switchboard smtp`); here it runs on
    # the test's loop with the same wiring: its commits publish live, its new work notifies routing.
    redis_client = redis_handle.async_client()
    publish_after_commit(db, redis_client)
    listener = EmailListener(db=db, settings=settings, redis=redis_client, host="127.0.0.1", port=0)
    await listener.start()
    for name, value in {
        "SWITCHBOARD_SMTP_OUT_HOST": "127.0.0.1",
        "SWITCHBOARD_SMTP_OUT_PORT": str(sink.port),
        "SWITCHBOARD_SMTP_FROM": "support@bank.example",
        "SWITCHBOARD_CARRIER_AUTH_TOKEN": CARRIER_TOKEN,
        "SWITCHBOARD_CARRIER_API_URL": carrier.url,
        "SWITCHBOARD_CARRIER_ACCOUNT_SID": ACCOUNT,
        "SWITCHBOARD_PUBLIC_BASE_URL": origin,
        "SWITCHBOARD_VOICE_QUEUE": "support",
    }.items():
        monkeypatch.setenv(name, value)
    log_path = tmp_path / "app.log"
    proc = _start(port, settings, origin, log_path)
    try:
        await _wait_for_leader(origin, proc, log_path)
        yield Server(origin, db, sink, listener, carrier)
    finally:
        stop_app(proc)
        await listener.stop()
        await sink.stop()
        carrier.server.shutdown()
        carrier.server.server_close()
        await redis_client.aclose()
        await db.dispose()


def _email(subject: str, *, text: str, html: str | None = None, attachment: bool = False):
    message = customer_email(subject=subject, body=text, sender=SENDER, html=html)
    if attachment:
        message.add_attachment(
            b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf"
        )
    return message


async def _interaction(db: Database, channel: Channel) -> Interaction:
    async with db.sessionmaker() as s:
        row = await s.scalar(
            select(Interaction).where(Interaction.channel == channel).order_by(Interaction.created_at.desc())
        )
        await s.commit()
    assert row is not None
    return row


@needs_chromium
async def test_follow_up_email_written_from_the_360_panel(server: Server) -> None:
    """From a held email, "Contact the customer…" → Email opens a new linked email tab; the agent
    writes it there and it reaches the customer's address."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await sign_in_to_desktop(browser, server, "conv-agent")
            code, reply = await smtp_send(server.listener.port, _email("Lost card", text="I lost my card."))
            assert code == 250, reply
            toast = page.locator(".offer-toast")
            await expect(toast).to_be_visible(timeout=15_000)
            await page.keyboard.press("a")
            first = await _interaction(server.db, Channel.EMAIL)
            panel = page.locator(f"#panel-{first.id}")
            await expect(panel).to_be_visible(timeout=10_000)

            await panel.get_by_text("Contact the customer…").click()
            await panel.get_by_role("radio", name="Email").check()
            await panel.get_by_label("Reason (the email's subject)").fill("Your replacement card")
            await panel.get_by_role("button", name="Contact now").click()
            await expect(panel.locator(f"#contact-result-{first.id}")).to_contain_text(
                "Email opened", timeout=10_000
            )
            follow_up = await _interaction(server.db, Channel.EMAIL)
            assert follow_up.id != first.id and follow_up.follow_up_of_id == first.id
            tab = page.locator(f"#tab-{follow_up.id}")
            await expect(tab).to_be_visible(timeout=10_000)
            await tab.click()
            new_panel = page.locator(f"#panel-{follow_up.id}")
            await expect(new_panel).to_be_visible()
            await new_panel.get_by_label("Reply by email").fill("Your replacement card was posted today.")
            await new_panel.get_by_role("button", name="Send reply").click()
            await expect(new_panel.get_by_role("status").filter(has_text="Reply sent.")).to_be_visible(
                timeout=10_000
            )
        finally:
            await browser.close()

    [sent] = server.sink.messages
    parsed = sent.parsed()
    assert parsed["To"] == EMAIL and "Your replacement card" in parsed["Subject"]
    assert "posted today" in parsed.get_content()


@needs_chromium
async def test_email_offered_accepted_thread_shown_and_reply_sent(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await sign_in_to_desktop(browser, server, "conv-agent")
            code, reply = await smtp_send(
                server.listener.port,
                _email("Card swallowed at Euston", text="My card was swallowed.", html=HTML, attachment=True),
            )
            assert code == 250, reply
            toast = page.locator(".offer-toast")
            await expect(toast).to_be_visible(timeout=15_000)
            await expect(toast).to_contain_text("Margaret Hale")
            await expect(toast.locator(".channel-badge")).to_have_text("Email")
            await page.keyboard.press("a")  # the accept shortcut
            email = await _interaction(server.db, Channel.EMAIL)
            panel = page.locator(f"#panel-{email.id}")
            await expect(panel).to_be_visible(timeout=10_000)

            thread = panel.locator(f"#thread-{email.id}")
            await expect(thread).to_contain_text("Email thread")
            await expect(thread.locator(".msg-html b")).to_have_text("swallowed")  # sanitised HTML shown
            await expect(thread.locator("script")).to_have_count(0)
            link = thread.get_by_role("link", name="receipt.pdf")
            await expect(link).to_have_attribute("href", re.compile(r"^/desktop/attachments/[0-9a-f-]{36}$"))
            await expect(thread).to_contain_text("application/pdf, 16 bytes")

            reply_box = panel.get_by_label("Reply by email")
            await reply_box.fill("We have ordered a new card; it arrives within 3 working days.")
            await reply_box.press("Tab")
            await expect(panel.get_by_role("button", name="Send reply")).to_be_focused()
            await page.keyboard.press("Enter")
            await expect(panel.get_by_role("status").filter(has_text="Reply sent.")).to_be_visible(
                timeout=10_000
            )
            await expect(thread.locator(".thread-message.from-agent")).to_contain_text(
                "arrives within 3 working days"
            )
            await expect(panel.get_by_label("Reply by email")).to_have_value("")

            # The customer answers the reply (threaded by In-Reply-To): it appears in the open tab at once.
            [sent] = server.sink.messages
            answer = _email("Re: Card swallowed at Euston", text="Thank you, that is a relief!")
            answer["In-Reply-To"] = sent.parsed()["Message-ID"]
            code, _ = await smtp_send(server.listener.port, answer)
            assert code == 250
            await expect(thread.locator(".thread-message.from-customer").last).to_contain_text(
                "that is a relief", timeout=5_000
            )
            await expect(thread.locator(".thread-message")).to_have_count(3)

            await thread.evaluate("el => el.scrollIntoView({block: 'start'})")  # thread and reply in view
            await screenshot(page, EMAIL_SHOT)
        finally:
            await browser.close()

    [sent] = server.sink.messages
    parsed = sent.parsed()
    assert parsed["To"] == EMAIL and parsed["Subject"].startswith("Re: Card swallowed at Euston")
    assert "arrives within 3 working days" in parsed.get_content()


async def _tones_sent(carrier, digits: str) -> bool:
    """An announcement of the tones to the caller's conference participant."""
    announced = [form.get("AnnounceUrl", [""])[0] for path, _, form in carrier.updates if CALL_SID in path]
    return any(url.endswith(f"/carrier/twilio/voice/tones?digits={digits}") for url in announced)


def _participant_forms(carrier, call_sid: str) -> list[dict[str, list[str]]]:
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{CONFERENCE_SID}/Participants/{call_sid}.json"
    return [form for p, _, form in carrier.updates if p == path]


@needs_chromium
async def test_voice_panel_live_360_and_call_controls(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with httpx.AsyncClient(timeout=10) as http, async_playwright() as p:
        sim = CarrierSimulator(http, auth_token=CARRIER_TOKEN, base_url=server.base)
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await sign_in_to_desktop(browser, server, "conv-agent")
            call = await sim.incoming(PHONE, call_sid=CALL_SID)
            await sim.press(call, "1")
            toast = page.locator(".offer-toast")
            await expect(toast).to_be_visible(timeout=15_000)
            await expect(toast.locator(".channel-badge")).to_have_text("Voice")
            await toast.get_by_role("button", name="Accept").click()
            voice = await _interaction(server.db, Channel.VOICE)
            panel = page.locator(f"#panel-{voice.id}")
            await expect(panel).to_be_visible(timeout=10_000)
            for _ in range(20):  # the hold loop bridges once the interaction is connected
                await sim.wait(call)
                if call.bridged:
                    break
            async with server.db.sessionmaker() as s:
                agent_id = await s.scalar(select(Agent.id))
            assert call.conference == f"interaction-{voice.id}"  # the agent's device was added to it:
            [added] = [f for path, _, f in server.carrier.updates if path.endswith("/Participants.json")]
            assert added["To"] == [f"client:{agent_id}"]

            call_panel = panel.locator(f"#voice-{voice.id}")
            await expect(call_panel.locator(".call-badge")).to_have_text("Connected", timeout=10_000)

            # An email from the same customer, to nobody in particular, shows in this call's 360 at once.
            code, _ = await smtp_send(
                server.listener.port,
                _email("Following up my call", text="Here is the receipt you asked for."),
            )
            assert code == 250
            timeline = panel.locator(f"#timeline-{voice.id}")
            await expect(timeline).to_contain_text("Here is the receipt you asked for.", timeout=5_000)
            await expect(timeline.locator(".channel-badge.channel-email").first).to_be_visible()

            hold = call_panel.get_by_role("button", name="Hold call")
            await hold.focus()
            await page.keyboard.press("Enter")
            await expect(call_panel.locator(".call-badge")).to_have_text("On hold", timeout=10_000)
            resume = panel.get_by_role("button", name="Resume call")
            await expect(resume).to_be_focused()  # focus stays on the control after the swap
            assert _participant_forms(server.carrier, CALL_SID)[-1]["Hold"] == ["true"]  # the caller's
            await expect(timeline).to_contain_text("Hold")  # its label, behind the routing toggle

            await call_panel.evaluate("el => el.scrollIntoView({block: 'start'})")  # call and 360 in view
            await screenshot(page, VOICE_SHOT)

            await page.keyboard.press("Enter")  # resume, still focused
            await expect(call_panel.locator(".call-badge")).to_have_text("Connected", timeout=10_000)
            await expect(call_panel.locator(".call-clock")).to_have_text(re.compile(r"^\d+s$|^\d+m \d+s$"))

            # Mute, by keyboard: pressed once the carrier confirmed it, "Muted" said in words.
            mute = call_panel.get_by_role("button", name="Mute")
            await expect(mute).to_have_attribute("aria-pressed", "false")
            await mute.focus()
            await page.keyboard.press("Enter")
            pressed = call_panel.get_by_role("button", name="Mute", pressed=True)
            await expect(pressed).to_be_visible(timeout=10_000)
            await expect(call_panel.locator(".call-state")).to_contain_text("Muted")
            await expect(call_panel.get_by_role("button", name="Mute")).to_be_focused()  # stays on the toggle
            assert _participant_forms(server.carrier, AGENT_CALL_SID)[-1] == {"Muted": ["true"]}
            await expect(timeline).to_contain_text("Mute")
            await page.keyboard.press("Enter")  # unmute
            released = call_panel.get_by_role("button", name="Mute", pressed=False)
            await expect(released).to_be_visible(timeout=10_000)
            await expect(call_panel.locator(".call-state")).not_to_contain_text("Muted")
            assert _participant_forms(server.carrier, AGENT_CALL_SID)[-1] == {"Muted": ["false"]}
            # The unmute's live update (its timeline row and a fresh call panel, one socket
            # message) lands before the keypad is used: a key focused just before that swap and
            # pressed between the swap and the focus restore (after htmx's settle) pressed nothing
            # (seen once in CI).
            await expect(timeline.locator(".ev-detail", has_text=re.compile(r"^Unmute$"))).to_have_count(1)

            # The keypad sends tones through the carrier; the timeline says tones went, not which.
            key = call_panel.get_by_role("button", name="5", exact=True)
            await key.focus()
            await page.keyboard.press("Enter")
            await eventually(
                lambda: _tones_sent(server.carrier, "5"), what="the carrier asked to play the tone"
            )
            await expect(timeline).to_contain_text("Keypad")
            await expect(call_panel.get_by_role("button", name="5", exact=True)).to_be_focused()

            await panel.get_by_role("button", name="End call").click()
            await expect(panel.locator(".acw-clock")).to_be_visible(timeout=10_000)
            await expect(page.locator(f"#voice-{voice.id} .call-badge")).to_have_text("Ended")
        finally:
            await browser.close()

    account = f"/2010-04-01/Accounts/{ACCOUNT}"
    caller, agent_leg = (
        f"{account}/Conferences/{CONFERENCE_SID}/Participants/{sid}.json"
        for sid in (CALL_SID, AGENT_CALL_SID)
    )
    paths = [path for path, _, _ in server.carrier.updates]
    assert paths == [
        f"{account}/Conferences/interaction-{voice.id}/Participants.json",  # the agent, rung once
        caller,  # hold
        caller,  # resume: the agent's leg stayed up, nobody rung again
        agent_leg,  # mute
        agent_leg,  # unmute
        caller,  # keypad tones
        f"{account}/Calls/{CALL_SID}.json",  # end
    ]
    assert server.carrier.updates[-1][2] == {"Status": ["completed"]}
    async with server.db.sessionmaker() as s:
        row = await s.get(Interaction, voice.id)
        actions = [
            ev.data["action"]
            for ev in await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id == voice.id, TimelineEvent.kind == "call_control")
                .order_by(TimelineEvent.id)
            )
        ]
    assert row.state is State.WRAP_UP
    assert actions == ["hold", "resume", "mute", "unmute", "keypad", "hang_up"]


AXE = PROJECT_ROOT / "static" / "vendor" / "axe.min.js"


async def _serious_violations(page) -> list[str]:
    """axe-core (from npm, injected from static/vendor) on the page as it is: serious or critical only."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("() => axe.run(document)")
    assert len(result["passes"]) > 10, "axe ran no rules"  # a scan that checked nothing proves nothing
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@needs_chromium
@pytest.mark.skipif(
    not AXE.exists(), reason="axe-core missing from static/vendor: scripts/setup copies it from npm"
)
async def test_axe_finds_nothing_serious_with_a_call_then_a_chat_and_an_email_open(server: Server) -> None:
    from playwright.async_api import async_playwright, expect

    async with httpx.AsyncClient(timeout=10) as http, async_playwright() as p:
        sim = CarrierSimulator(http, auth_token=CARRIER_TOKEN, base_url=server.base)
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # The CSP (rightly) refuses an injected script; only this scan's context bypasses it.
            context = await browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
            page = await context.new_page()
            await sign_in(page, server.base, "conv-agent")
            await page.wait_for_url(f"{server.base}/desktop")
            await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)
            await go_available(page)
            toast = page.locator(".offer-toast")

            # A call (voice is exclusive: it comes first, alone).
            call = await sim.incoming(PHONE, call_sid=CALL_SID)
            await sim.press(call, "1")
            await expect(toast).to_be_visible(timeout=15_000)
            await page.keyboard.press("a")
            voice = await _interaction(server.db, Channel.VOICE)
            call_panel = page.locator(f"#voice-{voice.id}")
            for _ in range(20):  # the hold loop bridges once the interaction is connected
                await sim.wait(call)
                if call.bridged:
                    break
            await expect(call_panel.locator(".call-badge")).to_have_text("Connected", timeout=10_000)
            assert await _serious_violations(page) == []
            await call_panel.get_by_role("button", name="End call").click()
            panel = page.locator(f"#panel-{voice.id}")
            await panel.get_by_label("Wrap-up code").select_option(index=1)
            await panel.get_by_role("button", name="Complete").click()
            await expect(page.locator(f"#tab-{voice.id}")).to_have_count(0, timeout=10_000)

            # A chat and an email open side by side (two tabs).
            started = await http.post(
                f"{server.base}/chat/start", json={"name": "Chat Visitor"}, headers={"Origin": server.base}
            )
            assert started.status_code == 201, started.text
            await expect(toast).to_be_visible(timeout=15_000)
            await page.keyboard.press("a")
            chat_tab = page.locator(f"#tab-{started.json()['interaction_id']}")
            await expect(chat_tab).to_be_visible(timeout=10_000)
            code, reply = await smtp_send(
                server.listener.port, _email("Card swallowed", text="It was swallowed.")
            )
            assert code == 250, reply
            await expect(toast).to_be_visible(timeout=15_000)
            await page.keyboard.press("Escape")  # out of the chat's reply box
            await page.keyboard.press("a")
            email = await _interaction(server.db, Channel.EMAIL)
            await expect(page.locator(f"#panel-{email.id}").get_by_label("Reply by email")).to_be_visible(
                timeout=10_000
            )
            assert await _serious_violations(page) == []  # the email's tab open
            await chat_tab.click()
            await expect(page.locator(".desk-chat-reply textarea")).to_be_visible()
            assert await _serious_violations(page) == []  # the chat's tab open
        finally:
            await browser.close()
