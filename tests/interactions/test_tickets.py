"""Web tickets: the public JSON endpoint and the /support/new form."""

# Fixtures are imported from email_fixtures and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from interactions.models import Interaction, Message
from interactions.states import Channel, State
from switchboard.commands import stream_key
from tests.factories import count_rows, walk_to
from tests.interactions.email_fixtures import settings, sink  # noqa: F401

PROBLEM_JSON = "application/problem+json"
GOOD = {
    "name": "Wang Fang",
    "email": "Wang.Fang@Example.com",
    "subject": "Statement missing",
    "message": "My March statement never arrived.",
}


async def test_api_ticket_is_created_queued_and_routed(client, session, redis_sync):
    response = await client.post("/api/tickets", json=GOOD)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "reference", "channel"} and body["channel"] == "ticket"
    interaction = await session.get(Interaction, uuid.UUID(body["id"]))
    assert interaction is not None and interaction.channel is Channel.TICKET
    assert interaction.state is State.QUEUED and interaction.subject == "Statement missing"
    assert interaction.contact_identity == {"kind": "email", "value": "wang.fang@example.com"}
    assert body["reference"] == "SB-" + interaction.id.hex[:8].upper()
    [message] = list(await session.scalars(select(Message).where(Message.interaction_id == interaction.id)))
    assert message.body == GOOD["message"] and message.external_id is not None
    commands = [json.loads(fields[b"c"]) for _, fields in redis_sync.xrange(stream_key())]
    assert commands[-1]["interaction_id"] == body["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-address"}, "body.email"),
        ({"email": None}, "body.email"),
        ({"subject": "x"}, "body.subject"),
        ({"message": ""}, "body.message"),
        ({"message": "y" * 10_001}, "body.message"),
        ({"priority": 100}, "body.priority"),
    ],
)
async def test_api_bad_input_is_422_naming_the_field_and_writes_nothing(client, session, change, field):
    before = await count_rows(session)
    payload = {k: v for k, v in {**GOOD, **change}.items() if v is not None}

    response = await client.post("/api/tickets", json=payload)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await count_rows(session) == before


async def test_api_repeated_submission_id_files_one_ticket(client, session):
    payload = {**GOOD, "submission_id": str(uuid.uuid4())}
    first = await client.post("/api/tickets", json=payload)
    again = await client.post("/api/tickets", json=payload)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    # The same id under another address is refused, never answered with her ticket.
    other = await client.post("/api/tickets", json={**payload, "email": "eve@attacker.example"})
    assert other.status_code == 409 and other.json()["errors"][0]["field"] == "submission_id"
    assert (await count_rows(session))["interactions"] == 1


async def test_form_page_renders_labelled_fields(client):
    response = await client.get("/support/new")

    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    page = response.text
    for field in ("name", "email", "subject", "message"):
        assert f'<label for="{field}">' in page and f'id="{field}"' in page
    assert 'name="submission_id"' in page


async def test_form_bad_input_re_renders_naming_the_field_and_writes_nothing(client, session):
    before = await count_rows(session)
    form = {**GOOD, "email": "wang at example", "name": "<script>alert(1)</script>"}

    response = await client.post("/support/new", data=form)

    assert response.status_code == 422 and "text/html" in response.headers["content-type"]
    page = response.text
    assert "Email address is not valid" in page
    assert 'id="email" name="email" type="email" value="wang at example"' in page
    assert 'aria-invalid="true" aria-describedby="email-error"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # escaped, kept
    assert await count_rows(session) == before


async def test_form_missing_fields_are_each_named(client, session):
    response = await client.post("/support/new", data={"email": "a@example.com"})

    assert response.status_code == 422
    assert "Subject is required." in response.text and "Your message is required." in response.text


async def test_form_submission_confirms_with_the_reference(client, session):
    page = await client.get("/support/new")
    submission_id = page.text.split('name="submission_id" value="')[1].split('"')[0]

    response = await client.post("/support/new", data={**GOOD, "submission_id": submission_id})
    again = await client.post("/support/new", data={**GOOD, "submission_id": submission_id})

    assert response.status_code == 200
    interaction = await session.scalar(select(Interaction))
    assert interaction is not None and interaction.channel is Channel.TICKET
    reference = "SB-" + interaction.id.hex[:8].upper()
    assert reference in response.text and "wang.fang@example.com" in response.text.lower()
    assert again.status_code == 200 and reference in again.text  # a refresh files nothing new
    assert (await count_rows(session))["interactions"] == 1


async def test_agent_reply_to_a_web_ticket_threads_to_its_first_message(client, session, sink, agent_user):
    _, headers, agent = await agent_user()
    created = (await client.post("/api/tickets", json=GOOD)).json()
    interaction = await session.get(Interaction, uuid.UUID(created["id"]))
    first = await session.scalar(select(Message.external_id).where(Message.interaction_id == interaction.id))
    await session.commit()
    await walk_to(session, interaction, State.CONNECTED, agent_id=agent.id)

    response = await client.post(
        f"/api/interactions/{created['id']}/reply", json={"body": "Here it is."}, headers=headers
    )

    assert response.status_code == 201, response.text
    sent = sink.messages[-1].parsed()
    assert sent["To"] == "wang.fang@example.com" and sent["In-Reply-To"] == first
