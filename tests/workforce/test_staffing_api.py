"""``POST /api/workforce/staffing`` and the console's staffing page (issue #13 item 2)."""

from __future__ import annotations

import pytest

from switchboard.auth.models import Role

BODY = {
    "contacts": 100,
    "interval_minutes": 30,
    "aht_seconds": 180,
    "service_level_target": 0.8,
    "target_answer_seconds": 20,
    "shrinkage": 0.3,
    "patience_seconds": None,
    "agents": None,
}


async def test_fewest_agents_and_a_given_number(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    found = await client.post("/api/workforce/staffing", json=BODY, headers=headers)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["model"] == "erlang_c" and body["agents"] == 14 and body["scheduled_agents"] == 20
    assert body["probability_of_waiting"] == pytest.approx(0.1741, abs=1e-4)
    assert body["service_level"] == pytest.approx(0.8884, abs=1e-4)
    assert body["abandon_rate"] == 0
    given = await client.post("/api/workforce/staffing", json={**BODY, "agents": 12}, headers=headers)
    assert given.json()["agents"] == 12 and given.json()["service_level"] == pytest.approx(0.6402, abs=1e-4)
    erlang_a = await client.post(
        "/api/workforce/staffing", json={**BODY, "patience_seconds": 120}, headers=headers
    )
    assert erlang_a.json()["model"] == "erlang_a" and 0 < erlang_a.json()["abandon_rate"] < 0.1
    assert erlang_a.json()["agents"] <= 14
    overloaded = await client.post("/api/workforce/staffing", json={**BODY, "agents": 9}, headers=headers)
    assert overloaded.json()["asa_seconds"] is None and overloaded.json()["service_level"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"service_level_target": 1.2}, "service_level_target"),
        ({"service_level_target": 1.0}, "service_level_target"),
        ({"contacts": -5}, "contacts"),
        ({"aht_seconds": 0}, "aht_seconds"),
        ({"shrinkage": 1}, "shrinkage"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"patience_seconds": -1}, "patience_seconds"),
        ({"agents": -1}, "agents"),
        ({"contacts": "many"}, "contacts"),
        ({"surprise": 1}, "surprise"),
        ({"contacts": 1_000_000, "aht_seconds": 86_400, "interval_minutes": 1}, "contacts"),
        ({"target_answer_seconds": 86_400}, "target_answer_seconds"),
        (
            {
                "contacts": 1_000_000,
                "interval_minutes": 60,
                "aht_seconds": 60,
                "patience_seconds": 3600,
                "agents": 5000,
            },
            "patience_seconds",
        ),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(client, make_user, change, field):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/workforce/staffing", json={**BODY, **change}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


async def test_agents_may_not_use_the_calculator(client, make_user):
    _, headers = await make_user(Role.AGENT)
    assert (await client.post("/api/workforce/staffing", json=BODY, headers=headers)).status_code == 403
    assert (await client.post("/api/workforce/staffing", json=BODY)).status_code == 401


async def test_the_page_answers_and_shows_errors_inline(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    empty = await client.get("/supervisor/workforce/staffing", headers=headers)
    assert empty.status_code == 200 and 'id="staffing-form"' in empty.text
    query = {k: ("" if v is None else v) for k, v in BODY.items()}
    page = await client.get("/supervisor/workforce/staffing", params=query, headers=headers)
    assert page.status_code == 200
    assert "14 agents on the phones, 20 scheduled" in page.text
    assert "data-chart=" in page.text and "/static/vendor/chart.umd.min.js" in page.text
    bad = await client.get(
        "/supervisor/workforce/staffing", params={**query, "service_level_target": "2"}, headers=headers
    )
    assert bad.status_code == 422
    assert 'id="e-service_level_target"' in bad.text and 'aria-invalid="true"' in bad.text
