"""Agent desktop HTML: the page, its htmx fragment routes, and the fragments the websocket pushes.

Every fragment is rendered from the same partial templates the page includes, so a push, an htmx
response and a full page load can never disagree about markup.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agent_desktop import service
from routing import actions
from switchboard.auth.models import STAFF_RANK, Role
from switchboard.auth.pages import page_context
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import Forbidden, NotFound, Unauthorized
from switchboard.templating import templates
from workforce.deps import CurrentAgent
from workforce.models import Presence

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

PresenceChoice = Literal["available", "break", "training", "offline"]


def render(name: str, **context: Any) -> str:
    """Render one partial (autoescaped: the environment selects it for .html templates)."""
    return templates.get_template(f"agent_desktop/{name}").render(**context)


# ------------------------------------------------------------------ websocket push fragments
# Top-level elements of a websocket message are swapped out-of-band by id (htmx ws extension);
# an explicit hx-swap-oob selects another strategy.


def status_fragment(agent: Any, offers: list[Any] | None = None) -> str:
    """``offers``: the agent's live offers, when a status asked for may still wait for one."""
    return render("_status.html", agent=agent, offers=offers or [])


def capacity_fragment(lines: list[service.CapacityLine]) -> str:
    return render("_capacity.html", capacity=lines)


def connection_fragment(at: datetime | None) -> str:
    return render("_connection.html", live=True, at=at)


def offer_added_fragment(card: service.OfferCard) -> str:
    return f'<div hx-swap-oob="beforeend:#offers">{render("_offer.html", offer=card)}</div>'


def offer_removed_fragment(offer_id: uuid.UUID | str, *, notice: str | None) -> str:
    removed = f'<article id="offer-{uuid.UUID(str(offer_id))}" hx-swap-oob="delete"></article>'
    if notice is None:
        return removed
    return removed + render("_offer_notice.html", notice=notice, notice_id=str(offer_id))


def schedule_notice_fragment(summary: str) -> str:
    """The side pane's notice that a schedule with the agent's shifts was published."""
    return render("_schedule_notice.html", notice=f"New schedule published: {summary}.")


def request_notice_fragment(summary: str) -> str:
    """The side pane's notice that a swap or time-off request of this agent's changed state."""
    return render("_schedule_notice.html", notice=summary)


def work_added_fragment(item: service.WorkItem, **panel: Any) -> str:
    """A new tab and its panel; ``panel`` (agent_desktop.panel) fills the panel's tools, transcript
    and thread in place of the placeholders that load them."""
    return (
        f'<div hx-swap-oob="beforeend:#work-tabs">{render("_tab.html", item=item)}</div>'
        f'<div hx-swap-oob="beforeend:#work-panels">{render("_interaction.html", item=item, **panel)}</div>'
    )


def work_updated_fragment(item: service.WorkItem, **panel: Any) -> str:
    return render("_tab.html", item=item) + render("_interaction.html", item=item, **panel)


def work_removed_fragment(interaction_id: uuid.UUID | str) -> str:
    safe = uuid.UUID(str(interaction_id))
    return (
        f'<button id="tab-{safe}" hx-swap-oob="delete"></button>'
        f'<article id="panel-{safe}" hx-swap-oob="delete"></article>'
    )


def resync_fragment(state: service.DesktopState, *, at: datetime | None) -> str:
    """The whole live part of the desktop, replacing whatever the browser shows (after a reconnect)."""
    ctx = state.context()
    return "".join(
        (
            render("_status.html", **ctx),
            render("_capacity.html", **ctx),
            render("_offers.html", **ctx),
            render("_work_list.html", **ctx),
            render("_work.html", **ctx),
            connection_fragment(at),
        )
    )


# ------------------------------------------------------------------ routes


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("", response_class=HTMLResponse)
async def desktop_page(
    request: Request, session: DbSession, settings: AppSettings, user: OptionalUser
) -> Response:
    """The agent desktop. Browsers without a session go to the login page; API clients get 401."""
    if user is None:
        if _wants_html(request):
            return RedirectResponse("/login", status_code=303)
        raise Unauthorized("Sign in first")
    rank = STAFF_RANK.get(user.role)
    if rank is None or rank < STAFF_RANK[Role.AGENT]:
        raise Forbidden("Requires the agent role or higher")
    agent = await service.agent_for_user(session, user_id=user.id)
    context: dict[str, Any] = {"agent": agent, "capacity": [], "offers": [], "work": []}
    if agent is not None:
        context.update((await service.load_state(session, agent=agent)).context())
    await session.commit()  # end the read transaction before rendering
    return templates.TemplateResponse(
        request, "agent_desktop/page.html", page_context(request, user, settings, **context)
    )


@router.post("/presence", response_class=HTMLResponse)
async def change_presence(
    request: Request,
    session: DbSession,
    agent: CurrentAgent,
    presence: Annotated[PresenceChoice, Form()],
    reason: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    """The status selector. Goes through ``routing.actions`` as the JSON API does (one path: SQL +
    engine command, so routing starts, stops or rescinds offers), then answers with the status
    partial."""
    changed = await actions.set_presence(
        session,
        actions.EngineLink.of(request),
        agent,
        presence=presence,
        reason=(reason or None) if presence == "break" else None,
    )
    # The row as just written (a later change by the engine reaches the page by the socket's
    # push). Only a break or training waits for a pending offer; other statuses need no look.
    pending = (
        await service.live_offers(session, agent_id=changed.id)
        if changed.presence in (Presence.BREAK, Presence.TRAINING)
        else []
    )
    await session.commit()
    return HTMLResponse(status_fragment(changed, pending))


@router.get("/interactions/{interaction_id}/customer", response_class=HTMLResponse)
async def customer_panel(interaction_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> Response:
    """Refresh one customer 360 (held interactions only: an agent sees only their own customers)."""
    item = await service.work_item(session, interaction_id=interaction_id, agent_id=agent.id)
    await session.commit()
    if item is None:
        raise NotFound("No such interaction held by this agent", field="interaction_id")
    return HTMLResponse(render("_customer.html", item=item))
