"""Administration APIs (issue #11 item 4) for queues, skills, agents and teams: validation errors
are problem+json naming the field, nothing is half-saved, every change is audited before ->
after, a delete of something in use is a 409 naming why. Who may call each route is checked for
every route in tests/auth/test_route_roles.py; the first test here spells it out for one entity."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import make_agent, make_customer, make_interaction, make_queue, make_skills, make_team
from workforce.models import Agent, AgentSkill, Presence, Queue, Skill, Team

PROBLEM = "application/problem+json"


def fields_of(response: Any) -> list[str]:
    assert response.headers["content-type"] == PROBLEM, response.text
    return [e["field"] for e in response.json().get("errors", [])]


async def admin_rows(db: Any) -> dict[str, int]:
    async with db.sessionmaker() as s:
        return {
            m.__tablename__: int(await s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Queue, Skill, Agent, AgentSkill, Team, AuditEntry)
        }


async def audit(db: Any, action: str) -> list[AuditEntry]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(AuditEntry).where(AuditEntry.action == action))).all())


async def test_roles_signed_out_401_agent_403_supervisor_allowed(client, make_user):
    _, agent = await make_user(Role.AGENT)
    _, sup = await make_user(Role.SUPERVISOR)
    body = {"name": "card_fraud"}
    assert (await client.post("/api/skills", json=body)).status_code == 401
    refused = await client.post("/api/skills", json=body, headers=agent)
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    assert (await client.post("/api/skills", json=body, headers=sup)).status_code == 201


async def test_skills_create_validate_rename_refused_and_audited(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    bad = await client.post("/api/skills", json={"name": "Card Fraud!"}, headers=sup)
    assert bad.status_code == 422 and fields_of(bad) == ["body.name"]
    created = await client.post(
        "/api/skills", json={"name": "card_fraud", "description": "Fraud"}, headers=sup
    )
    assert created.status_code == 201, created.text
    skill_id = created.json()["id"]
    taken = await client.post("/api/skills", json={"name": "card_fraud"}, headers=sup)
    assert taken.status_code == 409 and fields_of(taken) == ["name"]

    rename = await client.patch(f"/api/skills/{skill_id}", json={"name": "fraud"}, headers=sup)
    assert rename.status_code == 422 and fields_of(rename) == ["body.name"]
    assert "cannot be changed" in rename.text
    changed = await client.patch(f"/api/skills/{skill_id}", json={"description": "Card fraud"}, headers=sup)
    assert changed.status_code == 200 and changed.json()["description"] == "Card fraud"

    (entry,) = await audit(db, "skill.updated")
    assert entry.data["before"] == {"description": "Fraud"} and entry.data["after"] == {
        "description": "Card fraud"
    }
    (made,) = await audit(db, "skill.created")
    assert made.data["after"] == {"name": "card_fraud", "description": "Fraud"}
    listed = await client.get("/api/skills", headers=sup)
    assert [s["name"] for s in listed.json()["items"]] == ["card_fraud"]


async def test_a_skill_in_use_is_not_deleted(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_skills(s, "mortgages")
        await make_agent(s, name="Mo", skills={"mortgages": 3})
        await s.commit()
        skill_id = await s.scalar(select(Skill.id).where(Skill.name == "mortgages"))
    refused = await client.delete(f"/api/skills/{skill_id}", headers=sup)
    assert refused.status_code == 409 and fields_of(refused) == ["id"]
    assert "1 agent hold it" in refused.json()["detail"]
    assert not await audit(db, "skill.deleted")

    async with db.sessionmaker() as s:
        await s.execute(AgentSkill.__table__.delete())
        await s.commit()
    assert (await client.delete(f"/api/skills/{skill_id}", headers=sup)).status_code == 204
    (entry,) = await audit(db, "skill.deleted")
    assert entry.data["before"]["name"] == "mortgages" and entry.data["after"] == {}
    assert (await client.get(f"/api/skills/{skill_id}", headers=sup)).status_code == 404


async def test_queue_validation_names_each_field_and_saves_nothing(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    before = await admin_rows(db)
    bad = await client.post(
        "/api/queues",
        json={"name": "cards", "display_name": "Cards", "channels": [], "sl_target_percent": 0},
        headers=sup,
    )
    assert bad.status_code == 422
    assert sorted(fields_of(bad)) == ["body.channels", "body.sl_target_percent"]
    unknown = await client.post(
        "/api/queues",
        json={
            "name": "cards",
            "display_name": "Cards",
            "channels": ["chat", "fax"],
            "required_skills": {"x": 2},
        },
        headers=sup,
    )
    assert unknown.status_code == 422 and fields_of(unknown) == ["channels"]
    no_skill = await client.post(
        "/api/queues",
        json={"name": "cards", "display_name": "Cards", "channels": ["chat"], "required_skills": {"x": 2}},
        headers=sup,
    )
    assert no_skill.status_code == 422 and fields_of(no_skill) == ["required_skills"]
    assert await admin_rows(db) == before  # nothing half-saved, no audit row either


async def test_queue_create_and_change_reach_sql_and_the_audit_log(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_skills(s, "cards")
    created = await client.post(
        "/api/queues",
        json={
            "name": "cards",
            "display_name": "Cards",
            "channels": ["chat", "voice"],
            "required_skills": {"cards": 2},
        },
        headers=sup,
    )
    assert created.status_code == 201, created.text
    queue = created.json()
    assert queue["offer_policy"] == "one_at_a_time" and queue["wrap_up_seconds"] == 60
    changed = await client.patch(
        f"/api/queues/{queue['id']}",
        json={"offer_timeout_seconds": 45, "wrap_up_seconds": 90, "offer_policy": "up_to_capacity"},
        headers=sup,
    )
    assert changed.status_code == 200, changed.text
    bad = await client.patch(f"/api/queues/{queue['id']}", json={"offer_timeout_seconds": 1}, headers=sup)
    assert bad.status_code == 422 and fields_of(bad) == ["body.offer_timeout_seconds"]
    unknown = await client.patch(f"/api/queues/{queue['id']}", json={"colour": "red"}, headers=sup)
    assert unknown.status_code == 422 and fields_of(unknown) == ["body.colour"]
    async with db.sessionmaker() as s:
        row = await s.scalar(select(Queue).where(Queue.name == "cards"))
        assert (row.offer_timeout_seconds, row.wrap_up_seconds) == (45, 90)
    (entry,) = await audit(db, "queue.updated")
    assert entry.data["before"] == {
        "offer_timeout_seconds": None,
        "wrap_up_seconds": 60,
        "offer_policy": "one_at_a_time",
    }
    assert entry.data["after"] == {
        "offer_timeout_seconds": 45,
        "wrap_up_seconds": 90,
        "offer_policy": "up_to_capacity",
    }


async def test_a_queue_with_interactions_is_not_deleted(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "cards")
        interaction = await make_interaction(s, customer=await make_customer(s))
        interaction.queue_id = queue.id
        await s.commit()
        empty = await make_queue(s, "spare")
    refused = await client.delete(f"/api/queues/{queue.id}", headers=sup)
    assert refused.status_code == 409 and "1 interaction belong to it" in refused.json()["detail"]
    assert (await client.delete(f"/api/queues/{empty.id}", headers=sup)).status_code == 204
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Queue)) == 1


async def test_agents_skills_teams_capacity_validated_changed_and_audited(db, client, make_user):
    user, _ = await make_user(Role.AGENT)
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_skills(s, "cards", "mortgages")
        await make_team(s, "east", display_name="East")
    body = {"user_id": str(user.id), "display_name": "Kim", "languages": ["en", "yue"], "teams": ["east"]}
    for patch, field in [
        ({"skills": {"cards": 7}}, "body.skills.cards"),
        ({"languages": ["English"]}, "body.languages.0"),
        ({"teams": ["west"]}, "teams"),
        ({"skills": {"karate": 2}}, "skills"),
        ({"channel_max": {"fax": 1}}, "channel_max"),
    ]:
        bad = await client.post("/api/agents", json={**body, **patch}, headers=sup)
        assert bad.status_code == 422 and fields_of(bad) == [field], (patch, bad.text)
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Agent)) == 0

    created = await client.post("/api/agents", json={**body, "skills": {"cards": 3}}, headers=sup)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["skills"] == {"cards": 3} and agent["channel_max"]["voice"] == 1
    again = await client.post("/api/agents", json=body, headers=sup)
    assert again.status_code == 409 and fields_of(again) == ["user_id"]

    changed = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"skills": {"cards": 4, "mortgages": 2}, "channel_max": {"voice": 1, "chat": 2}},
        headers=sup,
    )
    assert changed.status_code == 200 and changed.json()["skills"] == {"cards": 4, "mortgages": 2}
    (entry,) = await audit(db, "agent.updated")
    assert entry.data["before"]["skills"] == {"cards": 3}
    assert entry.data["after"]["skills"] == {"cards": 4, "mortgages": 2}
    assert entry.data["after"]["channel_max"] == {"voice": 1, "chat": 2}

    (team,) = (await client.get("/api/teams", headers=sup)).json()["items"]
    team_id = team["id"]
    assert team["lead_user_id"] is None
    nobody = await client.patch(f"/api/teams/{team_id}", json={"lead_user_id": str(agent["id"])}, headers=sup)
    assert nobody.status_code == 422 and fields_of(nobody) == ["lead_user_id"]  # an agent id, not a user's
    led = await client.patch(f"/api/teams/{team_id}", json={"lead_user_id": str(user.id)}, headers=sup)
    assert led.status_code == 200 and led.json()["lead_user_id"] == str(user.id)
    refused = await client.delete(f"/api/teams/{team_id}", headers=sup)
    assert refused.status_code == 409 and "1 agent is in it" in refused.json()["detail"]


async def test_a_signed_in_agent_is_not_deleted(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        agent = await make_agent(s, name="Busy", presence=Presence.AVAILABLE)
    refused = await client.delete(f"/api/agents/{agent.id}", headers=sup)
    assert refused.status_code == 409 and "signed in" in refused.json()["detail"]


async def test_pages_show_errors_at_their_field_and_save(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    html = {**sup, "accept": "text/html"}
    form = await client.get("/supervisor/queues/new", headers=html)
    assert form.status_code == 200 and '<label for="f-display_name">' in form.text
    bad = await client.post(
        "/supervisor/queues",
        data={"name": "cards", "display_name": "", "channels": "", "sl_target_percent": "abc"},
        headers=html,
    )
    assert bad.status_code == 422
    assert 'id="e-display_name"' in bad.text and 'id="e-channels"' in bad.text
    assert 'id="e-sl_target_percent"' in bad.text and 'aria-invalid="true"' in bad.text
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Queue)) == 0
    saved = await client.post(
        "/supervisor/queues",
        data={"name": "cards", "display_name": "Cards", "channels": ["", "chat"], "sl_target_percent": "90"},
        headers=html,
    )
    assert saved.status_code == 303, saved.text
    async with db.sessionmaker() as s:
        queue = await s.scalar(select(Queue))
    assert (queue.name, queue.channels, queue.sl_target_percent) == ("cards", ["chat"], 90)
    edit = await client.get(f"/supervisor/queues/{queue.id}/edit", headers=html)
    assert (
        'value="90"' in edit.text and 'id="f-channels-chat" name="channels" value="chat" checked' in edit.text
    )

    # The generic list page (skills): the saved row and its notice.
    made = await client.post(
        "/supervisor/skills", data={"name": "cards", "description": "Card work"}, headers=html
    )
    assert made.status_code == 303
    listed = await client.get(made.headers["location"], headers=html)
    assert "cards: saved." in listed.text and "Card work" in listed.text
