"""JSON routes (thin: parse, authorise, call service, shape the response)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import redis
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from customers import service
from customers.access import CustomerAccess
from customers.jobs import recompute_all_tiers_job
from customers.merge import merge_customers
from customers.models import ValueTier
from customers.schemas import (
    CustomerCreate,
    CustomerMerge,
    CustomerPage,
    CustomerRead,
    CustomerSummary,
    CustomerUpdate,
    IdentityCreate,
    IdentityRead,
    TierPolicyRead,
    TierPolicyUpdated,
)
from customers.tier_policy import TierPolicy
from switchboard import jobs
from switchboard.audit import CUSTOMER_READ, record_audit
from switchboard.bounds import INT64_MAX
from switchboard.deps import AppSettings, CurrentUser, DbSession, RequireAgent, RequireSupervisor
from switchboard.redis import RedisHandle

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/customers", tags=["customers"])


def _enqueue_recompute(handle: RedisHandle) -> str:
    connection = handle.sync_client()
    try:
        return jobs.enqueue(connection, recompute_all_tiers_job).id
    finally:
        connection.close()


# Tier-policy routes come before /{customer_id} so "tier-policy" is never read as an id.
@router.get("/tier-policy", response_model=TierPolicyRead)
async def read_tier_policy(session: DbSession, _user: RequireAgent) -> TierPolicyRead:
    live = await service.get_live_policy(session)
    return TierPolicyRead(
        version=live.version, policy=live.policy, created_at=live.created_at, created_by_id=live.created_by_id
    )


@router.put("/tier-policy", response_model=TierPolicyUpdated)
async def replace_tier_policy(
    body: TierPolicy, request: Request, session: DbSession, user: RequireSupervisor
) -> TierPolicyUpdated:
    """Store a new policy version (audited) and queue the re-tiering of every customer."""
    live = await service.set_tier_policy(session, policy=body, actor_id=user.id)
    await session.commit()
    try:
        job_id: str | None = await run_in_threadpool(_enqueue_recompute, request.app.state.redis)
    except redis.RedisError:
        # The policy is saved either way; the nightly/next recompute picks it up.
        log.exception("could not queue the tier recompute for policy v%s", live.version)
        job_id = None
    return TierPolicyUpdated(
        version=live.version,
        policy=live.policy,
        created_at=live.created_at,
        created_by_id=live.created_by_id,
        recompute_job_id=job_id,
    )


@router.get("", response_model=CustomerPage)
async def list_customers(
    session: DbSession,
    settings: AppSettings,
    user: RequireSupervisor,
    name: Annotated[str | None, Query(max_length=160, description="Name substring")] = None,
    identity: Annotated[
        str | None, Query(max_length=254, description="Phone (any format), email or chat/app id")
    ] = None,
    tier: ValueTier | None = None,
    segment: Annotated[str | None, Query(max_length=40)] = None,
    include_merged: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> CustomerPage:
    rows, total = await service.list_customers(
        session,
        name=name,
        identity=identity,
        tier=tier,
        segment=segment,
        include_merged=include_merged,
        default_region=settings.default_phone_region,
        limit=limit,
        offset=offset,
    )
    page = CustomerPage(
        items=[CustomerSummary.model_validate(c) for c in rows], total=total, limit=limit, offset=offset
    )
    # Every customer a search shows is a read outside held work: one audit row each.
    for customer in rows:
        record_audit(
            session,
            actor_id=user.id,
            action=CUSTOMER_READ,
            entity_type="customer",
            entity_id=customer.id,
            data={"basis": "supervisor", "what": "search"},
        )
    await session.commit()
    return page


@router.post("", response_model=CustomerRead, status_code=status.HTTP_201_CREATED)
async def create_customer(
    body: CustomerCreate, session: DbSession, settings: AppSettings, user: RequireSupervisor
) -> CustomerRead:
    customer = await service.create_customer(
        session, data=body, actor=user, default_region=settings.default_phone_region
    )
    await session.commit()
    return CustomerRead.model_validate(await service.get_customer(session, customer.id))


@router.get("/{customer_id}", response_model=CustomerRead)
async def read_customer(
    customer_id: uuid.UUID, session: DbSession, user: CurrentUser, access: CustomerAccess
) -> CustomerRead:
    await access(session, user, customer_id)
    return CustomerRead.model_validate(await service.get_customer(session, customer_id))


@router.patch("/{customer_id}", response_model=CustomerRead)
async def update_customer(
    customer_id: uuid.UUID, body: CustomerUpdate, session: DbSession, user: RequireSupervisor
) -> CustomerRead:
    await service.update_customer(session, customer_id=customer_id, changes=body, actor=user)
    await session.commit()
    return CustomerRead.model_validate(await service.get_customer(session, customer_id))


@router.post("/{customer_id}/identities", response_model=IdentityRead, status_code=status.HTTP_201_CREATED)
async def link_identity(
    customer_id: uuid.UUID,
    body: IdentityCreate,
    response: Response,
    session: DbSession,
    settings: AppSettings,
    user: RequireAgent,
    access: CustomerAccess,
) -> IdentityRead:
    """Link a phone/email/chat/app id; 200 if it was already this customer's, 409 if someone else's."""
    await access(session, user, customer_id)
    identity, created = await service.link_identity(
        session,
        customer_id=customer_id,
        kind=body.kind,
        raw_value=body.value,
        verified=body.verified,
        default_region=settings.default_phone_region,
        actor=user,
    )
    await session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return IdentityRead.model_validate(identity)


@router.post("/{customer_id}/merge", response_model=CustomerRead)
async def merge_customer(
    customer_id: uuid.UUID, body: CustomerMerge, request: Request, session: DbSession, user: RequireSupervisor
) -> CustomerRead:
    """Fold ``source_customer_id`` into this customer (one transaction; history is kept)."""
    await merge_customers(
        session,
        target_id=customer_id,
        source_id=body.source_customer_id,
        actor_id=user.id,
        movers=request.app.state.customer_movers,
    )
    await session.commit()
    return CustomerRead.model_validate(await service.get_customer(session, customer_id))
