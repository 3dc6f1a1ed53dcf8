"""Agent desktop htmx routes for the work around a conversation: notes, wrap-up with codes, the
transfer dialog, canned responses, and the EX pulse (after an interaction, at the end of a shift).

Routing actions (wrap-up, complete, transfer) go through ``routing.actions``, as the JSON API's
do, so the desktop and API clients share one path: SQL check, engine command, the engine's verdict.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desktop import canned, ex_service, pages, service, voice, work_service
from interactions.models import Interaction
from interactions.states import State
from routing import actions
from routing.actions import EngineLink
from routing.schemas import TransferRequest
from switchboard.deps import DbSession, reads_in_autocommit
from switchboard.errors import Invalid, NotFound
from workforce.deps import CurrentAgent, NoAgentProfile
from workforce.identity import AgentRef
from workforce.models import Agent, Queue

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

Scale = Annotated[int, Form()]


async def _tools_context(session: DbSession, interaction_id: uuid.UUID, agent: AgentRef) -> dict[str, Any]:
    return await tools_context(session, interaction_id=interaction_id, agent_id=agent.id)


async def tools_context(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    bar_only: bool = False,
    held: Interaction | None = None,
) -> dict[str, Any]:
    """What ``_work_tools.html`` shows; ``bar_only``: what its wrap-up bar (``_wrapup.html``) alone
    shows, without the notes and canned responses beside it (a wrap-up click re-renders the bar).
    ``held``: the interaction just read by the caller's session (see ``work_context``)."""
    queues: list[Queue] | None = None
    if held is not None and held.state is not State.WRAP_UP:
        # Read first: the interaction's own queue is then in the session (held by this list), and
        # work_context's session.get finds it there instead of reading it again.
        queues = await work_service.transfer_queues(session)
    ctx = await work_service.work_context(
        session, interaction_id=interaction_id, agent_id=agent_id, held=held
    )
    queue_name = ctx.queue.name if ctx.queue is not None else None
    beside: dict[str, Any] = {}
    if not bar_only:
        beside["notes"] = await work_service.notes(session, interaction_id=interaction_id)
        beside["canned"] = canned.search(await canned.for_work(session, ctx, agent_id), "")
    return {
        "tools": ctx,
        "iid": interaction_id,
        **beside,
        # The transfer dialog exists only before wrap-up.
        "queues": [] if ctx.in_wrap_up else queues or await work_service.transfer_queues(session),
        "current_queue": queue_name,
        # Not listed here: the dialog reads who is available when it is opened (transfer_agents),
        # and every tab opening and wrap-up click paid for a read of every available agent
        # (1,000 rows with their skills per click in the desktop bench) nobody looked at.
        "transfer_agents": [],
    }


@router.get("/interactions/{interaction_id}/tools", response_class=HTMLResponse)
async def work_tools(interaction_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> HTMLResponse:
    """Everything beside one held interaction. Loaded by the panel itself (hx-trigger="load"), so
    the panel partial the websocket pushes needs no queue lookups of its own."""
    context = await _tools_context(session, interaction_id, agent)
    await session.commit()
    return HTMLResponse(pages.render("_work_tools.html", **context))


# ------------------------------------------------------------------ notes


@router.post("/interactions/{interaction_id}/notes", response_class=HTMLResponse)
async def add_note(
    interaction_id: uuid.UUID,
    session: DbSession,
    agent: CurrentAgent,
    body: Annotated[str, Form(max_length=5000)],
) -> HTMLResponse:
    await work_service.add_note(session, interaction_id=interaction_id, agent_id=agent.id, body=body)
    await session.commit()
    notes = await work_service.notes(session, interaction_id=interaction_id)
    await session.commit()
    return HTMLResponse(pages.render("_notes.html", iid=interaction_id, notes=notes))


# ------------------------------------------------------------------ wrap-up and completion


@router.post("/interactions/{interaction_id}/wrap-up", response_class=HTMLResponse)
async def start_wrap_up(
    interaction_id: uuid.UUID, request: Request, session: DbSession, agent: CurrentAgent
) -> HTMLResponse:
    """ "End / Wrap up": the engine moves the interaction to wrap-up; answer with the wrap-up bar
    (the socket also re-renders the panel; both show the same partial)."""
    await actions.wrap_up(session, EngineLink.of(request), agent, interaction_id)
    context = await tools_context(session, interaction_id=interaction_id, agent_id=agent.id, bar_only=True)
    await session.commit()
    return HTMLResponse(pages.render("_wrapup.html", **context))


@router.post("/interactions/{interaction_id}/complete", response_class=HTMLResponse)
async def complete(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    agent: CurrentAgent,
    disposition: Annotated[str, Form(max_length=80)] = "",
) -> HTMLResponse:
    """Record the wrap-up code, then complete. Without a valid code nothing is completed (422
    naming ``disposition``): the code is written first, so a completed interaction has one."""
    coded = await work_service.set_wrap_up_code(
        session, interaction_id=interaction_id, agent_id=agent.id, disposition=disposition, completing=True
    )
    await session.commit()
    # Referenced until here, the row just written stays in the session's identity map (weakly
    # held), where actions.complete's ownership check finds it instead of reading it again.
    await actions.complete(session, EngineLink.of(request), agent, coded.id)
    # The socket's "completed" push removes the tab and panel (work.js hides them at once): a
    # delete here too would find nothing whenever the push came first (htmx:oobErrorNoTarget).
    # The pulse card replaces the previous one above the panels (one at a time, never a pile).
    pulse = pages.render("_ex_pulse.html", iid=interaction_id, tags=ex_service.PULSE_TAGS)
    html = f'<div id="pulse-slot" hx-swap-oob="innerHTML">{pulse}</div>' + await _capacity(session, agent)
    await session.commit()
    return HTMLResponse(html)


async def _capacity(session: DbSession, agent: AgentRef) -> str:
    await reads_in_autocommit(session)  # after the route's commit: one read, no BEGIN/COMMIT
    lines = await service.capacity_for(session, agent_id=agent.id)
    return pages.capacity_fragment(lines) if lines is not None else ""


# ------------------------------------------------------------------ transfer


@router.get("/interactions/{interaction_id}/transfer/agents", response_class=HTMLResponse)
async def transfer_agents(
    interaction_id: uuid.UUID,
    session: DbSession,
    agent: CurrentAgent,
    to_queue: Annotated[str, Query(min_length=1, max_length=60)],
) -> HTMLResponse:
    """The agent <option>s for the chosen queue (the dialog swaps them in on change)."""
    await work_service.held_interaction(session, interaction_id=interaction_id, agent_id=agent.id)
    agents = await work_service.available_agents(session, queue_name=to_queue, exclude_agent_id=agent.id)
    await session.commit()
    return HTMLResponse(pages.render("_transfer_agents.html", transfer_agents=agents))


@router.post("/interactions/{interaction_id}/transfer", response_class=HTMLResponse)
async def transfer(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    agent: CurrentAgent,
    to_queue: Annotated[str, Form(max_length=60)] = "",
    to_agent_id: Annotated[str, Form(max_length=40)] = "",
    mode: Annotated[Literal["blind", "warm"], Form()] = "blind",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    """Hand over to a named agent when one is chosen, else to the queue; the note travels with it
    (card numbers masked) and the tab leaves this desktop."""
    target_agent: uuid.UUID | None = None
    if to_agent_id:
        try:
            target_agent = uuid.UUID(to_agent_id)
        except ValueError as exc:
            raise Invalid("Not an agent id", field="to_agent_id") from exc
    elif not to_queue:
        raise Invalid("Choose a queue or an agent to transfer to", field="to_queue")
    body = TransferRequest(
        to_queue=None if target_agent else to_queue,
        to_agent_id=target_agent,
        mode=mode,
        note=note.strip() or None,
    )
    held = await work_service.held_interaction(session, interaction_id=interaction_id, agent_id=agent.id)
    result = await actions.transfer(session, EngineLink.of(request), agent, interaction_id, body)
    if result.consult == "pending":
        # Warm: the agent stays with the customer; the tab shows who is being consulted and leaves
        # only when the engine reports the parent completed (target accepted).
        html = await _wrapup_bar(session, agent, interaction_id)
        await session.commit()
        return HTMLResponse(html)
    if mode == "blind":
        # The caller leaves this agent's device now and follows the call flow to whoever accepts.
        # Warm: the agent stays on the line; when their leg ends, the bridge's own redirect to
        # /wait takes the caller to the colleague who accepted.
        await voice.return_caller_to_flow(
            session, interaction=held, settings=request.app.state.settings, base_url=str(request.base_url)
        )
    # The engine publishes nothing to the sender for a transfer, so the tab is removed here.
    html = pages.work_removed_fragment(interaction_id) + await _capacity(session, agent)
    await session.commit()
    return HTMLResponse(html)


@router.get("/offers/{offer_id}/origin", response_class=HTMLResponse)
async def offer_origin(offer_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> HTMLResponse:
    """Whether an offered interaction was transferred, by whom and with what note: the toast of a
    pushed offer asks once, so the target knows before accepting."""
    mine, origin = await service.offer_origin(session, offer_id=offer_id, agent_id=agent.id)
    await session.commit()
    if not mine:
        raise NotFound("No such offer made to this agent", field="offer_id")
    return HTMLResponse(pages.render("_offer_origin.html", offer_id=offer_id, origin=origin))


@router.post("/interactions/{interaction_id}/transfer/cancel", response_class=HTMLResponse)
async def cancel_transfer(
    interaction_id: uuid.UUID, request: Request, session: DbSession, agent: CurrentAgent
) -> HTMLResponse:
    """Withdraw a warm transfer still waiting for its target; the customer stays here."""
    await actions.cancel_transfer(session, EngineLink.of(request), agent, interaction_id)
    html = await _wrapup_bar(session, agent, interaction_id)
    await session.commit()
    return HTMLResponse(html)


async def _wrapup_bar(session: DbSession, agent: AgentRef, interaction_id: uuid.UUID) -> str:
    return await wrapup_bar(session, agent_id=agent.id, interaction_id=interaction_id)


async def wrapup_bar(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    interaction_id: uuid.UUID,
    held: Interaction | None = None,
) -> str:
    """The wrap-up bar (transfer dialog or pending consult) re-rendered in place, out of band; the
    rest of the panel (reply being typed, scroll position) is left alone."""
    context = await tools_context(
        session, interaction_id=interaction_id, agent_id=agent_id, bar_only=True, held=held
    )
    html = pages.render("_wrapup.html", **context)
    marker = '<section id="wrapup-'
    assert html.count(marker) == 1, "the wrap-up bar renders one section"
    return html.replace(marker, '<section hx-swap-oob="true" id="wrapup-')


# ------------------------------------------------------------------ canned responses


@router.get("/interactions/{interaction_id}/canned", response_class=HTMLResponse)
async def canned_search(
    interaction_id: uuid.UUID,
    session: DbSession,
    agent: CurrentAgent,
    q: Annotated[str, Query(max_length=canned.MAX_QUERY)] = "",
) -> HTMLResponse:
    ctx = await work_service.work_context(session, interaction_id=interaction_id, agent_id=agent.id)
    responses = await canned.for_work(session, ctx, agent.id)
    await session.commit()
    hits = canned.search(responses, q)
    return HTMLResponse(pages.render("_canned_results.html", iid=interaction_id, canned=hits, q=q))


# ------------------------------------------------------------------ EX pulse


async def _agent_row(session: AsyncSession, agent: AgentRef) -> Agent:
    """The profile's row: a pulse records the agent's team, which can change."""
    row = await session.get(Agent, agent.id)
    if row is None:  # deleted since the request began
        raise NoAgentProfile()
    return row


@router.post("/ex/pulse", response_class=HTMLResponse)
async def submit_pulse(
    session: DbSession,
    agent: CurrentAgent,
    interaction_id: Annotated[uuid.UUID, Form()],
    score: Scale,
    tags: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies form defaults
    comment: Annotated[str, Form(max_length=ex_service.MAX_COMMENT)] = "",
) -> HTMLResponse:
    pulse = await ex_service.record_interaction_pulse(
        session,
        agent=await _agent_row(session, agent),
        interaction_id=interaction_id,
        score=score,
        tags=tags,
        comment=comment,
    )
    await session.commit()
    return HTMLResponse(pages.render("_ex_pulse.html", iid=interaction_id, done=pulse))


@router.post("/ex/checkin", response_class=HTMLResponse)
async def submit_checkin(
    session: DbSession,
    agent: CurrentAgent,
    energy: Scale,
    workload: Scale,
    comment: Annotated[str, Form(max_length=ex_service.MAX_COMMENT)] = "",
) -> HTMLResponse:
    pulse = await ex_service.record_shift_checkin(
        session, agent=await _agent_row(session, agent), energy=energy, workload=workload, comment=comment
    )
    await session.commit()
    return HTMLResponse(pages.render("_checkin.html", done=pulse))
