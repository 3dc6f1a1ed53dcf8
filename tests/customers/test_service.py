"""Customer service against real databases: resolution, linking, merging, tiers, profile updates."""

from __future__ import annotations

import uuid
from datetime import date, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from customers.merge import merge_customers
from customers.models import Customer, Identity, IdentityKind, ValueTier
from customers.schemas import CustomerCreate, CustomerUpdate
from customers.service import (
    create_customer,
    get_live_policy,
    link_identity,
    list_customers,
    merged_customer_ids,
    recompute_all_tiers,
    recompute_tier,
    resolve_or_create_customer,
    set_tier_policy,
    update_customer,
)
from customers.tier_policy import DEFAULT_TIER_POLICY, TierThresholds
from interactions.customer_merge import MOVERS
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction, TimelineEvent
from routing.models import OfferState
from routing.visibility import customer_visible_to_agent
from switchboard import fastsql
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.auth.service import create_user
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from tests.factories import make_agent, make_customer, make_interaction, make_offer


async def _events(session, customer_ids, kind: str | None = None) -> list[TimelineEvent]:
    query = (
        select(TimelineEvent).where(TimelineEvent.customer_id.in_(customer_ids)).order_by(TimelineEvent.id)
    )
    if kind:
        query = query.where(TimelineEvent.kind == kind)
    return list((await session.scalars(query)).all())


async def _count(session, model) -> int:
    return await session.scalar(select(func.count()).select_from(model))


# --- identity resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["07911 123456", "+44 7911 123456", "+447911123456", "(07911) 123-456", "0044 7911 123456"]
)
async def test_phone_formats_resolve_to_one_customer(session, written: str) -> None:
    first, _, created = await resolve_or_create_customer(
        session, kind=IdentityKind.PHONE, raw_value="07911123456", default_region="GB"
    )
    again, identity, created_again = await resolve_or_create_customer(
        session, kind=IdentityKind.PHONE, raw_value=written, default_region="GB"
    )
    await session.commit()
    assert created and not created_again
    assert again.id == first.id
    assert identity.value == "+447911123456"
    assert await _count(session, Customer) == 1


async def test_email_case_resolves_to_one_customer(session) -> None:
    first, _, _ = await resolve_or_create_customer(
        session, kind=IdentityKind.EMAIL, raw_value="Ada.Lovelace@Example.COM", default_region="GB"
    )
    again, identity, created = await resolve_or_create_customer(
        session, kind=IdentityKind.EMAIL, raw_value="  ada.lovelace@example.com ", default_region="GB"
    )
    assert not created and again.id == first.id
    assert identity.value == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    ("kind", "raw"),
    [(IdentityKind.PHONE, "12345"), (IdentityKind.PHONE, "call me"), (IdentityKind.EMAIL, "a@")],
)
async def test_malformed_identity_is_invalid_and_writes_nothing(session, kind, raw) -> None:
    with pytest.raises(Invalid) as info:
        await resolve_or_create_customer(session, kind=kind, raw_value=raw, default_region="GB")
    assert info.value.field == "identity.value"
    assert await _count(session, Customer) == 0


# --- linking --------------------------------------------------------------------------------------


async def test_link_identity_adds_event_and_is_idempotent(session) -> None:
    customer = await make_customer(session)
    identity, created = await link_identity(
        session,
        customer_id=customer.id,
        kind=IdentityKind.EMAIL,
        raw_value="Grace@Example.com",
        default_region="GB",
    )
    again, created_again = await link_identity(
        session,
        customer_id=customer.id,
        kind=IdentityKind.EMAIL,
        raw_value="grace@example.com",
        default_region="GB",
    )
    await session.commit()
    assert created and not created_again and again.id == identity.id
    assert {i.value for i in customer.identities} >= {"grace@example.com"}
    events = await _events(session, [customer.id], "identity_linked")
    assert len(events) == 1 and events[0].data["value"] == "grace@example.com"


async def test_link_identity_owned_by_someone_else_is_a_conflict_naming_them(session) -> None:
    owner = await make_customer(session, phone="07911 111111")
    other = await make_customer(session, phone="07911 222222")
    await session.commit()
    owner_id = owner.id
    with pytest.raises(Conflict) as info:
        await link_identity(
            session,
            customer_id=other.id,
            kind=IdentityKind.PHONE,
            raw_value="+447911111111",
            default_region="GB",
        )
    assert str(owner_id) in info.value.detail
    assert info.value.extra["existing_customer_id"] == str(owner_id)
    assert info.value.field == "body.value"
    await session.rollback()
    identity = await session.scalar(select(Identity).where(Identity.value == "+447911111111"))
    assert identity.customer_id == owner_id


# --- merging --------------------------------------------------------------------------------------


async def test_merge_repoints_everything_keeps_all_history_and_is_audited(session) -> None:
    agent = await make_agent(session)
    target = await make_customer(
        session,
        phone="07911 100001",
        display_name="Ada Lovelace",
        segments=["senior"],
        marketing_consent=True,
    )
    source = await make_customer(
        session,
        phone="07911 100002",
        display_name="Caller 0002",
        segments=["vulnerable", "senior"],
        date_of_birth=date(1950, 12, 10),
        relationship_manager_id=agent.id,
        do_not_contact=True,
    )
    await link_identity(
        session,
        customer_id=source.id,
        kind=IdentityKind.EMAIL,
        raw_value="ada@example.com",
        default_region="GB",
    )
    t_interaction = await make_interaction(session, customer=target)
    s_interaction = await make_interaction(session, customer=source, agent=agent)
    login = await create_user(
        session, username="ada-app", display_name="Ada", role=Role.CUSTOMER, password="correct-horse-battery"
    )
    login.customer_id = source.id
    session.add(CustomerFeedback(interaction_id=s_interaction.id, customer_id=source.id, csat=4))
    await session.commit()
    before = {e.id: (e.customer_id, e.kind, e.data) for e in await _events(session, [target.id, source.id])}
    # The session remembers the answer; the merge below must make it forget (asserted after it).
    assert await merged_customer_ids(session, target.id) == [target.id]

    merged = await merge_customers(
        session, target_id=target.id, source_id=source.id, actor_id=None, movers=MOVERS
    )
    await session.commit()

    assert merged.id == target.id
    assert {i.value for i in merged.identities} == {"+447911100001", "+447911100002", "ada@example.com"}
    assert (await session.get(Customer, source.id)).merged_into_id == target.id
    assert (
        await session.scalar(select(Interaction.customer_id).where(Interaction.id == s_interaction.id))
        == target.id
    )
    assert (
        await session.scalar(select(Interaction.customer_id).where(Interaction.id == t_interaction.id))
        == target.id
    )
    await session.refresh(login)
    assert login.customer_id == target.id
    # Target keeps its own values, fills gaps from the source, unions segments, most restrictive consent.
    assert merged.display_name == "Ada Lovelace"
    assert merged.date_of_birth == date(1950, 12, 10)
    assert merged.relationship_manager_id == agent.id
    assert merged.segments == ["senior", "vulnerable"]
    assert merged.do_not_contact is True and merged.marketing_consent is False

    # Every earlier event is untouched and still visible through the merged id set.
    ids = await merged_customer_ids(session, target.id)
    assert set(ids) == {target.id, source.id}
    after = await _events(session, ids)
    assert {e.id: (e.customer_id, e.kind, e.data) for e in after if e.id in before} == before
    new = [e for e in after if e.id not in before]
    assert [(e.customer_id, e.kind) for e in new] == [(target.id, "customer_merged")]
    assert new[0].data["source_customer_id"] == str(source.id)
    assert new[0].data["moved"] == {"identities": 2, "interactions": 1, "users": 1, "feedback": 1}
    feedback = await session.scalar(select(CustomerFeedback))
    assert feedback is not None and feedback.customer_id == target.id

    audit = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.merged"))).all()
    assert len(audit) == 1 and audit[0].entity_id == str(target.id)

    # The source's identities now resolve to the survivor.
    resolved, _, created = await resolve_or_create_customer(
        session, kind=IdentityKind.EMAIL, raw_value="ADA@example.com", default_region="GB"
    )
    assert resolved.id == target.id and not created
    # An agent who served the source profile still sees the merged customer.
    assert await customer_visible_to_agent(session, customer_id=target.id, agent_id=agent.id)


async def test_merge_into_itself_or_twice_is_rejected(session) -> None:
    a, b, c = [(await make_customer(session)).id for _ in range(3)]
    await session.commit()
    with pytest.raises(Invalid, match="itself") as info:
        await merge_customers(session, target_id=a, source_id=a, actor_id=None, movers=MOVERS)
    assert info.value.field == "body.source_customer_id"
    await merge_customers(session, target_id=a, source_id=b, actor_id=None, movers=MOVERS)
    await session.commit()
    with pytest.raises(Conflict, match="already merged"):
        await merge_customers(session, target_id=c, source_id=b, actor_id=None, movers=MOVERS)
    await session.rollback()
    with pytest.raises(Conflict, match="was merged into"):
        await merge_customers(session, target_id=b, source_id=c, actor_id=None, movers=MOVERS)
    await session.rollback()
    with pytest.raises(NotFound):
        await merge_customers(session, target_id=a, source_id=uuid.uuid4(), actor_id=None, movers=MOVERS)
    await session.rollback()
    assert await session.scalar(select(Customer.merged_into_id).where(Customer.id == c)) is None


async def test_merge_chain_keeps_transitive_history(session) -> None:
    a = await make_customer(session)
    b = await make_customer(session)
    c = await make_customer(session)
    await make_interaction(session, customer=c)
    await session.commit()
    await merge_customers(session, target_id=b.id, source_id=c.id, actor_id=None, movers=MOVERS)
    await merge_customers(session, target_id=a.id, source_id=b.id, actor_id=None, movers=MOVERS)
    await session.commit()
    ids = await merged_customer_ids(session, a.id)
    assert set(ids) == {a.id, b.id, c.id}
    kinds = [e.kind for e in await _events(session, ids)]
    assert kinds.count("customer_created") == 3 and kinds.count("customer_merged") == 2
    assert "interaction_created" in kinds


async def test_merged_ids_are_read_once_per_session(db) -> None:
    """A desktop render asks for the same customer's merged ids up to four times: one read."""
    async with db.sessionmaker() as s:
        a, b = await make_customer(s), await make_customer(s)
        await merge_customers(s, target_id=a.id, source_id=b.id, actor_id=None, movers=MOVERS)
        await s.commit()
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, many) -> None:  # type: ignore[no-untyped-def]
        if "merged_into_id" in statement:
            reads.append(statement)

    def count_fast(statement: str) -> None:  # run straight on asyncpg (switchboard.fastsql)
        count(None, None, statement, None, None, False)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    fastsql.statement_listeners.append(count_fast)
    try:
        async with db.sessionmaker() as s:
            for _ in range(4):
                assert set(await merged_customer_ids(s, a.id)) == {a.id, b.id}
            await s.commit()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        fastsql.statement_listeners.remove(count_fast)
    assert len(reads) == 2  # a's merged profiles, then b's (none): the frontier, once


# --- tiers ----------------------------------------------------------------------------------------


async def test_recompute_tier_appends_event_only_when_tier_changes(session) -> None:
    customer = await make_customer(session, relationship_balance=Decimal("300000"))
    first = await recompute_tier(session, customer)
    await session.commit()
    assert first.tier_changed and customer.value_tier is ValueTier.SILVER
    assert customer.tier_breakdown["policy_version"] == 0
    assert customer.tier_breakdown["inputs"]["balance"]["points"] == 30
    stamp = customer.tier_computed_at

    again = await recompute_tier(session, customer)
    await session.commit()
    assert not again.changed and not again.tier_changed and customer.tier_computed_at == stamp

    customer.products_held = 1  # 35 points: still silver, breakdown changes, no tier event
    moved = await recompute_tier(session, customer)
    await session.commit()
    assert moved.changed and not moved.tier_changed
    events = await _events(session, [customer.id], "tier_changed")
    assert [(e.data["from"], e.data["to"]) for e in events] == [("standard", "silver")]


async def test_recompute_all_is_batched_idempotent_and_skips_merged(session) -> None:
    rich = await make_customer(session, relationship_balance=Decimal("700000"))
    mid = await make_customer(session, products_held=5)
    poor = await make_customer(session)
    gone = await make_customer(session, relationship_balance=Decimal("5000000"))
    await session.commit()
    await merge_customers(session, target_id=poor.id, source_id=gone.id, actor_id=None, movers=MOVERS)
    await session.commit()

    counts = await recompute_all_tiers(session, batch_size=2)
    assert counts["scanned"] == 3
    # rich -> gold, mid -> silver; poor was already re-tiered by the merge (balance filled from gone).
    assert counts["tier_changed"] == 2 and counts["changed"] == 2
    tiers = {c.id: c.value_tier for c in (await session.scalars(select(Customer))).all()}
    assert tiers[rich.id] is ValueTier.GOLD and tiers[mid.id] is ValueTier.SILVER
    assert tiers[poor.id] is ValueTier.GOLD  # merge filled poor's empty balance from the source
    assert tiers[gone.id] is ValueTier.STANDARD

    events_before = await _count(session, TimelineEvent)
    second = await recompute_all_tiers(session, batch_size=2)
    assert second == {"scanned": 3, "changed": 0, "tier_changed": 0, "policy_version": 0}
    assert await _count(session, TimelineEvent) == events_before


async def test_set_policy_versions_audits_and_changes_live_policy(session) -> None:
    user = await create_user(
        session, username="sup", display_name="Sup", role=Role.SUPERVISOR, password="correct-horse-battery"
    )
    assert (await get_live_policy(session)).version == 0
    stricter = DEFAULT_TIER_POLICY.model_copy(
        update={"thresholds": TierThresholds(platinum=150, gold=80, silver=40)}
    )
    live = await set_tier_policy(session, policy=stricter, actor_id=user.id)
    await session.commit()
    assert live.version == 1
    again = await get_live_policy(session)
    assert again.version == 1 and again.policy == stricter and again.created_by_id == user.id
    second = await set_tier_policy(session, policy=DEFAULT_TIER_POLICY, actor_id=user.id)
    await session.commit()
    assert second.version == 2
    audit = (
        await session.scalars(select(AuditEntry).where(AuditEntry.action == "tier_policy.updated"))
    ).all()
    assert [a.entity_id for a in audit] == ["1", "2"] and all(a.actor_id == user.id for a in audit)
    assert audit[0].data["policy"]["thresholds"] == {"platinum": 150, "gold": 80, "silver": 40}

    customer = await make_customer(session, relationship_balance=Decimal("300000"))
    await set_tier_policy(session, policy=stricter, actor_id=user.id)
    await recompute_tier(session, customer)
    assert customer.value_tier is ValueTier.STANDARD  # 30 < 40 under the stricter policy
    assert customer.tier_breakdown["policy_version"] == 3


# --- create / update ------------------------------------------------------------------------------


async def test_create_customer_with_identities(session) -> None:
    data = CustomerCreate(
        display_name="Mei Chen",
        language="zh",
        segments=["Senior", "senior", "private-banking"],
        relationship_balance=Decimal("1250000"),
        identities=[
            {"kind": "phone", "value": "07911 123456"},
            {"kind": "phone", "value": "+447911123456", "verified": True},
            {"kind": "email", "value": "Mei@Example.com"},
        ],
    )
    customer = await create_customer(session, data=data, actor=None, default_region="GB")
    await session.commit()
    assert customer.segments == ["senior", "private-banking"]
    assert sorted((i.kind.value, i.value, i.verified) for i in customer.identities) == [
        ("email", "mei@example.com", False),
        ("phone", "+447911123456", True),
    ]
    assert customer.value_tier is ValueTier.GOLD and customer.tier_computed_at is not None
    with pytest.raises(Conflict) as info:
        await create_customer(
            session,
            data=CustomerCreate(display_name="X", identities=[{"kind": "email", "value": "MEI@example.com"}]),
            actor=None,
            default_region="GB",
        )
    assert info.value.field == "body.identities.0.value"
    assert str(customer.id) in info.value.detail


async def test_update_customer_records_fields_and_retiers(session) -> None:
    agent = await make_agent(session)
    customer = await make_customer(session)
    await recompute_tier(session, customer)
    await session.commit()
    updated = await update_customer(
        session,
        customer_id=customer.id,
        changes=CustomerUpdate(
            relationship_balance=Decimal("650000"),
            timezone="Asia/Shanghai",
            relationship_manager_id=agent.id,
            quiet_hours_start=time(21, 0),
            quiet_hours_end=time(8, 0),
            preferred_channel="chat",
            do_not_contact=False,  # unchanged: not listed
        ),
        actor=None,
    )
    await session.commit()
    assert updated.value_tier is ValueTier.GOLD
    events = await _events(session, [customer.id])
    profile = [e for e in events if e.kind == "profile_updated"]
    assert profile[0].data["fields"] == [
        "preferred_channel",
        "quiet_hours_end",
        "quiet_hours_start",
        "relationship_balance",
        "relationship_manager_id",
        "timezone",
    ]
    assert [e.data["to"] for e in events if e.kind == "tier_changed"] == ["gold"]

    # Moving one end of the quiet hours is fine; clearing one end only is not.
    await update_customer(session, customer_id=customer.id, changes={"quiet_hours_end": "07:00"}, actor=None)
    with pytest.raises(Invalid) as info:
        await update_customer(
            session, customer_id=customer.id, changes={"quiet_hours_start": None}, actor=None
        )
    assert info.value.field == "body.quiet_hours_start"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone"),
        ({"relationship_manager_id": "00000000-0000-0000-0000-000000000001"}, "body.relationship_manager_id"),
        ({"quiet_hours_start": "22:00"}, "body.quiet_hours_end"),
        ({"quiet_hours_start": "22:00", "quiet_hours_end": "22:00"}, "body.quiet_hours_end"),
        ({"customer_since": "2999-01-01"}, "body.customer_since"),
    ],
)
async def test_update_customer_rejects_bad_values_and_writes_nothing(session, changes, field) -> None:
    customer = await make_customer(session)
    await session.commit()
    events = await _count(session, TimelineEvent)
    with pytest.raises(Invalid) as info:
        await update_customer(session, customer_id=customer.id, changes=changes, actor=None)
    assert info.value.field == field
    await session.rollback()
    assert await _count(session, TimelineEvent) == events


# --- search ---------------------------------------------------------------------------------------


async def test_list_customers_filters(session) -> None:
    ada = await make_customer(session, phone="07912 300001", display_name="Ada Lovelace", segments=["senior"])
    await make_customer(session, phone="07912 300002", display_name="Grace Hopper", segments=["senior-ish"])
    mei = await make_customer(
        session, phone="07912 300003", display_name="Mei 100%", relationship_balance=Decimal("700000")
    )
    await recompute_all_tiers(session)

    names = lambda rows: sorted(c.display_name for c in rows)  # noqa: E731
    rows, total = await list_customers(session, name="LOVE")
    assert names(rows) == ["Ada Lovelace"] and total == 1
    rows, _ = await list_customers(session, name="100%")
    assert [c.id for c in rows] == [mei.id]
    rows, _ = await list_customers(session, identity="+44 7912 300001")
    assert [c.id for c in rows] == [ada.id]
    rows, _ = await list_customers(session, segment="senior")
    assert [c.id for c in rows] == [ada.id]
    rows, _ = await list_customers(session, tier=ValueTier.GOLD)
    assert [c.id for c in rows] == [mei.id]
    rows, total = await list_customers(session, limit=2, offset=2)
    assert total == 3 and len(rows) == 1


async def test_agent_visibility_assigned_live_offer_and_merged(session) -> None:
    agent = await make_agent(session)
    other_agent = await make_agent(session)
    assigned = await make_customer(session)
    offered = await make_customer(session)
    missed = await make_customer(session)
    nobody = await make_customer(session)
    await make_interaction(session, customer=assigned, agent=agent)
    await make_interaction(session, customer=nobody, agent=other_agent)
    live_i = await make_interaction(session, customer=offered)
    missed_i = await make_interaction(session, customer=missed)
    soon = utcnow() + timedelta(seconds=30)
    await make_offer(session, interaction_id=live_i.id, agent_id=agent.id, expires_at=soon)
    await make_offer(
        session, interaction_id=missed_i.id, agent_id=agent.id, state=OfferState.EXPIRED, expires_at=soon
    )

    async def sees(customer) -> bool:
        return await customer_visible_to_agent(session, customer_id=customer.id, agent_id=agent.id)

    assert await sees(assigned) and await sees(offered)
    assert not await sees(missed) and not await sees(nobody)


async def test_recompute_handles_rows_just_added_by_a_seed(session) -> None:
    pending = Customer(display_name="Seeded", relationship_balance=Decimal("250000"))
    session.add(pending)
    counts = await recompute_all_tiers(session)
    assert counts["scanned"] == 1 and pending.value_tier is ValueTier.SILVER
    fresh = Customer(display_name="Also seeded", products_held=12)
    outcome = await recompute_tier(session, fresh)
    await session.commit()
    assert outcome.tier_changed and fresh.value_tier is ValueTier.SILVER
    assert len(await _events(session, [pending.id, fresh.id], "tier_changed")) == 2
