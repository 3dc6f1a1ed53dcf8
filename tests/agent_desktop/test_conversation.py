"""The conversation in a desktop tab, through the ASGI app: the email thread (sanitised HTML,
attachments, reply through the real SMTP path to a sink), linked interactions read as one thread,
the voice panel's controls against a fake carrier REST API (real HTTP, the outer edge), and the
desktop socket following the customer's topic."""

# Fixtures are imported and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

from agent_desktop.live import CustomerFollow
from agent_desktop.voice import derive_state
from interactions.email.parsing import parse_email
from interactions.email.service import ingest_email
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.states import Channel, State
from interactions.timeline import append_event
from routing.models import Agent
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.events import EventHub, customer_topic
from tests.customers.factories import make_customer, make_interaction
from tests.interactions.email_fixtures import sink  # noqa: F401 - fixture
from tests.interactions.email_helpers import customer_email
from tests.routing.test_routing_api import _accept_next, _agent_for

PROBLEM_JSON = "application/problem+json"
ACCOUNT = "AC" + "7" * 32
TOKEN = "desk-carrier-token-0123456789"
CALL_SID = "CA" + "a" * 32


class FakeCarrier:
    """A Twilio-compatible REST peer: records every call update and answers 200 (or ``fail_with``)."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str | None, dict[str, list[str]]]] = []
        self.fail_with: int | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server hook
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                outer.updates.append((self.path, self.headers.get("Authorization"), form))
                status = outer.fail_with or 200
                body = json.dumps({"sid": CALL_SID}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def carrier() -> Iterator[FakeCarrier]:
    fake = FakeCarrier()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def settings(settings, sink, carrier):
    return settings.model_copy(
        update={
            "smtp_out_host": "127.0.0.1",
            "smtp_out_port": sink.port,
            "smtp_from": "support@bank.example",
            "carrier_auth_token": TOKEN,
            "carrier_api_url": carrier.url,
            "carrier_account_sid": ACCOUNT,
            "public_base_url": "http://testserver",
        }
    )


async def _agent(db: Database, user) -> Agent:
    async with db.sessionmaker() as s:
        agent = Agent(user_id=user.id, display_name=user.display_name)
        s.add(agent)
        await s.commit()
        return agent


async def _take(db: Database, interaction_id: uuid.UUID, agent: Agent) -> None:
    """Put an interaction in the agent's hands (the routing engine's part, done directly)."""
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, interaction_id)
        row.state, row.agent_id = State.CONNECTED, agent.id
        row.connected_at = datetime.now(UTC) - timedelta(minutes=2)
        await s.commit()


HTML = (
    '<p>My card was <b>blocked</b> <img src="https://tracker.example/p.gif">'
    "<script>alert('x')</script><a href=\"javascript:alert(1)\">here</a></p>"
)


async def _inbound_email(db: Database, settings, *, subject: str = "Card blocked abroad", **kw: Any):
    message = customer_email(subject=subject, html=HTML, **kw)
    message.add_attachment(
        b"%PDF-1.4 statement", maintype="application", subtype="pdf", filename="statement.pdf"
    )
    parsed = parse_email(bytes(message), attachment_max_bytes=100_000, id_domain="bank.example")
    async with db.sessionmaker() as s:
        result = await ingest_email(s, email=parsed, default_region="GB")
        await s.commit()
    return result


# ------------------------------------------------------------------ email thread


async def test_email_thread_shows_sanitised_html_and_attachments_to_the_holder_only(
    client, db, settings, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    other_user, other_headers = await make_user(Role.AGENT)
    await _agent(db, other_user)
    email = await _inbound_email(db, settings)
    await _take(db, email.interaction.id, agent)

    response = await client.get(f"/desktop/interactions/{email.interaction.id}/thread", headers=headers)
    assert response.status_code == 200, response.text
    html = response.text
    assert "Email thread" in html and "<b>blocked</b>" in html  # the stored, sanitised HTML
    assert "<script" not in html and "javascript:" not in html and "tracker.example" not in html
    assert "ann.lee@example.com" in html and "Card blocked abroad" in html
    async with db.sessionmaker() as s:
        from interactions.email.models import Attachment

        attachment = await s.scalar(select(Attachment))
    assert f'href="/desktop/attachments/{attachment.id}"' in html and "statement.pdf" in html

    got = await client.get(f"/desktop/attachments/{attachment.id}", headers=headers)
    assert got.status_code == 200 and got.content == b"%PDF-1.4 statement"
    assert got.headers["content-disposition"] == 'attachment; filename="statement.pdf"'
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-type-options"] == "nosniff"

    # Another agent sees neither the thread nor the file.
    assert (
        await client.get(f"/desktop/interactions/{email.interaction.id}/thread", headers=other_headers)
    ).status_code == 404
    refused = await client.get(f"/desktop/attachments/{attachment.id}", headers=other_headers)
    assert refused.status_code == 404 and refused.headers["content-type"] == PROBLEM_JSON


async def test_email_reply_goes_through_smtp_and_joins_the_thread(
    client, db, settings, sink, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    email = await _inbound_email(db, settings)
    await _take(db, email.interaction.id, agent)

    response = await client.post(
        f"/desktop/interactions/{email.interaction.id}/email-reply",
        data={"body": "We have unblocked it; card 4111 1111 1111 1111 is fine."},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert "Reply sent." in response.text and "We have unblocked it" in response.text
    [sent] = sink.messages
    parsed = sent.parsed()
    assert parsed["To"] == "ann.lee@example.com" and parsed["In-Reply-To"] == email.message.external_id
    body = parsed.get_content()
    assert "We have unblocked it" in body and "4111 1111 1111 1111" not in body  # masked on the way out

    # Empty or not-held: refused, nothing sent.
    empty = await client.post(
        f"/desktop/interactions/{email.interaction.id}/email-reply", data={"body": ""}, headers=headers
    )
    assert empty.status_code == 422
    other_user, other_headers = await make_user(Role.AGENT)
    await _agent(db, other_user)
    foreign = await client.post(
        f"/desktop/interactions/{email.interaction.id}/email-reply",
        data={"body": "hi"},
        headers=other_headers,
    )
    assert foreign.status_code == 404
    assert len(sink.messages) == 1


# ------------------------------------------------------------------ one thread across channels


async def test_linked_interactions_read_as_one_thread(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        stranger = await make_customer(s)
        chat = await make_interaction(s, customer=customer, channel=Channel.CHAT)
        call = await make_interaction(s, customer=customer, channel=Channel.VOICE)
        call.parent_id = chat.id  # escalated from the chat
        mail = await make_interaction(s, customer=customer, channel=Channel.EMAIL)
        mail.follow_up_of_id = call.id
        foreign = await make_interaction(s, customer=stranger, channel=Channel.EMAIL)
        foreign.follow_up_of_id = call.id  # a corrupt link to another customer is never followed
        chat.state = State.TRANSFERRED
        await s.commit()
    from interactions.models import Message, MessageSender

    async with db.sessionmaker() as s:
        s.add(Message(interaction_id=chat.id, sender=MessageSender.CUSTOMER, body="Can someone call me?"))
        await s.commit()
    await _take(db, call.id, agent)

    html = (await client.get(f"/desktop/interactions/{call.id}/thread", headers=headers)).text
    assert "Chat → Voice → Email" in html
    assert "Can someone call me?" in html
    assert html.index(f"leg-{call.id}-{chat.id}") < html.index(f"leg-{call.id}-{call.id}")
    assert html.index(f"leg-{call.id}-{call.id}") < html.index(f"leg-{call.id}-{mail.id}")
    assert str(foreign.id) not in html
    assert "Transferred →" in html and "Follow-up →" in html


# ------------------------------------------------------------------ voice panel


async def _call(db: Database, agent: Agent, *, call_sid: str | None = CALL_SID) -> Interaction:
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        call = await make_interaction(s, customer=customer, channel=Channel.VOICE)
        call.attributes = {"provider": "twilio", "call_sid": call_sid} if call_sid else {}
        await s.commit()
    await _take(db, call.id, agent)
    return call


async def test_hold_resume_go_to_the_carrier_and_land_in_the_timeline(client, db, carrier, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    call = await _call(db, agent)

    panel = await client.get(f"/desktop/interactions/{call.id}/voice", headers=headers)
    assert panel.status_code == 200 and "Connected" in panel.text and "Hold call" in panel.text

    held = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=headers)
    assert held.status_code == 200, held.text
    assert "On hold" in held.text and "Resume call" in held.text
    path, auth, form = carrier.updates[-1]
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json" and auth.startswith("Basic ")
    assert "<Play" in form["Twiml"][0] and "Please hold" in form["Twiml"][0]

    again = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=headers)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "action"
    assert len(carrier.updates) == 1  # refused before the carrier was asked

    resumed = await client.post(f"/desktop/interactions/{call.id}/call/resume", headers=headers)
    assert resumed.status_code == 200 and "Connected" in resumed.text
    twiml = carrier.updates[-1][2]["Twiml"][0]
    assert f"<Client>{agent.id}</Client>" in twiml and "http://testserver/carrier/twilio/voice/wait" in twiml

    async with db.sessionmaker() as s:
        actions = [
            ev.data["action"]
            for ev in await s.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.interaction_id == call.id, TimelineEvent.kind == "call_control"
                )
            )
        ]
    assert actions == ["hold", "resume"]


async def test_a_carrier_refusal_changes_nothing(client, db, carrier, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    call = await _call(db, agent)
    carrier.fail_with = 404
    refused = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=headers)
    assert refused.status_code == 503 and refused.headers["content-type"] == PROBLEM_JSON
    async with db.sessionmaker() as s:
        kinds = list(
            await s.scalars(select(TimelineEvent.kind).where(TimelineEvent.interaction_id == call.id))
        )
    assert "call_control" not in kinds


async def test_controls_need_a_held_voice_call_with_a_leg(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    no_leg = await _call(db, agent, call_sid=None)
    refused = await client.post(f"/desktop/interactions/{no_leg.id}/call/hold", headers=headers)
    assert refused.status_code == 409
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        chat = await make_interaction(s, customer=customer, channel=Channel.CHAT)
        await s.commit()
    await _take(db, chat.id, agent)
    not_voice = await client.post(f"/desktop/interactions/{chat.id}/call/hold", headers=headers)
    assert not_voice.status_code == 422 and not_voice.json()["errors"][0]["field"] == "interaction_id"
    bad_action = await client.post(f"/desktop/interactions/{no_leg.id}/call/mute", headers=headers)
    assert bad_action.status_code == 422
    other_user, other_headers = await make_user(Role.AGENT)
    await _agent(db, other_user)
    call = await _call(db, agent)
    foreign = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=other_headers)
    assert foreign.status_code == 404


def test_call_state_follows_the_latest_call_event() -> None:
    call = Interaction(channel=Channel.VOICE, state=State.CONNECTED, attributes={})

    def ev(kind: str, **data: str) -> TimelineEvent:
        return TimelineEvent(kind=kind, data=data, actor_type=ActorType.SYSTEM)

    def state(last: TimelineEvent | None, interaction: Interaction = call, sid: str | None = CALL_SID) -> str:
        return derive_state(interaction, last, call_sid=sid)

    assert state(None) == "connected"
    assert state(ev("call_leg_placed", call_sid=CALL_SID)) == "ringing"
    assert state(ev("call_status", status="ringing")) == "ringing"
    assert state(ev("call_status", status="in-progress")) == "connected"
    assert state(ev("call_control", action="hold")) == "on_hold"
    assert state(ev("call_control", action="resume")) == "connected"
    assert state(ev("call_status", status="completed")) == "ended"
    assert state(ev("call_status", status="no-answer")) == "ended"
    assert state(ev("call_control", action="hang_up")) == "ended"
    assert state(ev("call_leg_failed", reason="refused"), sid=None) == "ended"
    assert state(None, sid=None) == "no_leg"
    wrapping = Interaction(channel=Channel.VOICE, state=State.WRAP_UP, attributes={})
    assert state(None, wrapping) == "ended"


async def test_a_placed_leg_is_found_through_the_carrier_mapping(client, db, make_user) -> None:
    """A callback's leg is placed by the dialer: its sid lives in carrier_events, not attributes."""
    from interactions.voice.models import CarrierEvent

    user, headers = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    callback = await _call(db, agent, call_sid=None)
    html = (await client.get(f"/desktop/interactions/{callback.id}/voice", headers=headers)).text
    assert "Not dialled yet" in html
    async with db.sessionmaker() as s:
        s.add(
            CarrierEvent(
                provider="twilio",
                event_key=f"{CALL_SID}:interaction",
                call_sid=CALL_SID,
                kind="interaction",
                interaction_id=callback.id,
            )
        )
        append_event(
            s,
            customer_id=callback.customer_id,
            interaction_id=callback.id,
            kind="call_leg_placed",
            channel="voice",
            actor_type=ActorType.SYSTEM,
            data={"call_sid": CALL_SID},
        )
        await s.commit()
    html = (await client.get(f"/desktop/interactions/{callback.id}/voice", headers=headers)).text
    assert "Ringing" in html
    refused = await client.post(f"/desktop/interactions/{callback.id}/call/hold", headers=headers)
    assert refused.status_code == 409  # nobody to hold until the customer answers


# ------------------------------------------------------------------ following customers


async def test_customer_follow_subscribes_and_unsubscribes_by_held_interaction(
    redis_handle, redis_sync
) -> None:
    hub = EventHub(redis_handle.async_client())
    await hub.start()
    try:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        follow = CustomerFollow(hub, queue)
        a, b, c1, c2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        follow.replace({a: c1, b: c1})
        follow.add(uuid.uuid4(), c2)
        assert follow.topics == {customer_topic(c1), customer_topic(c2)}
        assert queue in hub._subscribers[customer_topic(c1)]
        follow.discard(a)  # b still needs customer 1
        assert customer_topic(c1) in hub._subscribers
        follow.discard(b)
        assert customer_topic(c1) not in hub._subscribers
        follow.close()
        assert customer_topic(c2) not in hub._subscribers
    finally:
        await hub.stop()


async def test_timeline_event_for_a_held_customer_updates_every_panel(app, db, make_user) -> None:
    """The socket's renderer: an email arriving for the customer of a held call re-renders that
    call's 360 timeline; the email's own thread is not this tab's (no thread fragment)."""
    from agent_desktop import live

    user, _ = await make_user(Role.AGENT)
    agent = await _agent(db, user)
    call = await _call(db, agent)
    async with db.sessionmaker() as s:
        ev = append_event(
            s,
            customer_id=call.customer_id,
            kind="message",
            channel="email",
            actor_type=ActorType.CUSTOMER,
            data={"preview": "Re: my card"},
        )
        await s.commit()
    async with db.sessionmaker() as s:
        html = await live.render_event(
            s,
            agent_id=agent.id,
            event={"type": "timeline", "customer_id": str(call.customer_id), "interaction_ids": []},
        )
        stranger = await make_customer(s)
        await s.commit()
        nothing = await live.render_event(
            s,
            agent_id=agent.id,
            event={"type": "timeline", "customer_id": str(stranger.id), "interaction_ids": []},
        )
    assert f'id="timeline-{call.id}"' in html and f'data-event-id="{ev.id}"' in html and "Re: my card" in html
    assert nothing == ""
    assert f'id="voice-{call.id}"' not in html  # nothing happened on the call itself

    async with db.sessionmaker() as s:
        on_call = await live.render_event(
            s,
            agent_id=agent.id,
            event={
                "type": "timeline",
                "customer_id": str(call.customer_id),
                "interaction_ids": [str(call.id)],
            },
        )
        await s.commit()
    assert f'id="voice-{call.id}"' in on_call and "Connected" in on_call
    assert f'id="thread-{call.id}"' in on_call  # a single call: the (hidden) thread placeholder


async def test_twilio_call_control_against_the_simulators_rest_peer() -> None:
    """The carrier simulator (demo) accepts what the desktop sends, with the carrier's Basic auth."""
    from demo.carrier import FakeCarrierApi
    from interactions.voice.control import TwilioCallControl
    from interactions.voice.twilio import TwilioAdapter
    from switchboard.errors import ServiceUnavailable

    fake = FakeCarrierApi(account_sid=ACCOUNT, auth_token=TOKEN)
    url = await fake.start()
    try:
        adapter = TwilioAdapter(TOKEN, hold_audio_url="https://audio.example/hold.mp3")
        control = TwilioCallControl(
            api_url=url, account_sid=ACCOUNT, auth_token=TOKEN, adapter=adapter, base_url="https://sb.example"
        )
        agent_id = uuid.uuid4()
        await control.hold(call_sid=CALL_SID)
        await control.resume(call_sid=CALL_SID, agent_id=agent_id)
        await control.return_to_flow(call_sid=CALL_SID)
        await control.hang_up(call_sid=CALL_SID)
        hold, resume, back, end = fake.updates
        assert {u.call_sid for u in fake.updates} == {CALL_SID}
        assert '<Play loop="0">https://audio.example/hold.mp3</Play>' in hold.twiml
        assert f"<Client>{agent_id}</Client>" in resume.twiml
        assert "<Redirect" in back.twiml and "https://sb.example/carrier/twilio/voice/wait" in back.twiml
        assert end.twiml is None and end.status == "completed"

        wrong = TwilioCallControl(
            api_url=url,
            account_sid=ACCOUNT,
            auth_token="not-the-token",
            adapter=adapter,
            base_url="https://sb.example",
        )
        with pytest.raises(ServiceUnavailable, match="HTTP 401"):
            await wrong.hold(call_sid=CALL_SID)
        assert len(fake.updates) == 4
    finally:
        await fake.stop()


async def test_a_blind_voice_transfer_returns_the_caller_to_the_call_flow(
    routed, db, carrier, make_user
) -> None:
    """Through the routing engine: the desktop's transfer dialog hands the call to the queue and
    the caller's leg is redirected to /wait (held, then bridged to whoever accepts)."""
    _, client = routed
    user, headers = await make_user(Role.AGENT)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await _agent_for(db, user)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=headers)
    created = await client.post(
        "/api/interactions",
        json={
            "channel": "voice",
            "queue": "retail",
            "identity": {"kind": "phone", "value": "+447911123499"},
            "attributes": {"provider": "twilio", "call_sid": CALL_SID},
        },
        headers=supervisor,
    )
    assert created.status_code == 201, created.text
    await _accept_next(client, headers)
    iid = created.json()["id"]

    moved = await client.post(
        f"/desktop/interactions/{iid}/transfer", data={"to_queue": "retail", "mode": "blind"}, headers=headers
    )
    assert moved.status_code == 200, moved.text
    [(path, _, form)] = carrier.updates
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json"
    assert (
        "<Redirect" in form["Twiml"][0] and "http://testserver/carrier/twilio/voice/wait" in form["Twiml"][0]
    )
