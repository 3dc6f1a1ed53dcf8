"""Alerts -> owned follow-ups (issue #12 item 3): the shipped rules, idempotent evaluation,
escalation once, the owner's changes (audited), and rule validation in the routing language."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from customers.models import ValueTier
from experience import follow_ups
from experience.jobs import run_alerts
from experience.models import AlertRule, FollowUp, FollowUpState, OwnerRole
from experience.rules import DEFAULT_RULES, seed_default_rules
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.states import State
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.db import Database, utcnow
from tests.factories import (
    make_agent,
    make_customer,
    make_feedback,
    make_interaction,
    make_queue,
    make_staff_user,
    make_team,
)
from tests.workers import run_burst_worker

PROBLEM_JSON = "application/problem+json"


async def _count(session, model, *where) -> int:
    value = await session.scalar(select(func.count()).select_from(model).where(*where))
    await session.commit()
    return int(value or 0)


async def _timeline_kinds(session, customer_id) -> list[str]:
    kinds = list(
        await session.scalars(
            select(TimelineEvent.kind)
            .where(TimelineEvent.customer_id == customer_id)
            .order_by(TimelineEvent.id)
        )
    )
    await session.commit()
    return kinds


async def _unhappy_gold(session, *, csat: int = 1, tier: ValueTier = ValueTier.GOLD):
    """A gold customer's CSAT on a chat handled by an agent of team "alpha" (led by a supervisor),
    the customer managed by a relationship manager."""
    lead = await make_staff_user(session, Role.SUPERVISOR, name="Lena Lead")
    await make_team(session, "alpha", lead)
    agent = await make_agent(session, name="Ann Agent", teams=["alpha"])
    manager = await make_agent(session, name="Rita Manager")
    customer = await make_customer(session, value_tier=tier, relationship_manager_id=manager.id)
    interaction = await make_interaction(session, customer=customer, agent=agent)
    await make_feedback(session, interaction, csat=csat)
    return lead, agent, manager, customer, interaction


async def test_the_shipped_rules_are_seeded_once(app, session):
    """The app seeded them at start-up; seeding again (another process, a worker) adds none."""
    assert await seed_default_rules(session) == 0
    keys = set(await session.scalars(select(AlertRule.seed_key)))
    await session.commit()
    assert keys == {spec["seed_key"] for spec in DEFAULT_RULES}


async def test_alert_evaluation_run_twice_raises_one_follow_up(app, client, db: Database, session, make_user):
    lead, agent, _, customer, interaction = await _unhappy_gold(session)
    _, headers = await make_user(Role.SUPERVISOR)

    first = await client.post("/api/alert-rules/evaluate", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["raised"] == 1
    second = await client.post("/api/alert-rules/evaluate", headers=headers)
    assert second.json()["raised"] == 0
    # The worker's job and two concurrent evaluations (two sessions) raise nothing more either.
    assert (await run_alerts(db))["raised"] == 0
    async with db.sessionmaker() as s1, db.sessionmaker() as s2:
        results = await asyncio.gather(follow_ups.evaluate(s1), follow_ups.evaluate(s2))
    assert [r.raised for r in results] == [0, 0]

    rows = list(await session.scalars(select(FollowUp)))
    await session.commit()
    assert len(rows) == 1
    raised = rows[0]
    assert raised.owner_user_id == lead.id and raised.owner_role == OwnerRole.TEAM_LEAD
    assert raised.state == FollowUpState.OPEN and raised.customer_id == customer.id
    assert raised.agent_id == agent.id
    assert (await _timeline_kinds(session, customer.id)).count("follow_up_raised") == 1

    listed = await client.get("/api/follow-ups", params={"owner": str(lead.id)}, headers=headers)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["interaction_ids"] == [str(interaction.id)]
    assert item["title"] == "CSAT 1 from a gold customer"


async def test_two_evaluations_at_once_on_new_events_raise_one_follow_up(app, db: Database, session):
    """Both runs see the same new event and both try to insert: the unique key lets one win."""
    await _unhappy_gold(session)
    async with db.sessionmaker() as s1, db.sessionmaker() as s2:
        results = await asyncio.gather(follow_ups.evaluate(s1), follow_ups.evaluate(s2))
    assert sum(r.raised for r in results) == 1
    assert await _count(session, FollowUp) == 1


async def test_a_happy_or_standard_customer_raises_nothing(app, db: Database, session):
    await _unhappy_gold(session, csat=4)
    customer = await make_customer(session, value_tier=ValueTier.STANDARD)
    await make_feedback(session, await make_interaction(session, customer=customer), csat=1)
    assert (await run_alerts(db))["raised"] == 0


async def test_an_overdue_follow_up_escalates_once(app, db: Database, session):
    lead, _, manager, customer, _ = await _unhappy_gold(session)
    assert (await run_alerts(db))["raised"] == 1
    await session.execute(update(FollowUp).values(due_at=utcnow() - timedelta(minutes=1)))
    await session.commit()

    async with db.sessionmaker() as s1, db.sessionmaker() as s2:
        counts = await asyncio.gather(follow_ups.escalate_overdue(s1), follow_ups.escalate_overdue(s2))
    assert sum(counts) == 1
    assert (await run_alerts(db))["escalated"] == 0
    # Still overdue later (nobody acted): it does not escalate again.
    await session.execute(update(FollowUp).values(due_at=utcnow() - timedelta(minutes=1)))
    await session.commit()
    async with db.sessionmaker() as s3:
        assert await follow_ups.escalate_overdue(s3) == 0

    row = await session.scalar(select(FollowUp))
    await session.commit()
    assert row is not None and row.state == FollowUpState.ESCALATED
    # The rule's escalation owner: the customer's relationship manager (as a user).
    assert row.owner_user_id == manager.user_id and row.escalated_from_user_id == lead.id
    assert (await _timeline_kinds(session, customer.id)).count("follow_up_escalated") == 1


async def test_the_owner_works_a_follow_up_audited(app, client, db: Database, session, make_user):
    await _unhappy_gold(session)
    await run_alerts(db)
    row = await session.scalar(select(FollowUp))
    await session.commit()
    assert row is not None
    supervisor, headers = await make_user(Role.SUPERVISOR)
    url = f"/api/follow-ups/{row.id}"

    changed = await client.patch(
        url,
        json={"state": "in_progress", "note": "Called the customer back", "cause": "Card Declined"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["state"] == "in_progress" and body["cause"] == "card declined"
    assert [n["body"] for n in body["notes"]] == ["Called the customer back"]
    actions = list(
        await session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_id == str(row.id)).order_by(AuditEntry.id)
        )
    )
    await session.commit()
    assert actions == ["follow_up.update", "follow_up.note"]

    bad = await client.patch(url, json={"state": "done"}, headers=headers)
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON
    assert bad.json()["errors"][0]["field"].endswith("state")
    empty = await client.patch(url, json={}, headers=headers)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "state"
    resolved = await client.patch(url, json={"state": "resolved"}, headers=headers)
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_at"]
    again = await client.patch(url, json={"state": "open"}, headers=headers)
    assert again.status_code == 422  # resolved -> open is not a move (reopen is in_progress)
    assert await _count(session, AuditEntry, AuditEntry.entity_id == str(row.id)) == 3


async def test_an_agent_sees_and_changes_only_their_own_follow_ups(
    app, client, db: Database, session, make_user
):
    owner, owner_headers = await make_user(Role.AGENT)
    _, other_headers = await make_user(Role.AGENT)
    await make_team(session, "beta", owner)  # an agent who leads a team
    agent = await make_agent(session, teams=["beta"])
    customer = await make_customer(session, value_tier=ValueTier.PLATINUM)
    await make_feedback(session, await make_interaction(session, customer=customer, agent=agent), csat=2)
    await run_alerts(db)

    mine = await client.get("/api/follow-ups", headers=owner_headers)
    (item,) = mine.json()["items"]
    theirs = await client.get("/api/follow-ups", params={"owner": "all"}, headers=other_headers)
    assert theirs.json()["items"] == []
    hidden = await client.patch(
        f"/api/follow-ups/{item['id']}", json={"state": "resolved"}, headers=other_headers
    )
    assert hidden.status_code == 404
    done = await client.patch(
        f"/api/follow-ups/{item['id']}", json={"state": "resolved"}, headers=owner_headers
    )
    assert done.status_code == 200


async def test_rules_are_validated_like_routing_rules_and_audited(app, client, session, make_user):
    supervisor, headers = await make_user(Role.SUPERVISOR)
    body = {
        "name": "Very unhappy",
        "signal": "feedback",
        "condition": "feedback.csat <= 1 and customer.tier == 3",
        "owner_role": "queue_owner",
        "escalation_role": "supervisors",
        "due_minutes": 30,
    }
    bad = await client.post("/api/alert-rules", json=body, headers=headers)
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON
    (error,) = bad.json()["errors"]
    assert error["field"] == "condition" and error["column"] == 38  # the "==" comparing a str with an int
    assert "at column 38" in error["message"]
    unknown = await client.post(
        "/api/alert-rules", json={**body, "condition": "queue.service_level < 80"}, headers=headers
    )
    assert unknown.json()["errors"][0]["field"] == "condition"
    assert "queue.service_level" in unknown.json()["errors"][0]["message"]
    kind = await client.post("/api/alert-rules", json={**body, "signal": "weather"}, headers=headers)
    assert kind.status_code == 422 and kind.json()["errors"][0]["field"] == "body.signal"
    assert await _count(session, AlertRule, AlertRule.name == "Very unhappy") == 0

    created = await client.post(
        "/api/alert-rules", json={**body, "condition": "feedback.csat <= 1"}, headers=headers
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["version"] == 1 and rule["updated_by_id"] == str(supervisor.id)
    edited = await client.patch(
        f"/api/alert-rules/{rule['id']}",
        json={"version": 1, "due_minutes": 90, "enabled": False},
        headers=headers,
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = await client.patch(
        f"/api/alert-rules/{rule['id']}", json={"version": 1, "due_minutes": 5}, headers=headers
    )
    assert stale.status_code == 409 and stale.json()["errors"][0]["field"] == "version"
    entries = list(
        await session.scalars(
            select(AuditEntry).where(AuditEntry.entity_id == rule["id"]).order_by(AuditEntry.id)
        )
    )
    await session.commit()
    assert [e.action for e in entries] == ["alert_rule.create", "alert_rule.update"]
    assert entries[1].data["before"] == {"due_minutes": 30, "enabled": True}
    assert entries[1].actor_id == supervisor.id


async def test_the_other_shipped_rules_raise_their_follow_ups(app, db: Database, session):
    """Repeat contact in 48 h, service level under target, three negative pulses in a shift, a
    senior customer abandoning: one follow-up each, owned as the rule says."""
    now = utcnow()
    queue_owner = await make_staff_user(session, Role.SUPERVISOR, name="Quinn Owner")
    queue = await make_queue(session, "cards", owner_user_id=queue_owner.id, sl_threshold_seconds=20)
    lead = await make_staff_user(session, Role.SUPERVISOR, name="Lee Lead")
    await make_team(session, "gamma", lead)
    agent = await make_agent(session, teams=["gamma"])

    customer = await make_customer(session)
    first = await make_interaction(session, customer=customer, agent=agent)
    second = await make_interaction(session, customer=customer)
    for row, ago in ((first, timedelta(hours=30)), (second, timedelta(hours=1))):
        await session.execute(
            update(Interaction)
            .where(Interaction.id == row.id)
            .values(topic="card-declined", created_at=now - ago)
        )
    # Service level: in the last complete 15 minutes, one of two answered late, one abandoned by
    # a senior customer.
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) - timedelta(minutes=15)
    senior = await make_customer(session, segments=["senior"])
    late = await make_interaction(session, customer=customer, agent=agent)
    left = await make_interaction(session, customer=senior)
    await session.execute(
        update(Interaction)
        .where(Interaction.id == late.id)
        .values(
            queue_id=queue.id,
            queued_at=start,
            connected_at=start + timedelta(seconds=90),
            state=State.COMPLETED,
        )
    )
    await session.execute(
        update(Interaction)
        .where(Interaction.id == left.id)
        .values(
            queue_id=queue.id, queued_at=start, ended_at=start + timedelta(seconds=60), state=State.ABANDONED
        )
    )
    for score in (1, 2, 2, 5):
        rated = await make_interaction(session, customer=customer, agent=agent)
        session.add(
            AgentPulse(
                agent_id=agent.id,
                interaction_id=rated.id,
                kind=PulseKind.INTERACTION,
                score=score,
                tags=[],
                team="gamma",
                day=now.date(),
                created_at=now,
            )
        )
    await session.commit()

    counts = await run_alerts(db)
    assert counts["raised"] == 4, counts
    rows = {f.signal.value: f for f in await session.scalars(select(FollowUp).order_by(FollowUp.created_at))}
    await session.commit()
    assert set(rows) == {"repeat_contact", "service_level", "ex_pulse", "abandon"}
    assert rows["repeat_contact"].owner_user_id == lead.id  # lead of the first contact's agent
    assert rows["service_level"].owner_user_id == queue_owner.id
    assert rows["service_level"].title.startswith("Cards: service level 0%")
    assert rows["ex_pulse"].owner_user_id == lead.id
    # No relationship manager: the senior customer's abandon goes to every supervisor.
    assert rows["abandon"].owner_user_id is None and rows["abandon"].customer_id == senior.id
    assert (await run_alerts(db))["raised"] == 0


async def test_the_worker_runs_the_alerts_job(app, session, settings):
    """The worker's maintenance pass queues the alerts job; a work horse raises the follow-up."""
    await _unhappy_gold(session)
    output = await run_burst_worker(settings)
    assert "alerts: {" in output and "'raised': 1" in output, output
    assert await _count(session, FollowUp) == 1


async def test_follow_ups_grouped_into_an_improvement_item(app, client, db: Database, session, make_user):
    supervisor, headers = await make_user(Role.SUPERVISOR)
    for team in ("north", "south"):
        lead = await make_staff_user(session, Role.SUPERVISOR)
        await make_team(session, team, lead)
        agent = await make_agent(session, teams=[team])
        customer = await make_customer(session, value_tier=ValueTier.GOLD)
        interaction = await make_interaction(session, customer=customer, agent=agent)
        await session.execute(
            update(Interaction).where(Interaction.id == interaction.id).values(topic="cards")
        )
        await session.commit()
        await make_feedback(session, interaction, csat=1)
    await run_alerts(db)
    ids = list(await session.scalars(select(FollowUp.id)))
    await session.commit()
    for fid in ids:
        response = await client.patch(f"/api/follow-ups/{fid}", json={"cause": "App outage"}, headers=headers)
        assert response.status_code == 200

    (candidate,) = (await client.get("/api/improvements/candidates", headers=headers)).json()
    assert candidate == {"topic": "cards", "cause": "app outage", "follow_ups": 2, "teams": 2}
    bad = await client.post(
        "/api/improvements",
        json={"title": "Fix it", "topic": "cards", "cause": "app outage", "owner_user_id": str(ids[0])},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "owner_user_id"
    created = await client.post(
        "/api/improvements",
        json={
            "title": "Card app outages",
            "topic": "cards",
            "cause": "app outage",
            "owner_user_id": str(supervisor.id),
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["follow_ups"] == 2 and item["teams"] == 2 and item["status"] == "open"
    assert (await client.get("/api/improvements/candidates", headers=headers)).json() == []
    done = await client.patch(f"/api/improvements/{item['id']}", json={"status": "done"}, headers=headers)
    assert done.json()["status"] == "done" and done.json()["done_at"]
    assert (await client.get("/api/improvements", headers=headers)).json() == []
    trend = (await client.get("/api/improvements/trend", headers=headers)).json()
    assert trend["raised"][-1] == 2 and trend["grouped"][-1] == 2 and len(trend["weeks"]) == 8
    assert await _count(session, AuditEntry, AuditEntry.entity_type == "improvement") == 2


async def test_an_agent_owner_works_their_follow_ups_on_the_desktop(
    app, client, db: Database, session, make_user
):
    """The desktop's side-pane fragment lists what the agent owns and changes its state."""
    owner, headers = await make_user(Role.AGENT)
    await make_team(session, "delta", owner)
    agent = await make_agent(session, teams=["delta"])
    customer = await make_customer(session, value_tier=ValueTier.GOLD)
    await make_feedback(session, await make_interaction(session, customer=customer, agent=agent), csat=1)
    empty = await client.get("/desktop/follow-ups", headers=headers)
    assert empty.status_code == 200 and "hidden" in empty.text
    await run_alerts(db)
    row = await session.scalar(select(FollowUp))
    await session.commit()
    assert row is not None

    listed = await client.get("/desktop/follow-ups", headers=headers)
    assert "CSAT 1 from a gold customer" in listed.text and f"my-follow-up-{row.id}" in listed.text
    done = await client.post(f"/desktop/follow-ups/{row.id}", data={"state": "resolved"}, headers=headers)
    assert done.status_code == 200 and "hidden" in done.text
    await session.refresh(row)
    await session.commit()
    assert row.state == FollowUpState.RESOLVED
    assert await _count(session, AuditEntry, AuditEntry.entity_id == str(row.id)) == 1
    # On the customer's timeline, by the agent who resolved it.
    event = await session.scalar(select(TimelineEvent).where(TimelineEvent.kind == "follow_up_resolved"))
    await session.commit()
    assert event is not None and event.actor_type == ActorType.AGENT and event.actor_id == str(owner.id)


async def test_supervisors_set_team_leads_and_queue_owners(app, client, db: Database, session, make_user):
    """The owners follow-ups go to are set through the API (audited); a non-supervisor is refused."""
    supervisor, headers = await make_user(Role.SUPERVISOR)
    agent_user, _ = await make_user(Role.AGENT)
    queue = await make_queue(session, "loans")
    agent = await make_agent(session, teams=["omega"])
    bad = await client.put(
        "/api/workforce/teams/omega/lead", json={"lead_user_id": str(agent_user.id)}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "lead_user_id"
    lead = await client.put(
        "/api/workforce/teams/omega/lead", json={"lead_user_id": str(supervisor.id)}, headers=headers
    )
    assert lead.status_code == 200 and lead.json() == {
        "name": "omega",
        "lead_user_id": str(supervisor.id),
        "agents": 1,
    }
    owner = await client.put(
        f"/api/workforce/queues/{queue.id}/owner", json={"owner_user_id": str(supervisor.id)}, headers=headers
    )
    assert owner.status_code == 200
    actions = set(
        await session.scalars(select(AuditEntry.action).where(AuditEntry.actor_id == supervisor.id))
    )
    await session.commit()
    assert actions == {"team.lead_changed", "queue.owner_changed"}

    customer = await make_customer(session, value_tier=ValueTier.GOLD)
    await make_feedback(session, await make_interaction(session, customer=customer, agent=agent), csat=1)
    await run_alerts(db)
    row = await session.scalar(select(FollowUp))
    await session.commit()
    assert row is not None and row.owner_user_id == supervisor.id
