"""Customer profile service: identity resolution, linking, merging, value tiers, consent."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import String, bindparam, cast, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import normalise_identity
from customers.models import Customer, Identity, IdentityKind, TierPolicyVersion, ValueTier
from customers.schemas import CustomerCreate, CustomerUpdate
from customers.tier_policy import DEFAULT_TIER_POLICY, TierPolicy, TierResult, compute_tier
from customers.timeline import append_event
from customers.timeline_models import ActorType
from switchboard.audit import record_audit
from switchboard.auth.models import Role, User
from switchboard.db import new_id, utcnow
from switchboard.errors import Conflict, DomainError, Invalid, NotFound
from switchboard.fastsql import FastStatement
from workforce.models import Agent


async def find_identity(session: AsyncSession, *, kind: IdentityKind, value: str) -> Identity | None:
    """``value`` must already be normalised."""
    return await session.scalar(select(Identity).where(Identity.kind == kind, Identity.value == value))


async def resolve_or_create_customer(
    session: AsyncSession,
    *,
    kind: IdentityKind,
    raw_value: str,
    default_region: str,
    display_name: str | None = None,
    language: str | None = None,
    field: str = "identity.value",
    now: datetime | None = None,
) -> tuple[Customer, Identity, bool]:
    """The customer behind an identity, creating both if unknown. Returns (customer, identity, created).
    ``now``: the creating request's clock (the interaction's ``created_at``), stamped on new rows.
    (Creating an interaction plans the same rows in ``interactions.create_plan``.)
    """
    value = normalise_identity(kind, raw_value, default_region=default_region, field=field)
    now = now or utcnow()
    customer, identity, created = await resolve_or_insert_customer(
        session,
        kind=kind,
        value=value,
        new_customer={
            "id": new_id(),
            "display_name": display_name or placeholder_name(kind, value),
            "language": language or "en",
            "created_at": now,
            "updated_at": now,
        },
        new_identity={"id": new_id(), "kind": kind, "value": value, "created_at": now},
    )
    if created:
        append_event(
            session,
            customer_id=customer.id,
            kind="customer_created",
            actor_type=ActorType.SYSTEM,
            data=customer_created_data(kind, value),
            at=now,
        )
    return customer, identity, created


async def resolve_or_insert_customer(
    session: AsyncSession,
    *,
    kind: IdentityKind,
    value: str,
    new_customer: dict[str, Any],
    new_identity: dict[str, Any],
) -> tuple[Customer, Identity, bool]:
    """The customer holding the (normalised) identity, else ``new_customer`` and ``new_identity``
    inserted (the identity's ``customer_id`` is the new customer's). Returns (customer, identity,
    created); the caller writes the ``customer_created`` event.

    Safe under concurrency: the unique (kind, value) index decides the race inside a SAVEPOINT,
    and the loser reads the winner's row. A merged customer resolves to the surviving profile.
    """
    # The owner through its identity in one query (its identities come with it, selectin): the
    # hot path of every inbound contact from a known customer.
    customer = await session.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.kind == kind, Identity.value == value)
    )
    if customer is not None:
        identity = next((i for i in customer.identities if i.kind == kind and i.value == value), None)
        if identity is None:  # the session's copy of the collection predates this identity
            identity = await find_identity(session, kind=kind, value=value)
            assert identity is not None
    else:
        # Ids up front so both rows go in one flush (customers before identities, by the FK).
        created = Customer(**new_customer)
        try:
            async with session.begin_nested():
                session.add(created)
                identity = Identity(**{**new_identity, "customer_id": created.id})
                session.add(identity)
                await session.flush()
        except IntegrityError:
            found = await find_identity(session, kind=kind, value=value)
            if found is None:  # pragma: no cover - the winner's row must exist after the violation
                raise
            identity = found
            customer = await session.get(Customer, identity.customer_id)
        else:
            return created, identity, True
    assert customer is not None
    while customer.merged_into_id is not None:  # identities are re-pointed on merge; belt and braces
        customer = await session.get(Customer, customer.merged_into_id)
        assert customer is not None
    return customer, identity, False


def customer_created_data(kind: IdentityKind, value: str) -> dict[str, Any]:
    """The ``customer_created`` event's data: the identity the customer was created for."""
    return {"identity": {"kind": kind.value, "value": value}}


MERGED_IDS_KEY = "customers.merged_ids"
_MERGED_INTO = FastStatement(
    select(Customer.__table__.c.id).where(Customer.__table__.c.merged_into_id == bindparam("into"))
)


async def merged_customer_ids(session: AsyncSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer plus every profile merged into it (transitively).

    Timeline events are never rewritten: a merged profile's events keep their customer_id, and
    the survivor's cross-channel history is the union over this set.
    """
    # Remembered for the session: one desktop render asks up to four times (timeline, history,
    # thread, live 360) for the same customer, and merges are rare (a merge forgets it).
    known: dict[uuid.UUID, list[uuid.UUID]] = session.info.setdefault(MERGED_IDS_KEY, {})
    if customer_id in known:
        return list(known[customer_id])
    ids = [customer_id]
    frontier = [customer_id]
    while frontier:  # almost always one profile, one prebuilt read (a desktop tab asks per contact)
        found = [row.id for merged in frontier for row in await _MERGED_INTO.rows(session, {"into": merged})]
        frontier = [r for r in found if r not in ids]
        ids.extend(frontier)
    known[customer_id] = ids
    return list(ids)


def forget_merged_ids(session: AsyncSession) -> None:
    """After a merge in this session: the next ``merged_customer_ids`` reads again."""
    session.info.pop(MERGED_IDS_KEY, None)


def placeholder_name(kind: IdentityKind, value: str) -> str:
    if kind is IdentityKind.PHONE:
        return f"Caller {value[-4:]}"
    if kind is IdentityKind.EMAIL:
        return value.split("@", 1)[0]
    return "Web visitor"


def actor_type_for(user: User | None) -> ActorType:
    if user is None:
        return ActorType.SYSTEM
    if user.role is Role.AGENT:
        return ActorType.AGENT
    if user.role is Role.CUSTOMER:
        return ActorType.CUSTOMER
    return ActorType.SUPERVISOR


# --- value-tier policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveTierPolicy:
    """The policy in force and the version number recorded in every breakdown (0 = built-in)."""

    version: int
    policy: TierPolicy
    created_at: datetime | None = None
    created_by_id: uuid.UUID | None = None


DEFAULT_LIVE_POLICY = LiveTierPolicy(version=0, policy=DEFAULT_TIER_POLICY)


async def get_live_policy(session: AsyncSession) -> LiveTierPolicy:
    """The newest stored version, or the documented default when none was ever stored."""
    row = await session.scalar(select(TierPolicyVersion).order_by(TierPolicyVersion.version.desc()).limit(1))
    if row is None:
        return DEFAULT_LIVE_POLICY
    return LiveTierPolicy(
        version=row.version,
        policy=TierPolicy.model_validate(row.policy),
        created_at=row.created_at,
        created_by_id=row.created_by_id,
    )


async def set_tier_policy(
    session: AsyncSession, *, policy: TierPolicy, actor_id: uuid.UUID | None
) -> LiveTierPolicy:
    """Store ``policy`` as the next version (audited). Customers are re-tiered by the caller/job."""
    previous = await get_live_policy(session)
    version = previous.version + 1
    row = TierPolicyVersion(
        version=version, policy=policy.model_dump(mode="json"), created_at=utcnow(), created_by_id=actor_id
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        # Two supervisors saving at once both computed the same next version; the unique index decides.
        raise Conflict("The tier policy was changed concurrently; reload and try again") from exc
    record_audit(
        session,
        actor_id=actor_id,
        action="tier_policy.updated",
        entity_type="tier_policy",
        entity_id=str(version),
        data={"previous_version": previous.version, "policy": row.policy},
        before=previous.policy.model_dump(mode="json"),
        after=row.policy,
    )
    return LiveTierPolicy(version=version, policy=policy, created_at=row.created_at, created_by_id=actor_id)


@dataclass(frozen=True)
class TierOutcome:
    result: TierResult
    changed: bool  # stored tier or breakdown changed
    tier_changed: bool
    previous_tier: ValueTier | None


def _today() -> date:
    return utcnow().date()


async def recompute_tier(
    session: AsyncSession,
    customer: Customer,
    policy: LiveTierPolicy | TierPolicy | None = None,
    *,
    today: date | None = None,
    reason: str = "recompute",
) -> TierOutcome:
    """Re-score one customer. Writes only when the result differs, so repeating it is a no-op;
    a ``tier_changed`` timeline event is appended only when the tier itself moves."""
    if customer.id is None or customer in session.new:
        # A freshly added row (e.g. from a seed script): give it its id and column defaults first.
        session.add(customer)
        await session.flush()
    if policy is None:
        policy = await get_live_policy(session)
    live = policy if isinstance(policy, LiveTierPolicy) else LiveTierPolicy(version=0, policy=policy)
    result = compute_tier(customer, live.policy, today=today or _today(), policy_version=live.version)
    breakdown = result.as_json()
    previous_tier = customer.value_tier
    tier_changed = previous_tier != result.tier
    changed = tier_changed or customer.tier_computed_at is None or customer.tier_breakdown != breakdown
    if changed:
        customer.value_tier = result.tier
        customer.tier_breakdown = breakdown
        customer.tier_computed_at = utcnow()
    if tier_changed:
        append_event(
            session,
            customer_id=customer.id,
            kind="tier_changed",
            actor_type=ActorType.SYSTEM,
            data={
                "from": previous_tier.value if previous_tier else None,
                "to": result.tier.value,
                "points_total": result.points_total,
                "policy_version": live.version,
                "reason": reason,
            },
        )
    return TierOutcome(result=result, changed=changed, tier_changed=tier_changed, previous_tier=previous_tier)


async def recompute_all_tiers(
    session: AsyncSession,
    *,
    batch_size: int = 500,
    today: date | None = None,
    commit: bool = True,
    pause_seconds: float = 0.0,
) -> dict[str, int]:
    """Re-score every live (not merged) customer under the live policy, in keyset batches.

    Idempotent: an unchanged result writes nothing and appends no event. With ``commit`` each
    batch commits on its own, so a long run never holds one huge transaction and a crash
    midway keeps the batches already done (running again finishes the rest). A batch's rows are
    locked while it is re-scored (PostgreSQL; SQLite serialises writers anyway), so two runs at
    once (a retried job beside a new one) cannot both move a tier and both append its event.
    """
    await session.flush()  # the session does not autoflush: include rows the caller just added
    live = await get_live_policy(session)
    day = today or _today()
    counts = {"scanned": 0, "changed": 0, "tier_changed": 0, "policy_version": live.version}
    last_id: uuid.UUID | None = None
    while True:
        query = (
            select(Customer)
            .where(Customer.merged_into_id.is_(None))
            .order_by(Customer.id)
            .limit(batch_size)
            .with_for_update()
            # The row as the lock returns it (a concurrent run may just have re-scored it).
            .execution_options(populate_existing=True)
        )
        if last_id is not None:
            query = query.where(Customer.id > last_id)
        batch = list((await session.scalars(query)).all())
        if not batch:
            break
        for customer in batch:
            outcome = await recompute_tier(session, customer, live, today=day, reason="policy_recompute")
            counts["scanned"] += 1
            counts["changed"] += outcome.changed
            counts["tier_changed"] += outcome.tier_changed
        last_id = batch[-1].id
        if commit:
            await session.commit()
        else:
            await session.flush()
        if len(batch) < batch_size:
            break
        if pause_seconds:
            await asyncio.sleep(pause_seconds)
    return counts


# --- reading ----------------------------------------------------------------------------------


async def get_customer(
    session: AsyncSession, customer_id: uuid.UUID, *, field: str | None = None
) -> Customer:
    # populate_existing: identities may have been re-pointed by a bulk UPDATE in this session.
    customer = await session.scalar(
        select(Customer).where(Customer.id == customer_id).execution_options(populate_existing=True)
    )
    if customer is None:
        raise NotFound(f"Customer {customer_id} not found", field=field)
    return customer


def _identity_candidates(raw: str, *, default_region: str) -> set[str]:
    """What a typed-in identity may be stored as: itself, as a phone number, as an email."""
    value = raw.strip()
    candidates = {value}
    for kind in (IdentityKind.PHONE, IdentityKind.EMAIL):
        with contextlib.suppress(DomainError):  # not every search text is a phone or an email
            candidates.add(normalise_identity(kind, value, default_region=default_region))
    return candidates


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_customers(
    session: AsyncSession,
    *,
    name: str | None = None,
    identity: str | None = None,
    tier: ValueTier | None = None,
    segment: str | None = None,
    include_merged: bool = False,
    default_region: str = "GB",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Customer], int]:
    """Search by name substring (case-insensitive), exact identity (any written form), tier, segment."""
    conditions: list[Any] = []
    if not include_merged:
        conditions.append(Customer.merged_into_id.is_(None))
    if name:
        pattern = f"%{_like_escape(name.strip().lower())}%"
        conditions.append(func.lower(Customer.display_name).like(pattern, escape="\\"))
    if identity:
        values = _identity_candidates(identity, default_region=default_region)
        conditions.append(Customer.id.in_(select(Identity.customer_id).where(Identity.value.in_(values))))
    if tier is not None:
        conditions.append(Customer.value_tier == tier)
    if segment:
        seg = segment.strip().lower()
        if session.get_bind().dialect.name == "postgresql":
            # The column is JSON().with_variant(JSONB): coerce so .contains() is JSONB @> (GIN-able).
            conditions.append(type_coerce(Customer.segments, JSONB).contains([seg]))
        else:
            # Segments are slugs ([a-z0-9-]), so the quoted token matches exactly one element.
            conditions.append(cast(Customer.segments, String).like(f'%"{_like_escape(seg)}"%', escape="\\"))
    total = await session.scalar(select(func.count()).select_from(Customer).where(*conditions)) or 0
    rows = await session.scalars(
        select(Customer)
        .where(*conditions)
        .order_by(Customer.display_name, Customer.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), int(total)


# --- writing: profile -------------------------------------------------------------------------

# The inputs of the value-tier policy: changing any of them re-scores the customer.
TIER_INPUT_FIELDS = frozenset(
    {"relationship_balance", "products_held", "annual_profit", "cost_to_serve", "customer_since"}
)
# Audit these with their before/after values (consent and routing-relevant); others by name only (PII).
_AUDIT_VALUE_FIELDS = frozenset(
    {
        "segments",
        "relationship_manager_id",
        "preferred_channel",
        "do_not_contact",
        "marketing_consent",
        "quiet_hours_start",
        "quiet_hours_end",
        "timezone",
        "language",
    }
)


def _check_timezone(value: str, *, field: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(
            f"Unknown time zone {value!r} (use an IANA name, e.g. Europe/London)", field=field
        ) from exc


async def _check_agent(session: AsyncSession, agent_id: uuid.UUID | None, *, field: str) -> None:
    if agent_id is not None and await session.get(Agent, agent_id) is None:
        raise Invalid(f"Relationship manager {agent_id} is not an existing agent", field=field)


def _check_quiet_hours(start: time | None, end: time | None, *, prefix: str) -> None:
    if (start is None) != (end is None):
        missing = "quiet_hours_end" if end is None else "quiet_hours_start"
        raise Invalid("Quiet hours need both a start and an end (or neither)", field=f"{prefix}{missing}")
    if start is not None and start == end:
        raise Invalid("Quiet hours start and end must differ", field=f"{prefix}quiet_hours_end")


def _check_not_future(value: date | None, *, field: str) -> None:
    if value is not None and value > _today():
        raise Invalid("Date cannot be in the future", field=field)


def dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return value


async def _validate_profile(session: AsyncSession, values: dict[str, Any], *, prefix: str) -> None:
    """Cross-field and reference checks pydantic cannot do (zoneinfo, agents table, today)."""
    if "timezone" in values:
        _check_timezone(values["timezone"], field=f"{prefix}timezone")
    if "relationship_manager_id" in values:
        await _check_agent(
            session, values["relationship_manager_id"], field=f"{prefix}relationship_manager_id"
        )
    for name in ("customer_since", "date_of_birth"):
        if name in values:
            _check_not_future(values[name], field=f"{prefix}{name}")


async def _identity_owner_conflict(
    session: AsyncSession, *, kind: IdentityKind, value: str, customer_id: uuid.UUID | None, field: str
) -> Identity | None:
    """The existing identity if it is already this customer's; Conflict if it is someone else's."""
    existing = await find_identity(session, kind=kind, value=value)
    if existing is None or existing.customer_id == customer_id:
        return existing
    raise Conflict(
        f"This {kind.value} identity already belongs to customer {existing.customer_id}",
        field=field,
        existing_customer_id=str(existing.customer_id),
    )


async def create_customer(
    session: AsyncSession, *, data: CustomerCreate, actor: User | None, default_region: str
) -> Customer:
    """A new profile with at least one identity; every identity must be free."""
    await _validate_profile(session, data.model_dump(), prefix="body.")
    _check_quiet_hours(data.quiet_hours_start, data.quiet_hours_end, prefix="body.")
    identities: dict[tuple[IdentityKind, str], bool] = {}
    for i, item in enumerate(data.identities):
        field = f"body.identities.{i}.value"
        value = normalise_identity(item.kind, item.value, default_region=default_region, field=field)
        await _identity_owner_conflict(session, kind=item.kind, value=value, customer_id=None, field=field)
        # The same identity written twice ("07911..." and "+447911...") is one identity.
        identities[(item.kind, value)] = identities.get((item.kind, value), False) or item.verified

    profile = data.model_dump(exclude={"identities"})
    profile["segments"] = dedupe(profile["segments"])
    customer = Customer(**profile)
    try:
        async with session.begin_nested():
            session.add(customer)
            await session.flush()
            for (kind, value), verified in identities.items():
                session.add(Identity(customer_id=customer.id, kind=kind, value=value, verified=verified))
            await session.flush()
    except IntegrityError as exc:
        # Lost a race with a concurrent create/link of the same identity.
        raise Conflict("One of these identities was just linked to another customer; retry") from exc
    await session.refresh(customer, ["identities"])

    listed = [{"kind": k.value, "value": v} for (k, v) in identities]
    append_event(
        session,
        customer_id=customer.id,
        kind="customer_created",
        actor_type=actor_type_for(actor),
        actor_id=actor.id if actor else None,
        data={"identities": listed},
    )
    await recompute_tier(session, customer, reason="customer_created")
    record_audit(
        session,
        actor_id=actor.id if actor else None,
        action="customer.created",
        entity_type="customer",
        entity_id=customer.id,
        data={"identities": listed},
    )
    await session.flush()
    return customer


async def update_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    changes: CustomerUpdate | dict[str, Any],
    actor: User | None,
) -> Customer:
    """Apply a partial update; re-score the tier if a policy input changed.

    Appends one ``profile_updated`` event naming the fields that actually changed (none: no event).
    """
    if isinstance(changes, dict):
        changes = CustomerUpdate.model_validate(changes)
    requested = changes.changes()
    customer = await get_customer(session, customer_id)
    if customer.merged_into_id is not None:
        raise Conflict(f"Customer {customer.id} was merged into {customer.merged_into_id}; edit that one")
    await _validate_profile(session, requested, prefix="body.")
    if "segments" in requested:
        requested["segments"] = dedupe(requested["segments"])
    # Quiet hours are checked on the resulting pair, so a PATCH may move just one end.
    _check_quiet_hours(
        requested.get("quiet_hours_start", customer.quiet_hours_start),
        requested.get("quiet_hours_end", customer.quiet_hours_end),
        prefix="body.",
    )

    changed: dict[str, tuple[Any, Any]] = {}
    for name, value in requested.items():
        old = getattr(customer, name)
        if old != value:
            changed[name] = (old, value)
            setattr(customer, name, value)
    if not changed:
        return customer

    fields = sorted(changed)
    actor_id = actor.id if actor else None
    append_event(
        session,
        customer_id=customer.id,
        kind="profile_updated",
        actor_type=actor_type_for(actor),
        actor_id=actor_id,
        data={"fields": fields},
    )
    record_audit(
        session,
        actor_id=actor_id,
        action="customer.updated",
        entity_type="customer",
        entity_id=customer.id,
        data={
            "fields": fields,
            "values": {
                name: {"from": _jsonable(old), "to": _jsonable(new)}
                for name, (old, new) in changed.items()
                if name in _AUDIT_VALUE_FIELDS
            },
        },
    )
    if TIER_INPUT_FIELDS.intersection(changed):
        await recompute_tier(session, customer, reason="profile_updated")
    await session.flush()
    return customer


# --- writing: identities and merges -----------------------------------------------------------


async def link_identity(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    kind: IdentityKind,
    raw_value: str,
    default_region: str,
    verified: bool = False,
    actor: User | None = None,
    field: str = "body.value",
) -> tuple[Identity, bool]:
    """Attach an identity to a customer. Returns (identity, created); already-linked is a no-op.

    An identity owned by another customer is a 409 naming that customer: the fix is a merge,
    which a supervisor decides, never a silent re-point.
    """
    customer = await get_customer(session, customer_id)
    if customer.merged_into_id is not None:
        raise Conflict(f"Customer {customer.id} was merged into {customer.merged_into_id}; link there")
    value = normalise_identity(kind, raw_value, default_region=default_region, field=field)
    existing = await _identity_owner_conflict(
        session, kind=kind, value=value, customer_id=customer.id, field=field
    )
    if existing is not None:
        return existing, False
    identity = Identity(customer_id=customer.id, kind=kind, value=value, verified=verified)
    try:
        async with session.begin_nested():
            session.add(identity)
            await session.flush()
    except IntegrityError:
        # A concurrent request linked it first; report whoever won.
        await _identity_owner_conflict(session, kind=kind, value=value, customer_id=customer.id, field=field)
        raise
    append_event(
        session,
        customer_id=customer.id,
        kind="identity_linked",
        actor_type=actor_type_for(actor),
        actor_id=actor.id if actor else None,
        data={"kind": kind.value, "value": value, "verified": verified},
    )
    await session.refresh(customer, ["identities"])
    return identity, True
