"""Agent desktop htmx routes for the work around a conversation: notes, wrap-up with codes, the
transfer dialog, canned responses, and the EX pulse (after an interaction, at the end of a shift).

Routing actions (wrap-up, complete, transfer) go through the routing API's own handlers, so the
desktop and API clients share one path: SQL check, engine command, the engine's verdict.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desktop import canned, ex_service, pages, service, voice, work_service
from routing import api as routing_api
from routing.models import Agent
from routing.schemas import TransferRequest
from switchboard.deps import DbSession, MaybeAgent
from switchboard.errors import Invalid, NotFound

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

Scale = Annotated[int, Form()]


def _profile(agent: Agent | None) -> Agent:
    if agent is None:
        raise NotFound("This user has no agent profile", field="agent")
    return agent


async def _tools_context(session: DbSession, interaction_id: uuid.UUID, agent: Agent) -> dict[str, Any]:
    return await tools_context(session, interaction_id=interaction_id, agent_id=agent.id)


async def tools_context(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> dict[str, Any]:
    ctx = await work_service.work_context(session, interaction_id=interaction_id, agent_id=agent_id)
    queue_name = ctx.queue.name if ctx.queue is not None else None
    return {
        "tools": ctx,
        "iid": interaction_id,
        "notes": await work_service.notes(session, interaction_id=interaction_id),
        "canned": canned.search(canned.canned_for(ctx.queue), ""),
        # The transfer dialog exists only before wrap-up.
        "queues": [] if ctx.in_wrap_up else await work_service.transfer_queues(session),
        "current_queue": queue_name,
        # Not listed here: the dialog reads who is available when it is opened (transfer_agents),
        # and every tab opening and wrap-up click paid for a read of every available agent
        # (1,000 rows with their skills per click in the desktop bench) nobody looked at.
        "transfer_agents": [],
    }


@router.get("/interactions/{interaction_id}/tools", response_class=HTMLResponse)
async def work_tools(interaction_id: uuid.UUID, session: DbSession, maybe_agent: MaybeAgent) -> HTMLResponse:
    """Everything beside one held interaction. Loaded by the panel itself (hx-trigger="load"), so
    the panel partial the websocket pushes needs no queue lookups of its own."""
    context = await _tools_context(session, interaction_id, _profile(maybe_agent))
    await session.commit()
    return HTMLResponse(pages.render("_work_tools.html", **context))


# ------------------------------------------------------------------ notes


@router.post("/interactions/{interaction_id}/notes", response_class=HTMLResponse)
async def add_note(
    interaction_id: uuid.UUID,
    session: DbSession,
    maybe_agent: MaybeAgent,
    body: Annotated[str, Form(max_length=5000)],
) -> HTMLResponse:
    agent = _profile(maybe_agent)
    await work_service.add_note(session, interaction_id=interaction_id, agent_id=agent.id, body=body)
    await session.commit()
    notes = await work_service.notes(session, interaction_id=interaction_id)
    await session.commit()
    return HTMLResponse(pages.render("_notes.html", iid=interaction_id, notes=notes))


# ------------------------------------------------------------------ wrap-up and completion


@router.post("/interactions/{interaction_id}/wrap-up", response_class=HTMLResponse)
async def start_wrap_up(
    interaction_id: uuid.UUID, request: Request, session: DbSession, maybe_agent: MaybeAgent
) -> HTMLResponse:
    """ "End / Wrap up": the engine moves the interaction to wrap-up; answer with the wrap-up bar
    (the socket also re-renders the panel; both show the same partial)."""
    agent = _profile(maybe_agent)
    await routing_api.start_wrap_up(interaction_id, request, session, agent)
    context = await _tools_context(session, interaction_id, agent)
    await session.commit()
    return HTMLResponse(pages.render("_wrapup.html", **context))


@router.post("/interactions/{interaction_id}/complete", response_class=HTMLResponse)
async def complete(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    maybe_agent: MaybeAgent,
    disposition: Annotated[str, Form(max_length=80)] = "",
) -> HTMLResponse:
    """Record the wrap-up code, then complete. Without a valid code nothing is completed (422
    naming ``disposition``): the code is written first, so a completed interaction has one."""
    agent = _profile(maybe_agent)
    await work_service.set_wrap_up_code(
        session, interaction_id=interaction_id, agent_id=agent.id, disposition=disposition, completing=True
    )
    await session.commit()
    await routing_api.complete(interaction_id, request, session, agent)
    # The panel goes now (the socket's "completed" push does the same, idempotently); the pulse
    # card goes between the tabs and the panels, where the agent is already looking.
    pulse = pages.render("_ex_pulse.html", iid=interaction_id, tags=ex_service.PULSE_TAGS)
    html = (
        pages.work_removed_fragment(interaction_id)
        + f'<div hx-swap-oob="beforebegin:#work-panels">{pulse}</div>'
        + await _capacity(session, agent)
    )
    await session.commit()
    return HTMLResponse(html)


async def _capacity(session: DbSession, agent: Agent) -> str:
    fresh = await service.get_agent(session, agent_id=agent.id)
    return pages.capacity_fragment(await service.capacity(session, agent=fresh)) if fresh else ""


# ------------------------------------------------------------------ transfer


@router.get("/interactions/{interaction_id}/transfer/agents", response_class=HTMLResponse)
async def transfer_agents(
    interaction_id: uuid.UUID,
    session: DbSession,
    maybe_agent: MaybeAgent,
    to_queue: Annotated[str, Query(min_length=1, max_length=60)],
) -> HTMLResponse:
    """The agent <option>s for the chosen queue (the dialog swaps them in on change)."""
    agent = _profile(maybe_agent)
    await work_service.held_interaction(session, interaction_id=interaction_id, agent_id=agent.id)
    agents = await work_service.available_agents(session, queue_name=to_queue, exclude_agent_id=agent.id)
    await session.commit()
    return HTMLResponse(pages.render("_transfer_agents.html", transfer_agents=agents))


@router.post("/interactions/{interaction_id}/transfer", response_class=HTMLResponse)
async def transfer(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    maybe_agent: MaybeAgent,
    to_queue: Annotated[str, Form(max_length=60)] = "",
    to_agent_id: Annotated[str, Form(max_length=40)] = "",
    mode: Annotated[Literal["blind", "warm"], Form()] = "blind",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    """Hand over to a named agent when one is chosen, else to the queue; the note travels with it
    (card numbers masked) and the tab leaves this desktop."""
    agent = _profile(maybe_agent)
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
    result = await routing_api.transfer(interaction_id, body, request, session, agent)
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


@router.post("/interactions/{interaction_id}/transfer/cancel", response_class=HTMLResponse)
async def cancel_transfer(
    interaction_id: uuid.UUID, request: Request, session: DbSession, maybe_agent: MaybeAgent
) -> HTMLResponse:
    """Withdraw a warm transfer still waiting for its target; the customer stays here."""
    agent = _profile(maybe_agent)
    await routing_api.cancel_transfer(interaction_id, request, session, agent)
    html = await _wrapup_bar(session, agent, interaction_id)
    await session.commit()
    return HTMLResponse(html)


async def _wrapup_bar(session: DbSession, agent: Agent, interaction_id: uuid.UUID) -> str:
    return await wrapup_bar(session, agent_id=agent.id, interaction_id=interaction_id)


async def wrapup_bar(session: AsyncSession, *, agent_id: uuid.UUID, interaction_id: uuid.UUID) -> str:
    """The wrap-up bar (transfer dialog or pending consult) re-rendered in place, out of band; the
    rest of the panel (reply being typed, scroll position) is left alone."""
    html = pages.render(
        "_wrapup.html", **await tools_context(session, interaction_id=interaction_id, agent_id=agent_id)
    )
    marker = '<section id="wrapup-'
    assert html.count(marker) == 1, "the wrap-up bar renders one section"
    return html.replace(marker, '<section hx-swap-oob="true" id="wrapup-')


# ------------------------------------------------------------------ canned responses


@router.get("/interactions/{interaction_id}/canned", response_class=HTMLResponse)
async def canned_search(
    interaction_id: uuid.UUID,
    session: DbSession,
    maybe_agent: MaybeAgent,
    q: Annotated[str, Query(max_length=canned.MAX_QUERY)] = "",
) -> HTMLResponse:
    agent = _profile(maybe_agent)
    ctx = await work_service.work_context(session, interaction_id=interaction_id, agent_id=agent.id)
    await session.commit()
    hits = canned.search(canned.canned_for(ctx.queue), q)
    return HTMLResponse(pages.render("_canned_results.html", iid=interaction_id, canned=hits, q=q))


# ------------------------------------------------------------------ EX pulse


@router.post("/ex/pulse", response_class=HTMLResponse)
async def submit_pulse(
    session: DbSession,
    maybe_agent: MaybeAgent,
    interaction_id: Annotated[uuid.UUID, Form()],
    score: Scale,
    tags: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies form defaults
    comment: Annotated[str, Form(max_length=ex_service.MAX_COMMENT)] = "",
) -> HTMLResponse:
    agent = _profile(maybe_agent)
    pulse = await ex_service.record_interaction_pulse(
        session, agent=agent, interaction_id=interaction_id, score=score, tags=tags, comment=comment
    )
    await session.commit()
    return HTMLResponse(pages.render("_ex_pulse.html", iid=interaction_id, done=pulse))


@router.post("/ex/checkin", response_class=HTMLResponse)
async def submit_checkin(
    session: DbSession,
    maybe_agent: MaybeAgent,
    energy: Scale,
    workload: Scale,
    comment: Annotated[str, Form(max_length=ex_service.MAX_COMMENT)] = "",
) -> HTMLResponse:
    agent = _profile(maybe_agent)
    pulse = await ex_service.record_shift_checkin(
        session, agent=agent, energy=energy, workload=workload, comment=comment
    )
    await session.commit()
    return HTMLResponse(pages.render("_checkin.html", done=pulse))
