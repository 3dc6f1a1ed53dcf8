"""Outbound SMTP towards a relay that requires STARTTLS and AUTH: agent replies get through with the
right settings, and are refused (503, nothing stored) with wrong ones."""

# Fixtures are imported from email_fixtures and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from interactions.models import Interaction, Message
from interactions.states import State
from switchboard.settings import Settings
from tests.factories import walk_to
from tests.interactions.email_fixtures import listener, sink  # noqa: F401
from tests.interactions.email_fixtures import settings as email_settings  # noqa: F401
from tests.interactions.email_helpers import customer_email, smtp_send
from tests.interactions.relay_peer import RELAY_PASSWORD, RELAY_USER, SecureRelay, self_signed_cert


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[SecureRelay]:
    cert, key = self_signed_cert(tmp_path)
    server = SecureRelay(cert, key)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def relay_settings(email_settings: Settings, relay: SecureRelay) -> dict[str, object]:
    return {
        "smtp_out_port": relay.port,
        "smtp_out_starttls": True,
        "smtp_out_username": RELAY_USER,
        "smtp_out_password": SecretStr(RELAY_PASSWORD),
        "smtp_out_ca_file": relay.cert_path,
    }


@pytest.fixture
def settings(email_settings: Settings, relay_settings: dict[str, object], request) -> Settings:
    # Each test picks the relay configuration it needs through indirect parametrisation.
    overrides = dict(relay_settings)
    overrides.update(getattr(request, "param", {}))
    return email_settings.model_copy(update=overrides)


async def _connected_ticket(listener, session, agent) -> Interaction:
    assert (await smtp_send(listener.port, customer_email(subject="Card blocked")))[0] == 250
    interaction = await session.scalar(select(Interaction))
    await session.commit()
    return await walk_to(session, interaction, State.CONNECTED, agent_id=agent.id)


async def _agent_messages(session, interaction_id) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.interaction_id == interaction_id, Message.sender == "agent")
    )
    await session.commit()
    return int(count or 0)


async def test_reply_goes_through_starttls_and_auth(listener, relay, session, client, agent_user):
    _, headers, agent = await agent_user()
    interaction = await _connected_ticket(listener, session, agent)

    response = await client.post(
        f"/api/interactions/{interaction.id}/reply", json={"body": "It is unblocked."}, headers=headers
    )

    assert response.status_code == 201, response.text
    [sent] = relay.handler.messages
    assert sent.rcpt_tos == ("ann.lee@example.com",)
    assert sent.parsed().get_content().strip() == "It is unblocked."
    assert relay.auth_attempts == [("PLAIN", True)]
    assert await _agent_messages(session, interaction.id) == 1


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"smtp_out_password": SecretStr("wrong")}, "535"),
        ({"smtp_out_ca_file": None}, "CERTIFICATE_VERIFY_FAILED"),
    ],
    indirect=["settings"],
    ids=["wrong-password", "untrusted-certificate"],
)
async def test_relay_refusal_is_503_and_nothing_is_stored(listener, relay, session, client, agent_user, why):
    _, headers, agent = await agent_user()
    interaction = await _connected_ticket(listener, session, agent)

    response = await client.post(
        f"/api/interactions/{interaction.id}/reply", json={"body": "It is unblocked."}, headers=headers
    )

    assert response.status_code == 503, response.text
    assert why in response.json()["detail"]
    assert relay.handler.messages == []
    assert await _agent_messages(session, interaction.id) == 0


@pytest.mark.parametrize(
    "settings",
    [{"smtp_out_starttls": False, "smtp_out_username": None, "smtp_out_password": None}],
    indirect=True,
)
async def test_a_relay_requiring_starttls_refuses_a_plain_session(
    listener, relay, session, client, agent_user
):
    _, headers, agent = await agent_user()
    interaction = await _connected_ticket(listener, session, agent)

    response = await client.post(
        f"/api/interactions/{interaction.id}/reply", json={"body": "It is unblocked."}, headers=headers
    )

    assert response.status_code == 503, response.text
    assert "530" in response.json()["detail"]
    assert relay.handler.messages == []


def test_credentials_without_starttls_are_a_configuration_error():
    with pytest.raises(ValidationError, match="SMTP_OUT_STARTTLS"):
        Settings(smtp_out_username="switchboard", smtp_out_starttls=False)
