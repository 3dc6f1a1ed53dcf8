"""The rules editor's dry-runs and re-evaluation (htmx fragments on a version's page): a described
contact or a real waiting interaction explained by ``routing.dryrun`` (the running engine's own
matching and ranking, agents by name), what re-evaluating waiting work would move
(``routing.rule_actions.preview``), and the re-evaluation itself (audited)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import ConsoleStaff
from customers.models import Customer, ValueTier
from interactions.models import Interaction
from interactions.states import Channel, State
from routing import actions, condition_help, dryrun, rule_actions
from routing.api import RuleSetVersionNo
from routing.schemas import DescribedContact
from switchboard.db import utcnow
from switchboard.deps import DbSession
from switchboard.errors import DomainError, StillProcessing
from switchboard.templating import templates
from workforce.models import Queue

router = APIRouter(tags=["pages"], include_in_schema=False)
WAITING_SHOWN = 20


def contact_choices() -> dict[str, Any]:
    from interactions.chat import TOPICS
    from interactions.voice.ivr import MENU

    topics = {t: label for t, label in TOPICS.items() if t != "other"}
    for option in MENU:
        topics.setdefault(option.topic, option.label)
    return {
        "tiers": [t.value for t in ValueTier],
        "channels": [c.value for c in Channel],
        "topics": topics,
        "languages": condition_help.LANGUAGES,
    }


async def waiting_work(session: AsyncSession) -> list[dict[str, Any]]:
    """The oldest waiting interactions (queued or offered), to dry-run one of them."""
    rows = await session.execute(
        select(Interaction, Customer.display_name, Queue.name)
        .join(Customer, Customer.id == Interaction.customer_id)
        .outerjoin(Queue, Queue.id == Interaction.queue_id)
        .where(Interaction.state.in_((State.QUEUED, State.OFFERED)))
        .order_by(Interaction.virtual_start_at, Interaction.id)
        .limit(WAITING_SHOWN)
    )
    now = utcnow()
    return [
        {
            "id": it.id,
            "customer": name,
            "channel": it.channel.value,
            "topic": it.topic or "",
            "queue": queue or "",
            "state": it.state.value,
            "waited": _seconds(now, it.virtual_start_at),
        }
        for it, name, queue in rows
    ]


def _seconds(now: datetime, then: datetime) -> int:
    return max(0, int((now - then).total_seconds()))


def _fragment(request: Request, name: str, **context: Any) -> Response:
    return templates.TemplateResponse(request, f"console/{name}", context)


@router.post("/supervisor/rules/{version}/dry-run", response_class=HTMLResponse)
async def dry_run_fragment(
    version: RuleSetVersionNo, request: Request, staff: ConsoleStaff, session: DbSession
) -> Response:
    """htmx: the explanation of a described contact (or of ``interaction_id``) under ``version``.
    Problems are shown in the fragment (htmx swaps only successful answers), naming the field."""
    if staff is None:
        return Response(status_code=401)
    form: dict[str, Any] = dict((await request.form()).items())
    form.pop("csrf_token", None)
    interaction_id: uuid.UUID | None = None
    context: dict[str, Any] = {}
    try:
        if form.get("interaction_id"):
            interaction_id = uuid.UUID(str(form["interaction_id"]))
        else:
            form["senior"] = form.get("senior") == "on"
            form["vulnerable"] = form.get("vulnerable") == "on"
            fields = {k: v for k, v in form.items() if v != ""}
            context = dryrun.contact_context(DescribedContact.model_validate(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _fragment(request, "_rules_dryrun.html", problem=f"{where}: {first['msg']}", field=where)
    except ValueError:
        return _fragment(
            request, "_rules_dryrun.html", problem="Not an interaction id", field="interaction_id"
        )
    try:
        result = await dryrun.dry_run(
            session,
            actions.EngineLink.of(request),
            context=context,
            interaction_id=interaction_id,
            version=version,
        )
    except DomainError as exc:
        return _fragment(request, "_rules_dryrun.html", problem=exc.detail, field=exc.field)
    return _fragment(request, "_rules_dryrun.html", result=result, version=version, asked=interaction_id)


@router.post("/supervisor/rules/{version}/preview", response_class=HTMLResponse)
async def preview_fragment(
    version: RuleSetVersionNo, request: Request, staff: ConsoleStaff, session: DbSession
) -> Response:
    """htmx: which waiting interactions would move if this version were live and re-evaluated."""
    if staff is None:
        return Response(status_code=401)
    try:
        moves = await rule_actions.preview(session, actions.EngineLink.of(request), version=version)
    except DomainError as exc:
        return _fragment(request, "_rules_preview.html", problem=exc.detail)
    return _fragment(request, "_rules_preview.html", moves=moves, version=version)


@router.post("/supervisor/rules/reevaluate", response_class=HTMLResponse)
async def reevaluate_fragment(request: Request, staff: ConsoleStaff, session: DbSession) -> Response:
    """htmx: re-route waiting work by the live version now (audited); says how many moved."""
    if staff is None:
        return Response(status_code=401)
    try:
        moved = await rule_actions.reevaluate(session, actions.EngineLink.of(request), actor=staff)
    except (DomainError, StillProcessing) as exc:
        return _fragment(request, "_rules_preview.html", problem=exc.detail)
    return _fragment(request, "_rules_preview.html", moved=moved)
