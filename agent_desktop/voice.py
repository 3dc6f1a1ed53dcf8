"""The voice panel: call state (ringing, connected, on hold, ended), the agent's mute, and the
call controls.

Controls go to the carrier through ``interactions.voice.control`` (never from the template):
read what is needed and commit, ask the carrier (no transaction open while it answers), then
record the change as a ``call_control`` timeline event. The event's commit publishes it to the
customer's topic, so the panel on every desktop showing this customer updates from the socket,
exactly as it does for the carrier's own status callbacks (``call_status`` events).
A carrier refusal is a 503 and nothing is recorded.

Hold, resume, mute and keypad tones act on the interaction's conference (``control.py``): the
caller's and the agent's participants, whose ids the bridge recorded (``conference.py``). A call
bridged without a conference (no carrier REST API at the time) has none of them: 409.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desktop import work_service
from customers.timeline import append_event
from interactions import service as interactions_service
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.states import Channel, State
from interactions.voice import api as voice_api
from interactions.voice import conference
from interactions.voice.adapter import CALL_ENDED, parse_call_status
from interactions.voice.calls import notify_routing
from interactions.voice.control import DIGITS, Conference, call_control
from interactions.voice.models import CarrierEvent
from interactions.voice.outbound import ContactRefused
from interactions.voice.schemas import OutboundCreate
from routing import actions
from switchboard import commands as routing_commands
from switchboard.auth.models import User
from switchboard.db import utcnow
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import Conflict, Invalid
from switchboard.templating import templates
from workforce.deps import CurrentAgent

log = logging.getLogger(__name__)

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

CallState = Literal["ringing", "connected", "on_hold", "ended", "no_leg"]
STATE_LABELS: dict[str, str] = {
    "ringing": "Ringing",
    "connected": "Connected",
    "on_hold": "On hold",
    "ended": "Ended",
    "no_leg": "Not dialled yet",
}
# Carrier progress, the agent's controls, and the outbound leg being placed (or refused).
CALL_KINDS = ("call_status", "call_control", "call_leg_placed", "call_leg_failed")
RINGING = frozenset({"queued", "initiated", "ringing"})
Action = Literal["hold", "resume", "end", "mute", "unmute"]
MUTE_ACTIONS = ("mute", "unmute")  # the agent's microphone: beside the call's state, not part of it
CALL_EVENTS_READ = 50  # a call's own events are few; the newest state and mute event are among them


@dataclass(frozen=True)
class CallView:
    interaction_id: uuid.UUID
    state: CallState
    since: datetime | None
    call_sid: str | None
    started: datetime | None = None  # connected to this agent: the call timer counts from here
    muted: bool = False  # the agent's participant, as the carrier last confirmed it
    agent_call_sid: str | None = None  # the agent's leg in the conference (None: no conference)
    conference: Conference | None = None

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def can_hold(self) -> bool:
        return self.state == "connected"

    @property
    def can_resume(self) -> bool:
        return self.state == "on_hold"

    @property
    def can_end(self) -> bool:
        return self.state in ("connected", "on_hold", "ringing")

    @property
    def can_mute(self) -> bool:
        return self.conference is not None and self.state in ("connected", "on_hold")


def derive_state(interaction: Interaction, last: TimelineEvent | None, *, call_sid: str | None) -> CallState:
    """The call's state from the interaction and its latest call event (status, control, leg)."""
    if last is not None and last.kind == "call_leg_failed":
        return "ended"
    if not call_sid:
        return "no_leg"
    if interaction.state is not State.CONNECTED:
        return "ended"  # wrap-up and beyond: the conversation is over
    if last is None:
        return "connected"
    if last.kind == "call_leg_placed":
        return "ringing"  # the carrier is ringing the customer; "in-progress" follows on answer
    if last.kind == "call_control":
        action = last.data.get("action")
        return {"hold": "on_hold", "hang_up": "ended"}.get(str(action), "connected")
    status = parse_call_status(str(last.data.get("status", "")))
    if status is not None and status in CALL_ENDED:
        return "ended"
    if status is not None and status.value in RINGING:
        return "ringing"
    return "connected"


async def call_sid_of(session: AsyncSession, interaction: Interaction) -> str | None:
    """The carrier's id for the customer's leg: copied along transfers in ``attributes``; for a leg
    we placed (callback, agent's call), the ``<CallSid>:interaction`` carrier-event mapping."""
    sid = (interaction.attributes or {}).get("call_sid")
    if sid:
        return str(sid)
    return await session.scalar(
        select(CarrierEvent.call_sid)
        .where(CarrierEvent.interaction_id == interaction.id, CarrierEvent.kind == "interaction")
        .order_by(CarrierEvent.id.desc())
        .limit(1)
    )


def _is_mute(event: TimelineEvent) -> bool:
    return event.kind == "call_control" and event.data.get("action") in MUTE_ACTIONS


async def call_view(session: AsyncSession, interaction: Interaction) -> CallView:
    call_sid = await call_sid_of(session, interaction)
    events = list(
        await session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.interaction_id == interaction.id, TimelineEvent.kind.in_(CALL_KINDS))
            .order_by(TimelineEvent.id.desc())
            .limit(CALL_EVENTS_READ)
        )
    )
    last = next((ev for ev in events if not _is_mute(ev)), None)
    last_mute = next((ev for ev in events if _is_mute(ev)), None)
    leg = None
    if interaction.agent_id is not None:
        leg = await conference.agent_leg(
            session, provider="twilio", interaction_id=interaction.id, agent_id=interaction.agent_id
        )
    return CallView(
        interaction_id=interaction.id,
        state=derive_state(interaction, last, call_sid=call_sid),
        since=last.at if last is not None else interaction.connected_at,
        call_sid=call_sid,
        started=interaction.connected_at,
        muted=last_mute is not None and last_mute.data.get("action") == "mute",
        agent_call_sid=leg[0] if leg else None,
        conference=leg[1] if leg else None,
    )


def _in_conference(view: CallView, *, field: str) -> Conference:
    if view.conference is None:
        raise Conflict(
            "This call is not bridged through a conference (no carrier REST API when it was "
            "connected); hold, mute and keypad need one",
            field=field,
        )
    return view.conference


def _render(name: str, **context: Any) -> str:
    return templates.get_template(f"agent_desktop/{name}").render(**context)


async def held_call(session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID) -> Interaction:
    interaction = await work_service.held_interaction(
        session, interaction_id=interaction_id, agent_id=agent_id
    )
    if interaction.channel is not Channel.VOICE:
        raise Invalid("Call controls are for voice interactions", field="interaction_id")
    return interaction


@router.get("/interactions/{interaction_id}/voice", response_class=HTMLResponse)
async def voice_panel(interaction_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> HTMLResponse:
    interaction = await held_call(session, interaction_id=interaction_id, agent_id=agent.id)
    view = await call_view(session, interaction)
    await session.commit()
    return HTMLResponse(_render("_voice.html", iid=interaction_id, call=view))


@router.post("/interactions/{interaction_id}/call/digits", response_class=HTMLResponse)
async def call_digits(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    agent: CurrentAgent,
    digits: Annotated[str, Form(max_length=32)] = "",
) -> HTMLResponse:
    """The keypad: tones into the connected call through the carrier. The timeline records that
    tones were sent, never which (they are often PINs or card numbers). Registered before
    ``call/{action}``, which would otherwise take the path."""
    if not DIGITS.fullmatch(digits):
        raise Invalid("Keypad tones are 0-9, * and # (up to 32)", field="digits")
    interaction = await held_call(session, interaction_id=interaction_id, agent_id=agent.id)
    view = await call_view(session, interaction)
    if view.state != "connected":
        raise Conflict(
            f"The call is {view.label.lower()}; keypad tones need a connected call", field="digits"
        )
    assert view.call_sid is not None
    room = _in_conference(view, field="digits")
    control = call_control(settings, base_url=str(request.base_url))
    await session.commit()  # nothing held open while the carrier answers
    await control.send_digits(call_sid=view.call_sid, conference=room, digits=digits)
    interaction = await held_call(session, interaction_id=interaction_id, agent_id=agent.id)
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="call_control",
        channel=Channel.VOICE.value,
        actor_type=ActorType.AGENT,
        actor_id=agent.id,
        data={"action": "keypad", "tones": len(digits), "call_sid": view.call_sid},
    )
    await session.commit()
    view = await call_view(session, interaction)
    await session.commit()
    return HTMLResponse(_render("_voice.html", iid=interaction_id, call=view))


# Which state each action needs, and what the timeline records for it.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "hold": ("connected",),
    "resume": ("on_hold",),
    "end": ("connected", "on_hold", "ringing"),
    "mute": ("connected", "on_hold"),
    "unmute": ("connected", "on_hold"),
}
RECORDED: dict[str, str] = {
    "hold": "hold",
    "resume": "resume",
    "end": "hang_up",
    "mute": "mute",
    "unmute": "unmute",
}


@router.post("/interactions/{interaction_id}/call/{action}", response_class=HTMLResponse)
async def call_action(
    interaction_id: uuid.UUID,
    action: Action,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    agent: CurrentAgent,
) -> HTMLResponse:
    """Hold, resume, mute, unmute or end the call. "End" hangs the caller up and starts wrap-up.
    Hold and resume act on the caller's conference participant (the agent's leg stays up); mute
    and unmute on the agent's."""
    interaction = await held_call(session, interaction_id=interaction_id, agent_id=agent.id)
    view = await call_view(session, interaction)
    if view.state not in ALLOWED_FROM[action]:
        raise Conflict(f"The call is {view.label.lower()}; it cannot {action} now", field="action")
    if action in MUTE_ACTIONS and view.muted == (action == "mute"):
        raise Conflict(f"You are already {'muted' if view.muted else 'unmuted'}", field="action")
    assert view.call_sid is not None  # "no_leg" is in no ALLOWED_FROM
    room = None if action == "end" else _in_conference(view, field="action")
    control = call_control(settings, base_url=str(request.base_url))
    await session.commit()  # nothing held open while the carrier answers
    if room is None:
        await control.hang_up(call_sid=view.call_sid)
    elif action == "hold":
        await control.hold(call_sid=view.call_sid, conference=room)
    elif action == "resume":
        await control.resume(call_sid=view.call_sid, conference=room)
    else:
        assert view.agent_call_sid is not None  # recorded with the conference
        await control.mute(agent_call_sid=view.agent_call_sid, conference=room, muted=action == "mute")
    interaction = await held_call(session, interaction_id=interaction_id, agent_id=agent.id)
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="call_control",
        channel=Channel.VOICE.value,
        actor_type=ActorType.AGENT,
        actor_id=agent.id,
        data={"action": RECORDED[action], "call_sid": view.call_sid},
    )
    await session.commit()
    if action == "end":
        # The caller is gone: the conversation moves to wrap-up through the routing engine (the
        # carrier's "completed" callback that follows finds it in wrap-up and changes nothing).
        await actions.wrap_up(session, actions.EngineLink.of(request), agent, interaction_id)
        await session.commit()
        interaction = await session.get(Interaction, interaction_id, populate_existing=True)
        assert interaction is not None
    view = await call_view(session, interaction)
    await session.commit()
    return HTMLResponse(_render("_voice.html", iid=interaction_id, call=view))


@router.post("/interactions/{interaction_id}/contact-customer", response_class=HTMLResponse)
async def contact_customer(
    interaction_id: uuid.UUID,
    request: Request,
    response: Response,
    session: DbSession,
    settings: AppSettings,
    agent: CurrentAgent,
    channel: Annotated[Literal["voice", "email"], Form()] = "voice",
    reason: Annotated[str, Form(max_length=255)] = "",
) -> HTMLResponse:
    """Call or email the customer of an interaction this agent holds (a chat escalated to a call, a
    call followed by an email): the new contact continues this interaction's thread. A
    contact-policy refusal is shown in the panel, not raised."""
    held = await work_service.held_interaction(session, interaction_id=interaction_id, agent_id=agent.id)
    user = await session.get(User, agent.user_id)
    assert user is not None  # agents.user_id is a non-null foreign key
    body = OutboundCreate(
        customer_id=held.customer_id,
        channel=channel,
        reason=reason.strip() or held.subject or "About your enquiry",
        follow_up_of_id=held.id,
    )
    verb = "called" if channel == "voice" else "emailed"
    try:
        contact = await voice_api.create_outbound(body, request, response, session, settings, user, utcnow())
    except ContactRefused as refused:
        await session.rollback()
        return HTMLResponse(f"Not {verb}: {escape(refused.detail)}")
    if channel == "email":
        # The agent writes it now: the email is theirs (connected), the engine counts it, and its
        # tab opens with the reply box addressed to the customer.
        await interactions_service.transition(
            session,
            interaction_id=contact.id,
            to_state=State.CONNECTED,
            actor_type=ActorType.AGENT,
            actor_id=str(agent.id),
            reason="agent writing an email",
        )
        await session.commit()
        await notify_routing(
            request.app.state.redis_client, [routing_commands.Adopt(interaction_id=str(contact.id))]
        )
        return HTMLResponse("Email opened in a new tab: write it there and press Send.")
    await session.commit()
    if contact.state is State.FAILED:
        return HTMLResponse("The call could not be placed; see the customer's history.")
    return HTMLResponse("Calling the customer; the call opens here when they answer.")


async def return_caller_to_flow(
    session: AsyncSession, *, interaction: Interaction, settings: Any, base_url: str
) -> None:
    """After a voice transfer: the caller's leg leaves this agent and follows the call flow again
    (held with the queue announcements, then bridged to whoever accepts the transfer)."""
    if interaction.channel is not Channel.VOICE:
        return
    call_sid = await call_sid_of(session, interaction)
    if not call_sid:
        return
    await session.commit()
    try:
        control = call_control(settings, base_url=base_url)
        await control.return_to_flow(call_sid=call_sid)
    except Exception as exc:  # noqa: BLE001 - the transfer stands; the carrier's /wait loop catches up
        log.warning("transferred call %s not redirected: %s", call_sid, exc)
