"""Every bad input of issue #9 answers 4xx problem+json naming the field, and stores nothing:
control characters (switchboard.middleware.RequestGuard), integer and date bounds declared in the
schemas (switchboard.bounds), undecodable and too-deep JSON, the 15/30/60-minute history, and one
ticket per form submission however many parallel posts carry it (a unique index decides)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from customers.models import Customer
from interactions.email.models import EmailDetail
from interactions.models import Interaction, Message
from switchboard.app import create_app
from switchboard.auth.models import Role
from switchboard.errors import PROBLEM_JSON
from tests.factories import count_rows
from tests.interactions.email_fixtures import listener, settings, sink  # noqa: F401
from tests.interactions.email_helpers import customer_email, smtp_send

NUL = "\u0000"


def _problem(response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


async def _stored(db) -> list[int]:
    counts = []
    async with db.sessionmaker() as s:
        for model in (Interaction, Message, Customer):
            counts.append(int(await s.scalar(select(func.count()).select_from(model)) or 0))
        await s.commit()
    return counts


TICKET = {"email": "ann@example.org", "subject": "Card blocked", "message": "Please unblock my card today"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/tickets", {**TICKET, "message": f"Please unblock{NUL} my card"}, "body.message"),
        ("/api/tickets", {**TICKET, "name": f"Ann{NUL}"}, "body.name"),
        ("/api/tickets", {**TICKET, "subject": "Card \u001b[31mblocked"}, "body.subject"),  # ESC
        ("/chat/start", {"name": f"Visitor{NUL}"}, "body.name"),
    ],
)
async def test_control_characters_in_public_json_are_422_naming_the_field(client, db, path, body, field):
    before = await _stored(db)
    _problem(await client.post(path, json=body), 422, field)
    assert await _stored(db) == before


async def test_newlines_and_tabs_are_text(client):
    created = await client.post("/api/tickets", json={**TICKET, "message": "Line one\r\n\tLine two, thanks"})
    assert created.status_code == 201, created.text


async def test_control_characters_in_a_sign_in_form_and_a_query(client, make_user):
    _problem(
        await client.post("/api/auth/token", data={"username": f"ann{NUL}", "password": "x"}),
        422,
        "body.username",
    )
    _, headers = await make_user(Role.SUPERVISOR)
    _problem(
        await client.get("/api/interactions", params={"queue": f"retail{NUL}"}, headers=headers),
        422,
        "query.queue",
    )


async def test_control_characters_in_an_authenticated_create(client, db, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    before = await _stored(db)
    body = {
        "channel": "chat",
        "identity": {"kind": "email", "value": "ann@example.org"},
        "customer_name": f"A{NUL}n",
    }
    _problem(await client.post("/api/interactions", json=body, headers=headers), 422, "body.customer_name")
    body = {"channel": "chat", "identity": {"kind": "email", "value": f"ann{NUL}@example.org"}}
    _problem(await client.post("/api/interactions", json=body, headers=headers), 422, "body.identity.value")
    assert await _stored(db) == before


async def test_unpaired_surrogates_are_422_naming_the_field(client, db, make_user):
    """JSON may escape a lone UTF-16 surrogate (``"\\ud800"``) that no text column can store: a value
    reaching a free-form field (the attributes) used to be a 500 half-way through the write."""
    _, headers = await make_user(Role.SUPERVISOR)
    headers = {**headers, "Content-Type": "application/json"}
    before = await _stored(db)
    start = rb'{"channel": "chat", "identity": {"kind": "email", "value": "ann@example.org"}, '
    for attributes, field in (
        (rb'"attributes": {"note": "a\ud800b"}}', "body.attributes.note"),
        (rb'"attributes": {"\udc00": "x"}}', "body.attributes"),
    ):
        response = await client.post("/api/interactions", content=start + attributes, headers=headers)
        _problem(response, 422, field)
    ticket = rb'{"email": "ann@example.org", "subject": "Card \udbff", "message": "Please unblock it"}'
    _problem(
        await client.post("/api/tickets", content=ticket, headers={"Content-Type": "application/json"}),
        422,
        "body.subject",
    )
    assert await _stored(db) == before
    # A pair is one character (an emoji), not a surrogate.
    pair = rb'{"email": "ann@example.org", "subject": "Thanks \ud83d\ude00", "message": "Card is fine now"}'
    created = await client.post("/api/tickets", content=pair, headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text


async def test_invalid_utf8_is_400_before_authentication(client):
    for path in ("/api/interactions", "/api/tickets"):
        response = await client.post(
            path, content=b'{"channel": "chat\xff\xfe"}', headers={"Content-Type": "application/json"}
        )
        _problem(response, 400, "body")


async def test_deeply_nested_json_is_400(client, make_user):
    deep = "[" * 5000 + "]" * 5000
    for path in ("/api/tickets", "/chat/start"):
        response = await client.post(
            path, content=deep.encode(), headers={"Content-Type": "application/json"}
        )
        _problem(response, 400, "body")
    _, headers = await make_user(Role.SUPERVISOR)
    nested = json.dumps({"channel": "chat", "attributes": json.loads("[" * 100 + "]" * 100)})
    response = await client.post(
        "/api/interactions", content=nested.encode(), headers={**headers, "Content-Type": "application/json"}
    )
    _problem(response, 400, "body")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/api/routing/rule-sets/2147483648", None, "path.version"),
        ("POST", "/api/routing/rule-sets/2147483648/publish", None, "path.version"),
        ("POST", "/api/routing/rule-sets/rollback", {"to_version": 2**31}, "body.to_version"),
        ("GET", "/api/customers?offset=9223372036854775808", None, "query.offset"),
        (
            "GET",
            f"/api/interactions/{uuid.uuid4()}/messages?after_id=9223372036854775808",
            None,
            "query.after_id",
        ),
        (
            "GET",
            f"/api/interactions/{uuid.uuid4()}/timeline?before_id=9223372036854775808",
            None,
            "query.before_id",
        ),
        ("GET", "/api/interactions?created_after=0001-01-01T00:00:00%2B01:00", None, "query.created_after"),
        ("GET", "/api/interactions?created_before=9999-12-31T23:59:59-01:00", None, "query.created_before"),
        ("GET", "/api/routing/stats/history?start=0001-01-01T00:00:00%2B01:00", None, "query.start"),
        ("GET", "/api/audit?since=0001-01-01T00:00:00%2B01:00", None, "query.since"),
        ("GET", "/api/audit?until=9999-12-31T23:59:59-01:00", None, "query.until"),
        ("GET", "/api/audit/export.csv?since=0001-01-01T00:00:00%2B01:00", None, "query.since"),
    ],
)
async def test_integers_and_dates_beyond_the_columns_are_422(client, make_user, method, path, body, field):
    _, headers = await make_user(Role.SUPERVISOR)
    _problem(await client.request(method, path, json=body, headers=headers), 422, field)


async def test_bounds_are_in_the_openapi_document(client):
    spec = (await client.get("/openapi.json")).json()

    def param(path: str, method: str, name: str) -> dict:
        return next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name)["schema"]

    assert param("/api/routing/rule-sets/{version}", "get", "version")["maximum"] == 2**31 - 1
    assert param("/api/customers", "get", "offset")["maximum"] == 2**63 - 1
    after = param("/api/interactions/{interaction_id}/messages", "get", "after_id")
    assert any(s.get("maximum") == 2**63 - 1 for s in after.get("anyOf", [after]))
    bounded_dates = (("/api/interactions", "created_after"), ("/api/audit", "since"), ("/api/audit", "until"))
    for path, name in bounded_dates:
        bounded = param(path, "get", name)
        assert any("formatMinimum" in s for s in bounded.get("anyOf", [bounded])), (path, name)
    interval = param("/api/routing/stats/history", "get", "interval_minutes")
    assert sorted(interval.get("enum") or spec["components"]["schemas"]["HistoryInterval"]["enum"]) == [
        15,
        30,
        60,
    ]


@pytest.mark.parametrize("minutes", [15, 30, 60])
async def test_history_in_15_30_and_60_minute_intervals(client, make_user, minutes):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get(
        "/api/routing/stats/history",
        params={"interval_minutes": minutes, "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    _problem(
        await client.get("/api/routing/stats/history", params={"interval_minutes": 20}, headers=headers),
        422,
        "query.interval_minutes",
    )


async def test_one_submission_posted_8_times_in_parallel_stores_one_ticket(
    settings,  # noqa: F811
    db,
    redis_handle,
    redis_sync,
):
    # Eight posts are more than one contact's intake allows (6 an hour, counted atomically): the
    # throttle is not what this proves, the unique index is.
    roomy = settings.model_copy(update={"throttle_intake_per_contact": "8/hour"})
    app = create_app(roomy, redis_handle=redis_handle)
    submission = str(uuid.uuid4())
    body = {**TICKET, "submission_id": submission}

    async def post() -> int:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
            return (await c.post("/api/tickets", json=body)).status_code

    async with app.router.lifespan_context(app):
        statuses = await asyncio.gather(*(post() for _ in range(8)))
    assert sorted(statuses) == [200] * 7 + [201], statuses
    async with db.sessionmaker() as s:
        tickets = await s.scalar(select(func.count()).select_from(Interaction))
        details = list(await s.scalars(select(EmailDetail.submission_id)))
        await s.commit()
    assert tickets == 1 and details == [uuid.UUID(submission)]


async def test_smtp_message_with_nul_is_refused_plainly(listener, session, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    before = await count_rows(session)
    email = customer_email(subject="Blocked card", body=f"secret words{NUL} of the customer")
    code, reply = await smtp_send(listener.port, email)
    assert code == 554 and "control characters" in reply, reply
    assert await count_rows(session) == before
    assert "Traceback" not in caplog.text and "secret words" not in caplog.text
