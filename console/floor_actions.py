"""Supervisor actions on the floor (issue #11 item 2), as pages and JSON:

* ``/supervisor/agents/{id}/state`` and ``POST /api/supervisor/agents/{id}/state``: an agent's state
  with a reason; "Sign out" for a desktop that vanished (offline: its offers go back to the queue).
* ``/supervisor/work`` and ``POST /api/supervisor/interactions/{id}/end``: the live work of the
  floor, and ending an interaction that is stuck.

Pages are plain forms (POST, then redirect back with a notice), so they work by keyboard and keep
working while the wallboard above them is re-rendered by pushes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select

from console.context import console_context, supervisor_or_login
from console.floor import queue_names
from interactions.models import Interaction
from routing.actions import EngineLink
from routing.schemas import CommandResult
from routing.supervisor_actions import (
    ENDABLE,
    MOVABLE,
    end_interaction,
    move_interaction,
    set_agent_state,
    set_priority,
)
from switchboard.deps import AppSettings, DbSession, OptionalUser, RequireSupervisor
from switchboard.errors import DomainError, NotFound
from switchboard.templating import templates
from workforce.models import Agent, Presence, Queue

router = APIRouter(tags=["supervisor"])
pages = APIRouter(tags=["pages"], include_in_schema=False)

SETTABLE = ("available", "break", "training", "offline")
SIGN_OUT_REASON = "Signed out by a supervisor (desktop vanished)"
MAX_WORK_SHOWN = 200


class AgentStateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: Literal["available", "break", "training", "offline"]
    reason: str = Field(min_length=3, max_length=60, description="Why (shown to the agent and audited)")


class EndInteraction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=3, max_length=200, description="Why it is ended (on its timeline, audited)"
    )


class MoveInteraction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_queue: str | None = Field(default=None, max_length=60, description="Queue name (or to_agent_id)")
    to_agent_id: uuid.UUID | None = Field(default=None, description="A named agent (or to_queue)")
    reason: str = Field(min_length=3, max_length=200)

    @model_validator(mode="after")
    def one_target(self) -> MoveInteraction:
        if (self.to_queue is None) == (self.to_agent_id is None):
            raise ValueError("name exactly one of to_queue or to_agent_id")
        return self


class PriorityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=-100, le=100, description="Higher is served sooner (0: normal)")
    reason: str = Field(min_length=3, max_length=200)


class AgentStateRead(BaseModel):
    id: uuid.UUID
    presence: str
    presence_reason: str | None


# ------------------------------------------------------------------------------ JSON


@router.post("/api/supervisor/agents/{agent_id}/state", response_model=AgentStateRead)
async def set_state(
    agent_id: uuid.UUID, body: AgentStateUpdate, request: Request, session: DbSession, user: RequireSupervisor
) -> AgentStateRead:
    """Set an agent's state (offline signs out a vanished desktop); audited with the reason."""
    agent = await set_agent_state(
        session,
        EngineLink.of(request),
        agent_id=agent_id,
        presence=Presence(body.presence),
        reason=body.reason,
        actor=user,
    )
    return AgentStateRead(id=agent.id, presence=agent.presence.value, presence_reason=agent.presence_reason)


@router.post("/api/supervisor/interactions/{interaction_id}/end", response_model=CommandResult)
async def end(
    interaction_id: uuid.UUID,
    body: EndInteraction,
    request: Request,
    session: DbSession,
    user: RequireSupervisor,
) -> CommandResult:
    """End a stuck interaction through the routing engine (waiting: abandoned; held: wrapped up and
    completed for the agent); on its timeline and audited with the reason."""
    return await end_interaction(
        session, EngineLink.of(request), interaction_id=interaction_id, reason=body.reason, actor=user
    )


@router.post("/api/supervisor/interactions/{interaction_id}/move", response_model=CommandResult)
async def move(
    interaction_id: uuid.UUID,
    body: MoveInteraction,
    request: Request,
    session: DbSession,
    user: RequireSupervisor,
) -> CommandResult:
    """Move waiting work to another queue or a named agent (it keeps its place); timeline + audit."""
    return await move_interaction(
        session,
        EngineLink.of(request),
        interaction_id=interaction_id,
        to_queue=body.to_queue,
        to_agent_id=body.to_agent_id,
        reason=body.reason,
        actor=user,
    )


@router.post("/api/supervisor/interactions/{interaction_id}/priority", response_model=CommandResult)
async def priority(
    interaction_id: uuid.UUID,
    body: PriorityUpdate,
    request: Request,
    session: DbSession,
    user: RequireSupervisor,
) -> CommandResult:
    """Raise or lower waiting work's priority (its place moves at once); timeline + audit."""
    return await set_priority(
        session,
        EngineLink.of(request),
        interaction_id=interaction_id,
        priority=body.priority,
        reason=body.reason,
        actor=user,
    )


# ------------------------------------------------------------------------------ pages


def _errors(exc: ValidationError) -> dict[str, str]:
    return {str(e["loc"][0]) if e["loc"] else "": e["msg"] for e in exc.errors()}


@pages.get("/supervisor/agents/{agent_id}/state", response_class=HTMLResponse)
async def agent_page(
    agent_id: uuid.UUID, request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("No such agent", field="agent_id")
    context = await console_context(
        request,
        staff,
        settings,
        session,
        agent=agent,
        settable=SETTABLE,
        notice=request.query_params.get("notice"),
        errors={},
        form={},
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/agent.html", context)


@pages.post("/supervisor/agents/{agent_id}/state", response_class=HTMLResponse)
async def agent_page_post(
    agent_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    presence: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "set",
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    raw = (
        {"presence": "offline", "reason": SIGN_OUT_REASON}
        if action == "sign_out"
        else {
            "presence": presence,
            "reason": reason.strip(),
        }
    )
    try:
        body = AgentStateUpdate.model_validate(raw)
        agent = await set_agent_state(
            session,
            EngineLink.of(request),
            agent_id=agent_id,
            presence=Presence(body.presence),
            reason=body.reason,
            actor=staff,
        )
    except (ValidationError, DomainError) as exc:
        await session.rollback()
        errors = _errors(exc) if isinstance(exc, ValidationError) else {exc.field or "": exc.detail}
        found = await session.get(Agent, agent_id)
        if found is None:
            raise NotFound("No such agent", field="agent_id") from None
        context = await console_context(
            request,
            staff,
            settings,
            session,
            agent=found,
            settable=SETTABLE,
            notice=None,
            errors=errors,
            form=raw,
        )
        await session.commit()
        return templates.TemplateResponse(request, "console/agent.html", context, status_code=422)
    notice = f"{agent.display_name} is now {agent.presence.value}."
    return RedirectResponse(
        f"/supervisor/agents/{agent_id}/state?{urlencode({'notice': notice})}", status_code=303
    )


async def _live_work(session: Any) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Interaction, Queue.display_name, Queue.name, Agent.display_name)
        .outerjoin(Queue, Queue.id == Interaction.queue_id)
        .outerjoin(Agent, Agent.id == Interaction.agent_id)
        .where(Interaction.state.in_(ENDABLE))
        .order_by(Interaction.created_at)
        .limit(MAX_WORK_SHOWN)
    )
    return [
        {"it": it, "queue": queue, "queue_name": name, "agent": agent}
        for it, queue, name, agent in rows.all()
    ]


@pages.get("/supervisor/work", response_class=HTMLResponse)
async def work_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    work = await _live_work(session)
    context = await console_context(
        request,
        staff,
        settings,
        session,
        work=work,
        queues=await queue_names(session),
        movable=MOVABLE,
        notice=request.query_params.get("notice"),
        errors={},
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/work.html", context)


@pages.post("/supervisor/work/{interaction_id}/end", response_class=HTMLResponse)
async def end_from_page(
    interaction_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    reason: Annotated[str, Form()] = "",
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)

    async def run() -> None:
        body = EndInteraction.model_validate({"reason": reason.strip()})
        await end_interaction(
            session, EngineLink.of(request), interaction_id=interaction_id, reason=body.reason, actor=staff
        )

    return await _work_action(request, staff, settings, session, interaction_id, run, "ended")


async def _work_action(
    request: Request,
    staff: Any,
    settings: Any,
    session: Any,
    interaction_id: uuid.UUID,
    run: Any,
    done: str,
) -> Response:
    """Run one live-work form's action; its error is shown at its row, the list kept."""
    try:
        await run()
    except (ValidationError, DomainError) as exc:
        await session.rollback()
        if isinstance(exc, ValidationError):
            message = "; ".join(f"{e['loc'][0] if e['loc'] else 'form'}: {e['msg']}" for e in exc.errors())
        else:
            message = exc.detail
        work = await _live_work(session)
        context = await console_context(
            request,
            staff,
            settings,
            session,
            work=work,
            queues=await queue_names(session),
            movable=MOVABLE,
            notice=None,
            errors={str(interaction_id): message},
        )
        await session.commit()
        return templates.TemplateResponse(request, "console/work.html", context, status_code=422)
    notice = f"Interaction {str(interaction_id)[:8]} {done}."
    return RedirectResponse(f"/supervisor/work?{urlencode({'notice': notice})}", status_code=303)


@pages.post("/supervisor/work/{interaction_id}/move", response_class=HTMLResponse)
async def move_from_page(
    interaction_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    to_queue: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)

    async def run() -> None:
        body = MoveInteraction.model_validate({"to_queue": to_queue or None, "reason": reason.strip()})
        await move_interaction(
            session,
            EngineLink.of(request),
            interaction_id=interaction_id,
            to_queue=body.to_queue,
            to_agent_id=None,
            reason=body.reason,
            actor=staff,
        )

    return await _work_action(request, staff, settings, session, interaction_id, run, f"moved to {to_queue}")


@pages.post("/supervisor/work/{interaction_id}/priority", response_class=HTMLResponse)
async def priority_from_page(
    interaction_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    priority: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)

    async def run() -> None:
        body = PriorityUpdate.model_validate({"priority": priority.strip() or None, "reason": reason.strip()})
        await set_priority(
            session,
            EngineLink.of(request),
            interaction_id=interaction_id,
            priority=body.priority,
            reason=body.reason,
            actor=staff,
        )

    return await _work_action(
        request, staff, settings, session, interaction_id, run, f"priority set to {priority}"
    )
