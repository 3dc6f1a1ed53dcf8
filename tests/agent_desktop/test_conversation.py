"""The conversation in a desktop tab, through the ASGI app: the email thread (sanitised HTML,
attachments, reply through the real SMTP path to a sink), linked interactions read as one thread,
the voice panel's controls against a fake carrier REST API (real HTTP, the outer edge), and the
desktop socket following the customer's topic."""

# Fixtures are imported and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from agent_desktop.live import CustomerFollow
from agent_desktop.voice import derive_state
from customers.timeline import append_event
from demo.carrier import Call as SimCall
from demo.carrier import CarrierSimulator
from interactions.email.parsing import parse_email
from interactions.email.service import ingest_email
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.states import Channel, State
from interactions.voice.models import CarrierEvent
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.events import EventHub, customer_topic
from tests.factories import agent_in_queue, agent_profile, make_customer, make_interaction, make_message
from tests.helpers import ACCOUNT, CALL_SID, CONFERENCE_SID, FakeCarrier, accept_next, eventually
from tests.interactions.email_fixtures import sink  # noqa: F401 - fixture
from tests.interactions.email_helpers import customer_email
from workforce.models import Agent

PROBLEM_JSON = "application/problem+json"
TOKEN = "desk-carrier-token-0123456789"


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
    agent = await agent_profile(db, user)
    other_user, other_headers = await make_user(Role.AGENT)
    await agent_profile(db, other_user)
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
    agent = await agent_profile(db, user)
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
    await agent_profile(db, other_user)
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
    agent = await agent_profile(db, user)
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
    async with db.sessionmaker() as s:
        await make_message(s, chat, "Can someone call me?")
    await _take(db, call.id, agent)

    html = (await client.get(f"/desktop/interactions/{call.id}/thread", headers=headers)).text
    assert "Chat → Voice → Email" in html
    assert "Can someone call me?" in html
    assert html.index(f"leg-{call.id}-{chat.id}") < html.index(f"leg-{call.id}-{call.id}")
    assert html.index(f"leg-{call.id}-{call.id}") < html.index(f"leg-{call.id}-{mail.id}")
    assert str(foreign.id) not in html
    assert "Transferred →" in html and "Follow-up →" in html


# ------------------------------------------------------------------ voice panel


async def _call(
    db: Database, agent: Agent, *, call_sid: str | None = CALL_SID, client: Any = None
) -> Interaction:
    """A call in the agent's hands; with ``client``, bridged as production bridges it: the caller's
    hold loop (a signed ``/wait``) adds the agent to the interaction's conference at the carrier."""
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        call = await make_interaction(s, customer=customer, channel=Channel.VOICE)
        call.attributes = {"provider": "twilio", "call_sid": call_sid} if call_sid else {}
        if call_sid:
            s.add(
                CarrierEvent(
                    provider="twilio",
                    event_key=f"{call_sid}:interaction",
                    call_sid=call_sid,
                    kind="interaction",
                    interaction_id=call.id,
                )
            )
        await s.commit()
    await _take(db, call.id, agent)
    if client is not None and call_sid:
        sim = CarrierSimulator(client, auth_token=TOKEN, base_url="http://testserver")
        leg = SimCall(call_sid=call_sid, caller="+447911123499", to="+442071234567")
        leg.last = await sim.post(sim.url("wait"), sim.params(leg, CallStatus="in-progress"))
        assert leg.conference == f"interaction-{call.id}", leg.last.text
    return call


async def test_hold_resume_go_to_the_carrier_and_land_in_the_timeline(client, db, carrier, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    call = await _call(db, agent, client=client)
    [(added, auth, form)] = carrier.updates  # the bridge rang the agent's device into the conference
    assert added == f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/interaction-{call.id}/Participants.json"
    assert auth.startswith("Basic ") and form["To"] == [f"client:{agent.id}"] and form["Label"] == ["agent"]

    panel = await client.get(f"/desktop/interactions/{call.id}/voice", headers=headers)
    assert panel.status_code == 200 and "Connected" in panel.text and "Hold call" in panel.text

    held = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=headers)
    assert held.status_code == 200, held.text
    assert "On hold" in held.text and "Resume call" in held.text and "hold music" in held.text
    path, auth, form = carrier.updates[-1]
    participant = f"/2010-04-01/Accounts/{ACCOUNT}/Conferences/{CONFERENCE_SID}/Participants/{CALL_SID}.json"
    assert path == participant and auth.startswith("Basic ")  # the caller's participant
    assert form["Hold"] == ["true"] and form["HoldUrl"][0].startswith("http")

    again = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=headers)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "action"
    assert len(carrier.updates) == 2  # refused before the carrier was asked

    resumed = await client.post(f"/desktop/interactions/{call.id}/call/resume", headers=headers)
    assert resumed.status_code == 200 and "Connected" in resumed.text
    assert carrier.updates[-1][0] == participant and carrier.updates[-1][2] == {"Hold": ["false"]}
    # The agent's leg stayed up: nobody was rung again.
    assert [p for p, _, _ in carrier.updates].count(added) == 1

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
    agent = await agent_profile(db, user)
    call = await _call(db, agent, client=client)
    carrier.fail_with = 404
    refused = await client.post(f"/desktop/interactions/{call.id}/call/hold", headers=headers)
    assert refused.status_code == 503 and refused.headers["content-type"] == PROBLEM_JSON
    assert refused.headers["retry-after"]
    async with db.sessionmaker() as s:
        kinds = list(
            await s.scalars(select(TimelineEvent.kind).where(TimelineEvent.interaction_id == call.id))
        )
    assert "call_control" not in kinds


async def test_controls_need_a_held_voice_call_with_a_leg(client, db, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
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
    bad_action = await client.post(f"/desktop/interactions/{no_leg.id}/call/dance", headers=headers)
    assert bad_action.status_code == 422
    no_leg_mute = await client.post(f"/desktop/interactions/{no_leg.id}/call/mute", headers=headers)
    assert no_leg_mute.status_code == 409
    other_user, other_headers = await make_user(Role.AGENT)
    await agent_profile(db, other_user)
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
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
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


class _Socket:
    """The desktop socket's outer edge: what the server sends, recorded."""

    def __init__(self, db: Database) -> None:
        self.app = SimpleNamespace(state=SimpleNamespace(db=db))
        self.frames: list[str] = []

    async def send_text(self, text: str) -> None:
        self.frames.append(text)


async def test_live_360_events_wait_for_their_burst_and_skip_what_is_already_shown(
    db, redis_handle, redis_sync, make_user
) -> None:
    """A customer's live-360 events that come together render once (after LIVE_DELAY_S), while a
    presence event in between is not delayed; events the open panel already showed when it was
    rendered, and events for a customer whose last tab left meanwhile, read nothing."""
    from agent_desktop import ws

    user, _ = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        chat = await make_interaction(s, customer=customer)
        await s.commit()
    await _take(db, chat.id, agent)
    async with db.sessionmaker() as s:
        created = await s.scalar(select(TimelineEvent.id).where(TimelineEvent.interaction_id == chat.id))
    hub = EventHub(redis_handle.async_client())
    await hub.start()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    socket = _Socket(db)
    connection = ws.DesktopConnection(socket, agent_id=agent.id, token_expires=datetime.now(UTC))  # type: ignore[arg-type]
    connection.follow = CustomerFollow(hub, queue)
    await connection.resync()  # the panel, its 360 showing the interaction's created event
    assert connection.follow.interactions_of(customer.id) == [chat.id]
    opened = len(socket.frames)
    pusher = asyncio.create_task(connection.push_loop(queue))
    presences = 0

    def timeline_frames() -> list[str]:
        return [f for f in socket.frames[opened:] if f'id="timeline-{chat.id}"' in f]

    async def settle() -> None:
        """Every event queued so far handled: a presence fragment, queued now, has been sent."""
        nonlocal presences
        await eventually(lambda: _true(not connection.live_pending), what="the burst to be handled")
        presences += 1
        queue.put_nowait({"type": "presence"})
        await eventually(
            lambda: _true(sum('id="desktop-status"' in f for f in socket.frames[opened:]) == presences),
            what="the presence fragment",
        )

    def live(*event_ids: int) -> dict[str, Any]:
        return {
            "type": "timeline",
            "customer_id": str(customer.id),
            "interaction_ids": [str(chat.id)],
            "event_ids": list(event_ids),
        }

    try:
        queue.put_nowait(live(created))
        await settle()
        assert timeline_frames() == []  # the panel showed it already

        async with db.sessionmaker() as s:
            note = append_event(
                s,
                customer_id=customer.id,
                interaction_id=chat.id,
                kind="note",
                actor_type=ActorType.AGENT,
                data={"body": "called back"},
            )
            await s.commit()
        for _ in range(3):
            queue.put_nowait(live(note.id))
        presences += 1
        queue.put_nowait({"type": "presence"})
        await eventually(lambda: _true(len(timeline_frames()) == 1), what="the 360 re-rendered")
        status = [i for i, f in enumerate(socket.frames) if 'id="desktop-status"' in f][-1]
        assert status < socket.frames.index(timeline_frames()[0])  # not held behind the burst
        await settle()
        assert len(timeline_frames()) == 1  # the three events were read once

        connection.follow.discard(chat.id)  # the tab left (completed)
        queue.put_nowait(live(note.id + 1))
        await settle()
        assert len(timeline_frames()) == 1
    finally:
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pusher
        connection.follow.close()
        await hub.stop()


async def _true(value: bool) -> bool:
    return value


async def test_timeline_event_for_a_held_customer_updates_every_panel(app, db, make_user) -> None:
    """The socket's renderer: an email arriving for the customer of a held call re-renders that
    call's 360 timeline; the email's own thread is not this tab's (no thread fragment)."""
    from agent_desktop import live

    user, _ = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
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
    """The carrier simulator (demo) accepts what the desktop sends, with the carrier's Basic auth,
    and keeps each conference participant's state: the agent added by REST, the caller joined by
    TwiML; hold, mute and tones on the right participant; a hang-up ends the conference."""
    from demo.carrier import FakeCarrierApi
    from interactions.voice.control import Conference, TwilioCallControl
    from switchboard.errors import ServiceUnavailable

    fake = FakeCarrierApi(account_sid=ACCOUNT, auth_token=TOKEN)
    url = await fake.start()
    try:
        control = TwilioCallControl(
            api_url=url,
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            hold_audio_url="https://audio.example/hold.mp3",
            base_url="https://sb.example",
        )
        agent_id, name = uuid.uuid4(), "interaction-test"
        callback = "https://sb.example/carrier/twilio/voice/agent-leg?interaction=x&agent=y"
        leg = await control.add_agent(
            conference=name,
            agent_id=agent_id,
            caller_id="+447911123499",
            ring_seconds=20,
            status_callback=callback,
        )
        # The ring timeout and the leg's progress callback, every event as its own field (Twilio).
        [added] = fake.participant_adds
        assert added["Timeout"] == ["20"] and added["StatusCallback"] == [callback]
        assert added["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        fake.join(CALL_SID, name, label="customer", end_conference_on_exit=True)  # the caller's <Dial>
        room = fake.live_conference(name)
        assert room is not None and leg.conference_sid == room.sid
        agent = fake.participant(name, leg.call_sid)
        assert agent is not None and agent.to == f"client:{agent_id}" and agent.label == "agent"
        caller = fake.participant(name, CALL_SID)
        assert caller is not None

        by_name = Conference(name=name)  # the sid resolved by friendly name, as when none was kept
        await control.mute(agent_call_sid=leg.call_sid, conference=by_name, muted=True)
        assert agent.muted and not caller.muted
        await control.hold(call_sid=CALL_SID, conference=Conference(name=name, sid=room.sid))
        assert caller.hold and caller.hold_url == "https://audio.example/hold.mp3" and not agent.hold
        await control.resume(call_sid=CALL_SID, conference=by_name)
        await control.mute(agent_call_sid=leg.call_sid, conference=by_name, muted=False)
        assert not caller.hold and not agent.muted
        await control.send_digits(call_sid=CALL_SID, conference=by_name, digits="12#")
        assert caller.announcements == ["https://sb.example/carrier/twilio/voice/tones?digits=12%23"]
        assert {u.call_sid for u in fake.participant_updates} == {CALL_SID, leg.call_sid}
        assert fake.updates == []  # none of that touched the caller's call itself

        await control.hang_up(call_sid=CALL_SID)
        [end] = fake.updates
        assert end.twiml is None and end.status == "completed"
        assert room.status == "completed" and fake.live_conference(name) is None  # the agent's leg went too
        with pytest.raises(ServiceUnavailable, match="no live conference"):
            await control.mute(agent_call_sid=leg.call_sid, conference=by_name, muted=True)
        with pytest.raises(ServiceUnavailable, match="HTTP 404"):  # a kept sid of an ended conference
            await control.mute(agent_call_sid=leg.call_sid, conference=Conference(name, room.sid), muted=True)

        await control.return_to_flow(call_sid=CALL_SID)
        assert "<Redirect" in fake.updates[-1].twiml and "https://sb.example/carrier/twilio/voice/wait" in (
            fake.updates[-1].twiml
        )

        wrong = TwilioCallControl(
            api_url=url,
            account_sid=ACCOUNT,
            auth_token="not-the-token",
            hold_audio_url="https://audio.example/hold.mp3",
            base_url="https://sb.example",
        )
        with pytest.raises(ServiceUnavailable, match="HTTP 401"):
            await wrong.hang_up(call_sid=CALL_SID)
        assert len(fake.updates) == 2
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
    await agent_in_queue(db, user)
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
    await accept_next(client, headers)
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


async def test_a_chat_line_for_a_tab_not_yet_on_this_socket_waits_for_the_tab(db, make_user) -> None:
    """A customer's line sent before the offer was accepted can be rendered after the assignment
    committed but before the tab's push: nothing is appended then (its target is not on the page:
    htmx:oobErrorNoTarget, seen in CI), and the tab, when it comes, brings the line in its
    transcript. Once the tab is there, a new line is appended."""
    from agent_desktop import ws
    from switchboard import desktop_messages as messages

    user, _ = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        chat = await make_interaction(s, customer=customer)
        early = await make_message(s, chat, "My card was blocked at a cash machine")
    await _take(db, chat.id, agent)
    socket = _Socket(db)
    connection = ws.DesktopConnection(socket, agent_id=agent.id, token_expires=datetime.now(UTC))  # type: ignore[arg-type]

    def line(message_id: int) -> dict[str, Any]:
        return {"type": "chat_message", "interaction_id": str(chat.id), "message_id": message_id}

    await connection.apply(line(early.id))
    assert socket.frames == []  # held here, but no tab on this socket yet
    await connection.apply({"type": messages.Assigned.type, "interaction_id": str(chat.id)})
    (tab,) = socket.frames
    assert f'id="chat-log-{chat.id}"' in tab and "cash machine" in tab

    async with db.sessionmaker() as s:
        later = await make_message(s, chat, "Are you still there?")
    await connection.apply(line(later.id))
    appended = socket.frames[-1]
    assert f"beforeend:#chat-log-{chat.id}" in appended and "still there" in appended
