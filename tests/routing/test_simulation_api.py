"""``/api/workforce/simulations`` and the console page ``/supervisor/workforce/simulation`` (issue
#13 item 6): a comparison runs as an RQ job on the real worker process; bad input is a 422 naming
the field; supervisors only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from routing import service as routing_service
from switchboard.auth.models import Role
from tests.factories import make_agent, make_queue
from tests.workers import run_burst_worker
from workforce.models import QueueMember

RULES: dict[str, Any] = {
    "version": 0,
    "filters": [
        {
            "name": "gold-first",
            "when": 'customer.tier == "gold"',
            "steps": [
                {"queue": "cards", "priority": 5, "timeout_seconds": 30},
                {"queue": "retail", "priority": 6},
            ],
        }
    ],
    "default_filter": {"name": "default", "steps": [{"queue": "retail"}]},
    "on_final_timeout": "callback",
}


def body(**change: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "queues": [
            {"name": "retail", "required_skills": {"retail_banking": 1}},
            {"name": "cards", "required_skills": {"cards": 1}},
        ],
        "roster": [
            {"name": "r", "count": 4, "skills": {"retail_banking": 3}},
            {"name": "c", "count": 2, "skills": {"cards": 4, "retail_banking": 1}},
        ],
        "traffic": {
            "interval_minutes": 30,
            "volumes": [40, 60, 50],
            "classes": [
                {"share": 3, "tier": "standard", "queue": "retail", "needs_skill": "retail_banking"},
                {"share": 1, "tier": "gold", "queue": "cards", "needs_skill": "cards"},
            ],
            "handle_seconds": {"voice": 120},
            "patience_seconds": {"voice": 120},
        },
        "resolution": {},
        "seed": 3,
        "sides": [
            {"label": "Tiered", "rule_set": RULES},
            {"label": "Queues, fewer agents", "staffing_percent": 50},
        ],
    }
    request.update(change)
    return request


async def test_a_comparison_runs_as_a_job_on_the_same_traffic(client, make_user, settings):
    _, headers = await make_user(Role.SUPERVISOR)
    created = await client.post("/api/workforce/simulations", json=body(), headers=headers)
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] == "queued" and job["progress"] == 0 and created.headers["location"] == job["url"]
    queued = await client.get(job["url"], headers=headers)
    assert queued.status_code == 200 and queued.json()["status"] == "queued"

    await run_burst_worker(settings)
    done = (await client.get(job["url"], headers=headers)).json()
    assert done["status"] == "finished", done
    assert done["progress"] == 1.0
    result = done["result"]
    tiered, smaller = result["sides"]
    assert (tiered["label"], tiered["rule_set"], tiered["agents"]) == ("Tiered", "written for the run", 6)
    assert (smaller["rule_set"], smaller["agents"]) == ("each class to its queue", 3)
    # The same customers on both sides.
    assert tiered["result"]["contacts"] == smaller["result"]["contacts"] == result["contacts"] > 100
    for side in (tiered, smaller):
        overall = side["result"]["overall"]
        assert overall["offered"] == result["contacts"]
        assert overall["answered"] + overall["abandoned"] + overall["diverted"] == overall["offered"]
        assert 0 <= overall["service_level"] <= 1 and overall["first_contact_resolution"] is not None
        assert set(side["result"]["by_tier"]) == {"gold", "standard"}
        assert len(side["result"]["by_interval"]) == 3
    assert tiered["result"]["overall"]["service_level"] > smaller["result"]["overall"]["service_level"]
    assert tiered["result"]["escalations"] > 0  # gold work moved on from cards after 30 s


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"traffic": {**body()["traffic"], "volumes": [10, -1]}}, "volumes"),
        ({"traffic": {**body()["traffic"], "volumes": [300_001]}}, "volumes"),
        ({"traffic": {**body()["traffic"], "handle_seconds": {"fax": 10}}}, "handle_seconds"),
        ({"traffic": {**body()["traffic"], "handle_seconds": {"voice": 0}}}, "handle_seconds"),
        ({"sides": []}, "sides"),
        ({"sides": [{"label": "x"}] * 3}, "sides"),
        ({"sides": [{"label": "x", "staffing_percent": 0}]}, "staffing_percent"),
        ({"sides": [{"label": "x", "rule_set_version": 99}]}, "sides.0.rule_set_version"),
        (
            {
                "sides": [
                    {
                        "label": "x",
                        "rule_set": {
                            **RULES,
                            "default_filter": {"name": "d", "steps": [{"queue": "nowhere"}]},
                        },
                    }
                ]
            },
            "sides.0.rule_set",
        ),
        ({"roster": [{"name": "r", "count": 5001}]}, "count"),
        ({"seed": -1}, "seed"),
        ({"resolution": {"by_proficiency": [0.5] * 5}}, "by_proficiency"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(client, make_user, change, field):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/workforce/simulations", json=body(**change), headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


async def test_classes_need_a_queue_when_no_rules_route_them(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    traffic = {**body()["traffic"], "classes": [{"tier": "gold"}]}
    response = await client.post(
        "/api/workforce/simulations", json=body(traffic=traffic, sides=[{"label": "x"}]), headers=headers
    )
    assert response.status_code == 422 and "traffic.classes.0.queue" in response.text


async def test_supervisors_only_and_unknown_jobs(client, make_user):
    _, agent = await make_user(Role.AGENT)
    assert (await client.post("/api/workforce/simulations", json=body(), headers=agent)).status_code == 403
    assert (await client.post("/api/workforce/simulations", json=body())).status_code == 401
    _, headers = await make_user(Role.SUPERVISOR)
    missing = await client.get("/api/workforce/simulations/no-such-job", headers=headers)
    assert missing.status_code == 404 and "job_id" in missing.text
    for odd in ("rq:job:x", "%C3%BC", "x" * 65, "a.b"):  # the fuzz run found a 500 here
        assert (await client.get(f"/api/workforce/simulations/{odd}", headers=headers)).status_code == 404


async def test_the_page_runs_a_comparison_and_shows_it(client, make_user, settings, db):
    async with db.sessionmaker() as s:
        queue = await make_queue(s, name="retail", channels=["voice", "chat"])
        for n in range(3):
            agent = await make_agent(s, name=f"Sim {n}")
            s.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
        await s.commit()
        rules = {**RULES, "filters": [], "default_filter": {"name": "d", "steps": [{"queue": "retail"}]}}
        rules.pop("version")
        rules["filters"] = [
            {"name": "gold", "when": 'customer.tier == "gold"', "steps": [{"queue": "retail", "priority": 3}]}
        ]
        draft = await routing_service.create_draft(
            s, body=rules, comment="for the simulation test", actor_id=None
        )
        await routing_service.publish(s, version=draft.version, actor_id=None)
        await s.commit()
    _, headers = await make_user(Role.SUPERVISOR)
    page = await client.get("/supervisor/workforce/simulation", headers=headers)
    assert page.status_code == 200 and 'id="simulation-form"' in page.text
    assert f'<option value="{draft.version}" selected>Version {draft.version} (live)</option>' in page.text
    # A bearer token, not a session cookie: no CSRF token is needed (or rendered).
    found = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
    token = found.group(1) if found else ""
    form = {
        "csrf_token": token,
        "a_label": "Today",
        "a_rules": str(draft.version),
        "a_staffing": "100",
        "b_label": "One more",
        "b_rules": "none",
        "b_staffing": "134",
        "volumes": "20, 30, 20",
        "interval_minutes": "30",
        "seed": "5",
        "handle_voice": "200",
        "handle_chat": "400",
        "handle_email": "900",
        "patience_voice": "120",
        "patience_chat": "",
        "tier_platinum": "5",
        "tier_gold": "15",
        "tier_silver": "30",
        "tier_standard": "50",
        "resolution": "on",
    }
    bad = await client.post(
        "/supervisor/workforce/simulation", data={**form, "volumes": "a, b"}, headers=headers
    )
    assert bad.status_code == 422 and 'id="e-volumes"' in bad.text
    ran = await client.post("/supervisor/workforce/simulation", data=form, headers=headers)
    assert ran.status_code == 303, ran.text
    job_id = ran.headers["location"].split("job=")[1]
    shown = await client.get(ran.headers["location"], headers=headers)
    assert f"/supervisor/workforce/simulation/jobs/{job_id}" in shown.text
    assert 'value="20, 30, 20"' in shown.text  # the form shows what was run
    waiting = await client.get(f"/supervisor/workforce/simulation/jobs/{job_id}", headers=headers)
    assert "<progress" in waiting.text and 'hx-trigger="load delay:1s"' in waiting.text
    await run_burst_worker(settings)
    done = await client.get(f"/supervisor/workforce/simulation/jobs/{job_id}", headers=headers)
    assert done.status_code == 200
    assert (
        'id="simulation-table"' in done.text and "data-chart=" in done.text and "hx-trigger" not in done.text
    )
    assert "Today" in done.text and "One more" in done.text and "4 agents" in done.text
    assert f"version {draft.version}, 3 agents" in done.text


async def test_the_page_simulates_the_forecast_for_a_day(client, make_user, settings, db):
    """Traffic from the forecast (issue #13 item 1): each queue and channel with history arrives
    on its forecast for the day; the run covers the day's intervals from local midnight."""
    from datetime import UTC, datetime, timedelta

    from tests.workforce.history import HORIZON, LONDON, seed_history, weekday_volume

    await seed_history(db, weeks=4, queue="cards")
    async with db.sessionmaker() as s:
        queue = await make_queue(s, name="cards")
        for n in range(4):
            agent = await make_agent(s, name=f"Carder {n}")
            s.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
        await s.commit()
    _, headers = await make_user(Role.SUPERVISOR)
    page = await client.get("/supervisor/workforce/simulation", headers=headers)
    form = {
        **{k: v for k, v in re.findall(r'name="([a-z_]+)" value="([^"]*)"', page.text)},
        "forecast_day": HORIZON.isoformat(),
        "volumes": "",
        "a_rules": "none",
        "b_rules": "none",
    }
    form.pop("csrf_token", None)
    ran = await client.post("/supervisor/workforce/simulation", data=form, headers=headers)
    assert ran.status_code == 303, ran.text
    job_url = "/api/workforce/simulations/" + ran.headers["location"].split("job=")[1]
    await run_burst_worker(settings)
    done = (await client.get(job_url, headers=headers)).json()
    assert done["status"] == "finished", done
    side = done["result"]["sides"][0]
    intervals = side["result"]["by_interval"]
    assert len(intervals) == 48  # the day in half hours, from local midnight
    # As many contacts as the forecast says (the queue's voice forecast; chat has no history).
    forecast = await client.get(
        "/api/workforce/forecast",
        params={"queue": "cards", "channel": "voice", "start": HORIZON.isoformat(), "horizon_days": 1},
        headers=headers,
    )
    expected = forecast.json()["contacts_total"]
    assert abs(done["result"]["contacts"] - expected) < 4 * expected**0.5
    midnight = datetime.combine(HORIZON, datetime.min.time(), tzinfo=LONDON).astimezone(UTC)
    assert weekday_volume((midnight + timedelta(hours=3)).astimezone(LONDON)) == 0
    # Nothing arrives at night (the history has none), the daytime peak does.
    assert sum(row["offered"] for row in intervals[:16]) == 0
    assert max(range(48), key=lambda k: intervals[k]["offered"]) in range(20, 30)

    bad = await client.post(
        "/supervisor/workforce/simulation", data={**form, "forecast_day": "tomorrow"}, headers=headers
    )
    assert bad.status_code == 422 and 'id="e-forecast_day"' in bad.text
