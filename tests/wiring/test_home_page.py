from __future__ import annotations

import json

from routing.host import stats_key
from switchboard.auth.models import Role


async def test_supervisor_overview_shows_live_queue_figures(client, app, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    snapshot = {
        "at": "2026-11-23T10:00:00+00:00",
        "queues": {
            "cards": {
                "waiting": 7,
                "longest_wait_seconds": 42.0,
                "offered": 3,
                "accepted": 2,
                "rejected": 1,
                "missed": 0,
                "abandoned": 1,
                "service_level": 0.5,
            }
        },
        "agents_by_presence": {"available": 4, "busy": 2},
        "totals": {},
    }
    await app.state.redis_client.set(stats_key(), json.dumps(snapshot))
    page = await client.get("/supervisor", headers=headers)
    assert page.status_code == 200
    assert "Queues now" in page.text and "cards" in page.text and "50.0 %" in page.text


async def test_agent_is_sent_to_the_desktop(client, make_user):
    _, headers = await make_user(Role.AGENT)
    response = await client.get("/", headers=headers)
    assert response.status_code == 303 and response.headers["location"] == "/desktop"
