"""``/supervisor/queues``: each queue's offer policy and chat wait threshold, changed by plain forms
per queue (keyboard: Tab to the field, arrows or digits, Enter). Calls ``workforce.queues``'
``set_offer_policy`` and ``set_chat_wait_threshold`` as the JSON API does, so both are audited."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from console.context import console_context, supervisor_or_login
from console.thresholds import ThresholdsWrite, all_thresholds, set_thresholds
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import Invalid
from switchboard.templating import templates
from workforce.models import OfferPolicy
from workforce.queues import (
    CHAT_WAIT_MAX_S,
    CHAT_WAIT_MIN_S,
    POLICY_LABELS,
    list_queues,
    set_chat_wait_threshold,
    set_offer_policy,
)

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/supervisor/queues", response_class=HTMLResponse)
async def queues_page(
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    saved: str = "",
    what: str = "",
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    queues = await list_queues(session)
    colours = await all_thresholds(session)
    # what= names the form that saved (the edit page of console.admin saves the queue's settings)
    label = {
        "chat-wait": "chat wait threshold",
        "settings": "settings",
        "thresholds": "wallboard colours",
    }.get(what, "offer policy")
    notice = next((f"{q.display_name}: {label} saved." for q in queues if str(q.id) == saved), None)
    context = await console_context(
        request, staff, settings, session, queues=queues, labels=POLICY_LABELS, notice=notice, colours=colours
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/queues.html", context)


@router.post("/supervisor/queues/{queue_id}", response_class=HTMLResponse)
async def save_queue(
    queue_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    session: DbSession,
) -> Response:
    staff = supervisor_or_login(request, user)  # before the form: a signed-out caller gets 401
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    try:
        offer_policy = OfferPolicy(str((await request.form()).get("offer_policy", "")))
    except ValueError:
        raise Invalid("Choose one of the offer policies listed", field="offer_policy") from None
    await set_offer_policy(
        session, request.app.state.redis_client, queue_id=queue_id, policy=offer_policy, actor=staff
    )
    return RedirectResponse(f"/supervisor/queues?saved={queue_id}#queue-{queue_id}", status_code=303)


@router.post("/supervisor/queues/{queue_id}/chat-wait", response_class=HTMLResponse)
async def save_chat_wait(
    queue_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    session: DbSession,
) -> Response:
    """Minutes on the page (people think of waits in minutes), seconds in the API and the queue."""
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    raw = str((await request.form()).get("chat_wait_minutes", "")).strip()
    lowest, highest = CHAT_WAIT_MIN_S / 60, CHAT_WAIT_MAX_S // 60
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not lowest <= minutes <= highest:
        raise Invalid(f"Minutes from {lowest:g} to {highest}", field="chat_wait_minutes")
    await set_chat_wait_threshold(session, queue_id=queue_id, seconds=round(minutes * 60), actor=staff)
    await session.commit()
    return RedirectResponse(
        f"/supervisor/queues?saved={queue_id}&what=chat-wait#queue-{queue_id}", status_code=303
    )


@router.post("/supervisor/queues/{queue_id}/thresholds", response_class=HTMLResponse)
async def save_thresholds(
    queue_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    session: DbSession,
) -> Response:
    """The wallboard's colours for the queue (console.thresholds; the same as the JSON API)."""
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    try:
        data = ThresholdsWrite.model_validate({name: form.get(name) for name in ThresholdsWrite.model_fields})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Invalid(
            f"{first['loc'][0]}: {first['msg']}",
            field=str(first["loc"][0]),
            errors=[{"field": str(e["loc"][0]), "message": e["msg"]} for e in exc.errors()],
        ) from None
    await set_thresholds(session, queue=str(queue_id), data=data, actor=staff)
    await session.commit()
    return RedirectResponse(
        f"/supervisor/queues?saved={queue_id}&what=thresholds#queue-{queue_id}", status_code=303
    )
