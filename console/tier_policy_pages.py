"""``/supervisor/tier-policy``: the value-tier policy editor (issue #11 item 4). The points rules
(unit, points per unit, cap, floor) of each input and the tier thresholds as one form; as the
supervisor types, htmx posts the draft to ``/supervisor/tier-policy/preview``, which validates it
(errors at their field) and recomputes the worked examples under it beside the live policy, before
anything is saved. Saving stores a new policy version through ``customers.service.set_tier_policy``
(audited before -> after, as ``PUT /api/customers/tier-policy`` does) and queues the re-tiering job;
every later computation reads the newest version, so nothing needs a restart."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import console_context, supervisor_or_login
from customers import service
from customers.jobs import recompute_all_tiers_job
from customers.models import Customer
from customers.tier_policy import POLICY_INPUTS, TierInputs, TierPolicy, compute_tier
from switchboard import jobs
from switchboard.db import utcnow
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.redis import RedisHandle
from switchboard.templating import templates

log = logging.getLogger(__name__)
router = APIRouter(tags=["pages"], include_in_schema=False)

RULE_PARTS = ("unit", "points_per_unit", "cap", "floor")
THRESHOLDS = ("platinum", "gold", "silver")
LABELS = {
    "balance": "Relationship balance (deposits + assets under management)",
    "products": "Products held",
    "net_value": "Net annual value (profit minus cost to serve)",
    "tenure": "Tenure (full years)",
}
REAL_EXAMPLES = 4


@dataclass(frozen=True)
class Example:
    name: str
    inputs: TierInputs
    real: bool = False


# Invented customers that sit either side of the default thresholds: what a change moves.
SAMPLES = (
    Example("Sample: young saver", TierInputs(Decimal("8000"), 1, Decimal("150"), Decimal("90"), None)),
    Example(
        "Sample: family with a mortgage",
        TierInputs(Decimal("85000"), 4, Decimal("1800"), Decimal("400"), utcnow().date().replace(year=2016)),
    ),
    Example(
        "Sample: business owner",
        TierInputs(
            Decimal("420000"), 6, Decimal("9000"), Decimal("2500"), utcnow().date().replace(year=2009)
        ),
    ),
    Example(
        "Sample: costly to serve", TierInputs(Decimal("30000"), 2, Decimal("200"), Decimal("6200"), None)
    ),
)


def form_values(policy: TierPolicy) -> dict[str, str]:
    values = {
        f"{name}.{part}": str(getattr(policy.rule(name), part))
        for name in POLICY_INPUTS
        for part in RULE_PARTS
    }
    values |= {f"thresholds.{t}": str(getattr(policy.thresholds, t)) for t in THRESHOLDS}
    return values


def parse(form: dict[str, str]) -> tuple[TierPolicy | None, dict[str, str]]:
    """The posted form as a policy, or the errors keyed by form field (``balance.cap``)."""
    data: dict[str, Any] = {
        name: {p: form.get(f"{name}.{p}", "").strip() for p in RULE_PARTS} for name in POLICY_INPUTS
    }
    data["thresholds"] = {t: form.get(f"thresholds.{t}", "").strip() for t in THRESHOLDS}
    try:
        return TierPolicy.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"][:2])
            errors.setdefault(key, str(err["msg"]).removeprefix("Value error, "))
        return None, errors


async def examples(session: AsyncSession) -> list[Example]:
    """The samples and a few real customers (the largest balances: where tiers matter most)."""
    rows = await session.scalars(
        select(Customer)
        .where(Customer.merged_into_id.is_(None))
        .order_by(Customer.relationship_balance.desc(), Customer.display_name)
        .limit(REAL_EXAMPLES)
    )
    return [*SAMPLES, *(Example(c.display_name, TierInputs.of(c), real=True) for c in rows)]


def worked(cases: list[Example], live: TierPolicy, draft: TierPolicy | None) -> list[dict[str, Any]]:
    today = utcnow().date()
    out = []
    for case in cases:
        now_result = compute_tier(case.inputs, live, today=today)
        draft_result = compute_tier(case.inputs, draft, today=today) if draft is not None else None
        out.append({"case": case, "live": now_result, "draft": draft_result})
    return out


async def _page(
    request: Request, staff: Any, settings: Any, session: AsyncSession, *, values: dict[str, str],
    errors: dict[str, str], draft: TierPolicy | None, notice: str | None = None, code: int = 200,
) -> Response:  # fmt: skip
    live = await service.get_live_policy(session)
    context = await console_context(
        request, staff, settings, session,
        live=live, values=values, errors=errors, labels=LABELS, inputs=POLICY_INPUTS, parts=RULE_PARTS,
        thresholds=THRESHOLDS, rows=worked(await examples(session), live.policy, draft), notice=notice,
    )  # fmt: skip
    await session.commit()
    return templates.TemplateResponse(request, "console/tier_policy.html", context, status_code=code)


@router.get("/supervisor/tier-policy", response_class=HTMLResponse)
async def tier_policy_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession, saved: int = 0
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    live = await service.get_live_policy(session)
    notice = f"Version {saved} saved; customers are being re-tiered." if saved else None
    return await _page(
        request,
        staff,
        settings,
        session,
        values=form_values(live.policy),
        errors={},
        draft=live.policy,
        notice=notice,
    )


@router.post("/supervisor/tier-policy/preview", response_class=HTMLResponse)
async def preview(request: Request, user: OptionalUser, session: DbSession) -> Response:
    """The worked examples under the draft (htmx swaps ``#tier-examples``); nothing is saved."""
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items()}
    draft, errors = parse(form)
    live = await service.get_live_policy(session)
    rows = worked(await examples(session), live.policy, draft)
    await session.commit()
    return templates.TemplateResponse(
        request, "console/_tier_examples.html", {"rows": rows, "errors": errors, "oob_errors": True}
    )


def _enqueue(handle: RedisHandle) -> str:
    connection = handle.sync_client()
    try:
        return jobs.enqueue(connection, recompute_all_tiers_job).id
    finally:
        connection.close()


@router.post("/supervisor/tier-policy", response_class=HTMLResponse)
async def save(request: Request, user: OptionalUser, settings: AppSettings, session: DbSession) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items()}
    draft, errors = parse(form)
    if draft is None:
        return await _page(
            request, staff, settings, session, values=form, errors=errors, draft=None, code=422
        )
    live = await service.set_tier_policy(session, policy=draft, actor_id=staff.id)
    await session.commit()
    try:
        await run_in_threadpool(_enqueue, request.app.state.redis)
    except redis.RedisError:  # saved either way: the next recompute (or computation) uses it
        log.exception("could not queue the tier recompute for policy v%s", live.version)
    return RedirectResponse(f"/supervisor/tier-policy?saved={live.version}", status_code=303)
