"""The customers JSON API: authorisation, problem+json on bad input, tier policy and its RQ job."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from decimal import Decimal

import pytest
import rq
from sqlalchemy import func, select

from customers.jobs import recompute_all_tiers_job
from customers.models import Customer, Identity, TierPolicyVersion, ValueTier
from customers.service import recompute_all_tiers
from customers.tier_policy import DEFAULT_TIER_POLICY
from interactions.models import TimelineEvent
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.settings import get_settings
from tests.factories import make_agent, make_customer, make_interaction

PROBLEM = "application/problem+json"


async def _count(db, model) -> int:
    async with db.sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(model))


def _fields(response) -> list[str]:
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    return [e["field"] for e in response.json().get("errors", [])]


async def _drain_with_a_worker_process(redis_url: str) -> None:
    """Run the real ``switchboard worker --burst`` in its own process, as production does.

    Not an in-process SimpleWorker: that would run the job on this test's event loop thread and
    block the app under test, which may hold the SQLite write lock at that moment (flaky deadlock).
    """
    env = {**os.environ, "SWITCHBOARD_REDIS_URL": redis_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.cli",
        "worker",
        "--burst",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode(errors="replace")


def _policy(**thresholds) -> dict:
    data = DEFAULT_TIER_POLICY.model_dump(mode="json")
    data["thresholds"].update(thresholds)
    return data


# --- tier policy ----------------------------------------------------------------------------------


async def test_agent_reads_policy_but_cannot_change_it(client, make_user, db) -> None:
    _, agent_headers = await make_user(Role.AGENT)
    got = await client.get("/api/customers/tier-policy", headers=agent_headers)
    assert got.status_code == 200
    assert got.json()["version"] == 0
    assert got.json()["policy"]["thresholds"] == {"platinum": 120, "gold": 60, "silver": 25}

    put = await client.put("/api/customers/tier-policy", json=_policy(gold=70), headers=agent_headers)
    assert put.status_code == 403
    assert put.headers["content-type"].startswith(PROBLEM)
    assert await _count(db, TierPolicyVersion) == 0
    assert (await client.get("/api/customers/tier-policy")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_policy(gold=120), "body.thresholds.gold"),
        (_policy(silver=70), "body.thresholds.silver"),
        ({**_policy(), "net_value": {"unit": "1000", "points_per_unit": 1, "cap": 50, "floor": 3}}, None),
        ({k: v for k, v in _policy().items() if k != "tenure"}, "body.tenure"),
        ({**_policy(), "balance": {"unit": "0", "points_per_unit": 1, "cap": 100}}, "body.balance.unit"),
        ({**_policy(), "products": {"unit": "1", "points_per_unit": "five", "cap": 30}}, None),
        ({**_policy(), "bonus": 5}, "body.bonus"),
    ],
)
async def test_invalid_policy_is_422_naming_the_field_and_stores_nothing(
    client, make_user, db, body, field
) -> None:
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.put("/api/customers/tier-policy", json=body, headers=headers)
    assert response.status_code == 422
    fields = _fields(response)
    if field is None:  # nested rule errors: the exact leaf
        field = {
            "net_value": "body.net_value.floor",
            "products": "body.products.points_per_unit",
        }[next(k for k in ("net_value", "products") if body[k] != _policy()[k])]
    assert fields == [field]
    assert await _count(db, TierPolicyVersion) == 0
    assert await _count(db, AuditEntry) == 0


@pytest.fixture
def job_settings_env(monkeypatch, settings):
    """Point get_settings() (what the enqueued job reads, like a real worker) at the test database."""
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", settings.database_url)
    if settings.database_schema:
        monkeypatch.setenv("SWITCHBOARD_DATABASE_SCHEMA", settings.database_schema)
    else:
        monkeypatch.delenv("SWITCHBOARD_DATABASE_SCHEMA", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_put_policy_versions_it_and_the_queued_job_retiers_everyone(
    client, make_user, db, redis_handle, job_settings_env
) -> None:
    async with db.sessionmaker() as s:
        rich = await make_customer(s, relationship_balance=Decimal("700000"))  # 70 points
        mid = await make_customer(s, relationship_balance=Decimal("300000"))  # 30 points
        await recompute_all_tiers(s)
        ids = (rich.id, mid.id)
    async with db.sessionmaker() as s:
        tiers = {c.id: c.value_tier for c in (await s.scalars(select(Customer))).all()}
    assert (tiers[ids[0]], tiers[ids[1]]) == (ValueTier.GOLD, ValueTier.SILVER)

    supervisor, headers = await make_user(Role.SUPERVISOR)
    response = await client.put(
        "/api/customers/tier-policy", json=_policy(platinum=150, gold=80, silver=30), headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1 and body["created_by_id"] == str(supervisor.id)
    assert body["policy"]["thresholds"] == {"platinum": 150, "gold": 80, "silver": 30}
    job_id = body["recompute_job_id"]
    assert job_id

    connection = redis_handle.sync_client()
    queue = rq.Queue("default", connection=connection)
    assert job_id in queue.job_ids
    await _drain_with_a_worker_process(redis_handle.url)
    job = rq.job.Job.fetch(job_id, connection=connection)
    assert job.get_status() == rq.job.JobStatus.FINISHED, job.latest_result().exc_string
    assert job.return_value() == {"scanned": 2, "changed": 2, "tier_changed": 1, "policy_version": 1}

    async with db.sessionmaker() as s:
        rows = {c.id: c for c in (await s.scalars(select(Customer))).all()}
        events = await s.scalar(select(func.count()).select_from(TimelineEvent))
    assert rows[ids[0]].value_tier is ValueTier.SILVER  # 70 < 80 now
    assert rows[ids[1]].value_tier is ValueTier.SILVER
    assert rows[ids[0]].tier_breakdown["policy_version"] == 1

    # A second run (e.g. a retried job) changes nothing and appends no events.
    second = queue.enqueue(recompute_all_tiers_job)
    await _drain_with_a_worker_process(redis_handle.url)
    second.refresh()
    assert second.get_status() == rq.job.JobStatus.FINISHED
    assert second.return_value() == {"scanned": 2, "changed": 0, "tier_changed": 0, "policy_version": 1}
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(TimelineEvent)) == events
        after = {c.id: c.tier_computed_at for c in (await s.scalars(select(Customer))).all()}
    assert after == {i: c.tier_computed_at for i, c in rows.items()}

    live = await client.get("/api/customers/tier-policy", headers=headers)
    assert live.json()["version"] == 1
    async with db.sessionmaker() as s:
        audit = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "tier_policy.updated"))).all()
    assert [(a.entity_id, a.actor_id) for a in audit] == [("1", supervisor.id)]
    connection.close()


async def test_job_takes_an_explicit_database(db, settings, redis_handle, redis_sync) -> None:
    async with db.sessionmaker() as s:
        await make_customer(s, products_held=6)
        await s.commit()
    connection = redis_handle.sync_client()
    queue = rq.Queue("default", connection=connection)
    job = queue.enqueue(
        recompute_all_tiers_job, database_url=settings.database_url, database_schema=settings.database_schema
    )
    await _drain_with_a_worker_process(redis_handle.url)
    job.refresh()
    assert job.return_value() == {"scanned": 1, "changed": 1, "tier_changed": 1, "policy_version": 0}
    async with db.sessionmaker() as s:
        assert await s.scalar(select(Customer.value_tier)) is ValueTier.SILVER
    connection.close()


# --- create / read / update -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"identities": [{"kind": "phone", "value": "07911 123456"}]}, "body.display_name"),
        ({"display_name": "A", "identities": []}, "body.identities"),
        ({"display_name": "A"}, "body.identities"),
        (
            {"display_name": "A", "products_held": "lots", "identities": [{"kind": "app", "value": "u1"}]},
            None,
        ),
        ({"display_name": "A", "identities": [{"kind": "phone", "value": "12"}]}, "body.identities.0.value"),
        (
            {
                "display_name": "A",
                "identities": [{"kind": "app", "value": "u1"}, {"kind": "email", "value": "a@b"}],
            },
            "body.identities.1.value",
        ),
        ({"display_name": "A", "identities": [{"kind": "fax", "value": "1"}]}, "body.identities.0.kind"),
        (
            {"display_name": "A", "timezone": "Nowhere/Land", "identities": [{"kind": "app", "value": "u"}]},
            None,
        ),
        (
            {"display_name": "A", "segments": ["no spaces"], "identities": [{"kind": "app", "value": "u"}]},
            None,
        ),
        ({"display_name": "A", "ssn": "1", "identities": [{"kind": "app", "value": "u"}]}, "body.ssn"),
    ],
)
async def test_create_rejects_bad_input_naming_the_field_and_writes_nothing(
    client, make_user, db, body, field
) -> None:
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/customers", json=body, headers=headers)
    assert response.status_code == 422, response.text
    expected = (
        field
        or {
            "products_held": "body.products_held",
            "timezone": "body.timezone",
            "segments": "body.segments.0",
        }[next(k for k in ("products_held", "timezone", "segments") if k in body)]
    )
    assert _fields(response) == [expected]
    assert await _count(db, Customer) == 0
    assert await _count(db, Identity) == 0
    assert await _count(db, TimelineEvent) == 0


async def test_create_read_update_and_conflicts(client, make_user, db) -> None:
    _, headers = await make_user(Role.SUPERVISOR)
    created = await client.post(
        "/api/customers",
        json={
            "display_name": "Ada Lovelace",
            "segments": ["Senior"],
            "relationship_balance": "650000",
            "identities": [
                {"kind": "phone", "value": "07911 123456"},
                {"kind": "email", "value": "Ada@Example.com"},
            ],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    data = created.json()
    cid = data["id"]
    assert data["value_tier"] == "gold"
    assert data["tier_breakdown"]["inputs"]["balance"]["points"] == 65
    assert data["segments"] == ["senior"]
    assert sorted(i["value"] for i in data["identities"]) == ["+447911123456", "ada@example.com"]
    assert data["merged_into_id"] is None and data["do_not_contact"] is False

    duplicate = await client.post(
        "/api/customers",
        json={"display_name": "Other", "identities": [{"kind": "phone", "value": "+44 7911 123456"}]},
        headers=headers,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["existing_customer_id"] == cid
    assert _fields(duplicate) == ["body.identities.0.value"]

    patched = await client.patch(
        f"/api/customers/{cid}",
        json={
            "do_not_contact": True,
            "quiet_hours_start": "21:00",
            "quiet_hours_end": "08:00",
            "timezone": "Asia/Tokyo",
        },
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["do_not_contact"] is True
    assert patched.json()["quiet_hours_start"] == "21:00:00"

    for bad, field in [
        ({"timezone": "Mars/Base"}, "body.timezone"),
        ({"display_name": None}, "body"),
        ({"quiet_hours_end": None}, "body.quiet_hours_end"),
        ({"relationship_manager_id": str(uuid.uuid4())}, "body.relationship_manager_id"),
        ({"preferred_channel": "pigeon"}, "body.preferred_channel"),
        ({"products_held": -1}, "body.products_held"),
    ]:
        response = await client.patch(f"/api/customers/{cid}", json=bad, headers=headers)
        assert response.status_code == 422, (bad, response.text)
        assert _fields(response) == [field], bad
    got = await client.get(f"/api/customers/{cid}", headers=headers)
    assert got.json()["timezone"] == "Asia/Tokyo" and got.json()["display_name"] == "Ada Lovelace"

    missing = await client.get(f"/api/customers/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    bad_id = await client.get("/api/customers/not-a-uuid", headers=headers)
    assert bad_id.status_code == 422 and _fields(bad_id) == ["path.customer_id"]


async def test_agent_sees_only_customers_behind_their_interactions(client, make_user, db) -> None:
    agent_user, agent_headers = await make_user(Role.AGENT)
    _, sup_headers = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        agent = await make_agent(s, user=agent_user)
        served = await make_customer(s)
        stranger = await make_customer(s)
        other = await make_customer(s)
        await make_interaction(s, customer=served, agent=agent)
        await make_interaction(s, customer=other, agent=agent)
        await s.commit()
        served_id, stranger_id, other_id = served.id, stranger.id, other.id

    assert (await client.get(f"/api/customers/{served_id}", headers=agent_headers)).status_code == 200
    hidden = await client.get(f"/api/customers/{stranger_id}", headers=agent_headers)
    assert hidden.status_code == 404
    assert (await client.get(f"/api/customers/{stranger_id}", headers=sup_headers)).status_code == 200
    assert (await client.get("/api/customers", headers=agent_headers)).status_code == 403
    assert (
        await client.post(
            f"/api/customers/{served_id}/merge",
            json={"source_customer_id": str(other_id)},
            headers=agent_headers,
        )
    ).status_code == 403

    # Linking: allowed for a visible customer, not for a hidden one.
    linked = await client.post(
        f"/api/customers/{served_id}/identities",
        json={"kind": "email", "value": "Me@Example.com"},
        headers=agent_headers,
    )
    assert linked.status_code == 201 and linked.json()["value"] == "me@example.com"
    again = await client.post(
        f"/api/customers/{served_id}/identities",
        json={"kind": "email", "value": "me@example.com"},
        headers=agent_headers,
    )
    assert again.status_code == 200 and again.json()["id"] == linked.json()["id"]
    denied = await client.post(
        f"/api/customers/{stranger_id}/identities",
        json={"kind": "app", "value": "app-1"},
        headers=agent_headers,
    )
    assert denied.status_code == 404
    conflict = await client.post(
        f"/api/customers/{other_id}/identities",
        json={"kind": "email", "value": "ME@example.com"},
        headers=agent_headers,
    )
    assert conflict.status_code == 409
    assert conflict.json()["existing_customer_id"] == str(served_id)
    assert str(served_id) in conflict.json()["detail"]
    malformed = await client.post(
        f"/api/customers/{served_id}/identities",
        json={"kind": "phone", "value": "not a phone"},
        headers=agent_headers,
    )
    assert malformed.status_code == 422 and _fields(malformed) == ["body.value"]

    # After the stranger is merged into a customer the agent served, its history comes along.
    merged = await client.post(
        f"/api/customers/{served_id}/merge",
        json={"source_customer_id": str(stranger_id)},
        headers=sup_headers,
    )
    assert merged.status_code == 200, merged.text
    assert (await client.get(f"/api/customers/{served_id}", headers=agent_headers)).status_code == 200


async def test_merge_api(client, make_user, db) -> None:
    _, headers = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        target = await make_customer(s, display_name="Target")
        source = await make_customer(s, display_name="Source", segments=["vulnerable"])
        third = await make_customer(s)
        await make_interaction(s, customer=source)
        await s.commit()
        t, src, th = str(target.id), str(source.id), str(third.id)

    merged = await client.post(f"/api/customers/{t}/merge", json={"source_customer_id": src}, headers=headers)
    assert merged.status_code == 200, merged.text
    assert merged.json()["segments"] == ["vulnerable"] and len(merged.json()["identities"]) == 2
    source_read = await client.get(f"/api/customers/{src}", headers=headers)
    assert source_read.json()["merged_into_id"] == t and source_read.json()["identities"] == []

    itself = await client.post(f"/api/customers/{t}/merge", json={"source_customer_id": t}, headers=headers)
    assert itself.status_code == 422 and _fields(itself) == ["body.source_customer_id"]
    assert "itself" in itself.json()["detail"]
    twice = await client.post(f"/api/customers/{th}/merge", json={"source_customer_id": src}, headers=headers)
    assert twice.status_code == 409 and "already merged" in twice.json()["detail"]
    into_merged = await client.post(
        f"/api/customers/{src}/merge", json={"source_customer_id": th}, headers=headers
    )
    assert into_merged.status_code == 409
    missing_field = await client.post(f"/api/customers/{t}/merge", json={}, headers=headers)
    assert missing_field.status_code == 422 and _fields(missing_field) == ["body.source_customer_id"]

    listing = await client.get("/api/customers", headers=headers)
    assert listing.json()["total"] == 2
    with_merged = await client.get("/api/customers", params={"include_merged": "true"}, headers=headers)
    assert with_merged.json()["total"] == 3
    by_segment = await client.get("/api/customers", params={"segment": "vulnerable"}, headers=headers)
    assert [c["id"] for c in by_segment.json()["items"]] == [t]
    bad_tier = await client.get("/api/customers", params={"tier": "diamond"}, headers=headers)
    assert bad_tier.status_code == 422 and _fields(bad_tier) == ["query.tier"]
    async with db.sessionmaker() as s:
        audit = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "customer.merged"))).all()
    assert len(audit) == 1 and audit[0].entity_id == t
