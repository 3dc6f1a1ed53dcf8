"""``/api/workforce/forecast``, its overrides and the holiday list (issue #13 item 1), on
interaction history written to the real database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import make_queue
from tests.workforce.history import AHT_S, HORIZON, LONDON, seed_history


def params(**extra: object) -> dict[str, object]:
    return {"queue": "cards", "channel": "voice", "history_weeks": 4, "start": HORIZON.isoformat(), **extra}


async def test_forecast_backtest_requirement_and_an_audited_override(client, db, make_user, redis_sync):
    total = await seed_history(db)
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get("/api/workforce/forecast", params=params(), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["history_contacts"] == total
    assert body["aht_seconds"] == pytest.approx(AHT_S, abs=0.5) and body["aht_source"] == "history"
    assert body["time_zone"] == "Europe/London" and len(body["intervals"]) == 7 * 48
    # The history repeats one week exactly: the forecast is that week and the backtest near perfect.
    by_start = {datetime.fromisoformat(i["start"]): i for i in body["intervals"]}
    noon = datetime(2026, 11, 4, 12, tzinfo=LONDON).astimezone(UTC)
    assert by_start[noon]["forecast"] == pytest.approx(10, rel=0.02)
    assert by_start[datetime(2026, 11, 7, 12, tzinfo=LONDON).astimezone(UTC)]["forecast"] == 0
    assert (
        body["backtest"]["weeks"] == 2 and body["backtest"]["wape"] < 0.02 and body["backtest"]["mape"] < 0.02
    )
    assert abs(body["weekly_growth"]) < 0.01
    # Requirement: Erlang C at 80 % in 20 s for 10 contacts × 240 s per 30 minutes.
    assert by_start[noon]["agents"] == 3 and by_start[noon]["scheduled_agents"] == 5
    assert redis_sync.keys("wfm:forecast:*"), "the model's output is cached"

    put = await client.put(
        "/api/workforce/forecast/overrides",
        json={
            "queue": "cards",
            "channel": "voice",
            "interval_minutes": 30,
            "interval_start": noon.isoformat(),
            "contacts": 60,
            "reason": "mailing lands",
        },
        headers=headers,
    )
    assert put.status_code == 200, put.text
    again = (await client.get("/api/workforce/forecast", params=params(), headers=headers)).json()
    row = next(i for i in again["intervals"] if datetime.fromisoformat(i["start"]) == noon)
    assert row["override"] == 60 and row["override_reason"] == "mailing lands" and row["contacts"] == 60
    assert row["forecast"] == pytest.approx(10, rel=0.02)  # the model's figure stays beside it
    assert row["agents"] > 3 * 3
    async with db.sessionmaker() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "forecast.override_set"))
    assert entry is not None and entry.data["after"] == {"contacts": 60, "reason": "mailing lands"}

    gone = await client.delete(
        "/api/workforce/forecast/overrides",
        params={
            "queue": "cards",
            "channel": "voice",
            "interval_minutes": 30,
            "interval_start": noon.isoformat(),
        },
        headers=headers,
    )
    assert gone.status_code == 204, gone.text
    after = (await client.get("/api/workforce/forecast", params=params(), headers=headers)).json()
    assert (
        next(i for i in after["intervals"] if datetime.fromisoformat(i["start"]) == noon)["override"] is None
    )


async def test_a_holiday_is_listed_audited_and_forecast_closed_without_history(client, db, make_user):
    await seed_history(db)
    _, headers = await make_user(Role.SUPERVISOR)
    added = await client.post(
        "/api/workforce/holidays", json={"day": "2026-11-03", "name": "Bank holiday"}, headers=headers
    )
    assert added.status_code == 201, added.text
    assert (await client.get("/api/workforce/holidays", headers=headers)).json() == [
        {"day": "2026-11-03", "name": "Bank holiday"}
    ]
    body = (await client.get("/api/workforce/forecast", params=params(), headers=headers)).json()
    assert body["closed_holidays"] == ["2026-11-03"] and body["holiday_factor"] is None
    tuesday = [i for i in body["intervals"] if i["start"].startswith("2026-11-03")]
    assert sum(i["forecast"] for i in tuesday) == 0
    assert (await client.delete("/api/workforce/holidays/2026-11-03", headers=headers)).status_code == 204
    async with db.sessionmaker() as s:
        actions = list(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "forecast_holiday"))
        )
    assert sorted(actions) == ["forecast.holiday_added", "forecast.holiday_removed"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"history_weeks": 40}, "history_weeks"),
        ({"history_weeks": 1}, "history_weeks"),
        ({"horizon_days": 90}, "horizon_days"),
        ({"interval_minutes": 20}, "interval_minutes"),
        ({"backtest_weeks": 4}, "backtest_weeks"),
        ({"queue": "nope"}, "queue"),
        ({"channel": "fax"}, "channel"),
        ({"shrinkage": 1}, "shrinkage"),
        ({"aht_seconds": 0}, "aht_seconds"),
    ],
)
async def test_bad_forecast_input_is_422_naming_the_field(client, db, make_user, change, field):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get("/api/workforce/forecast", params=params(**change), headers=headers)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f == field or f.endswith("." + field) for f in fields), fields


async def test_no_history_and_misaligned_override_are_422(client, db, make_user):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    _, headers = await make_user(Role.SUPERVISOR)
    empty = await client.get("/api/workforce/forecast", params=params(), headers=headers)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "queue"
    crooked = await client.put(
        "/api/workforce/forecast/overrides",
        json={
            "queue": "cards",
            "channel": "voice",
            "interval_minutes": 30,
            "interval_start": "2026-11-02T09:10:00+00:00",
            "contacts": 5,
        },
        headers=headers,
    )
    assert crooked.status_code == 422 and crooked.json()["errors"][0]["field"] == "interval_start"
    _, agent_headers = await make_user(Role.AGENT)
    denied = await client.get("/api/workforce/forecast", params=params(), headers=agent_headers)
    assert denied.status_code == 403


async def test_a_window_longer_than_the_queue_s_history_reads_from_its_first_contact(client, db, make_user):
    """Eight weeks asked, four weeks of traffic: the four empty weeks are before the queue had any
    (not a growth from nothing), and the answer says which history was read."""
    await seed_history(db)
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get("/api/workforce/forecast", params=params(history_weeks=8), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert datetime.fromisoformat(body["history_start"]) == datetime(2026, 9, 7, tzinfo=LONDON)
    assert datetime.fromisoformat(body["history_used_from"]) == datetime(2026, 10, 5, tzinfo=LONDON)
    assert abs(body["weekly_growth"]) < 0.01
    noon = datetime(2026, 11, 4, 12, tzinfo=LONDON).astimezone(UTC)
    by_start = {datetime.fromisoformat(i["start"]): i for i in body["intervals"]}
    assert by_start[noon]["forecast"] == pytest.approx(10, rel=0.02)
