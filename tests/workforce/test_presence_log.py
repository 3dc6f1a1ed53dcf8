"""The presence log: each change of an agent's presence, by whoever made it, once; and the
stretches adherence reads from it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from switchboard.auth.models import Role
from switchboard.db import utcnow
from tests.factories import available_agent
from workforce.models import Presence
from workforce.presence_log import PresenceChange, Stretch, presence_stretches, record_presence


async def _log(db, agent_id):
    async with db.sessionmaker() as s:
        rows = (
            await s.execute(
                select(PresenceChange.presence, PresenceChange.reason, PresenceChange.by)
                .where(PresenceChange.agent_id == agent_id)
                .order_by(PresenceChange.id)
            )
        ).all()
        await s.commit()
    return [tuple(r) for r in rows]


async def test_the_agents_and_a_supervisors_changes_are_logged_once(db, client, make_user):
    agent_id, headers = await available_agent(db, make_user)
    _, supervisor = await make_user(Role.SUPERVISOR)
    lunch = {"presence": "break", "reason": "lunch"}
    assert (await client.post("/api/routing/presence", json=lunch, headers=headers)).status_code == 200
    assert (await client.post("/api/routing/presence", json=lunch, headers=headers)).status_code == 200
    back = {"presence": "available"}
    assert (await client.post("/api/routing/presence", json=back, headers=headers)).status_code == 200
    forced = {"presence": "training", "reason": "coaching"}
    response = await client.post(f"/api/supervisor/agents/{agent_id}/state", json=forced, headers=supervisor)
    assert response.status_code == 200, response.text
    assert await _log(db, agent_id) == [
        (Presence.BREAK, "lunch", "agent"),
        (Presence.AVAILABLE, None, "agent"),
        (Presence.TRAINING, "coaching", "supervisor"),
    ]


async def test_stretches_start_from_the_state_in_force_and_are_cut_to_the_window(db, make_user):
    agent_id, _ = await available_agent(db, make_user)
    t0 = utcnow().replace(microsecond=0) - timedelta(hours=3)
    changes = [
        (Presence.AVAILABLE, t0),
        (Presence.BREAK, t0 + timedelta(hours=1)),
        (Presence.AVAILABLE, t0 + timedelta(hours=1, minutes=30)),
        (Presence.OFFLINE, t0 + timedelta(hours=2, minutes=30)),
    ]
    async with db.sessionmaker() as s:
        for presence, at in changes:
            await record_presence(s, agent_id=agent_id, presence=presence, reason=None, at=at, by="agent")
        await s.commit()
        since, until = t0 + timedelta(minutes=30), t0 + timedelta(hours=2)
        stretches = (await presence_stretches(s, [agent_id], since=since, until=until))[agent_id]
        await s.commit()
    assert stretches == [
        Stretch(Presence.AVAILABLE, since, t0 + timedelta(hours=1)),
        Stretch(Presence.BREAK, t0 + timedelta(hours=1), t0 + timedelta(hours=1, minutes=30)),
        Stretch(Presence.AVAILABLE, t0 + timedelta(hours=1, minutes=30), until),
    ]
