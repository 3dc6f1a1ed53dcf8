"""Chat identity (interactions.chat_verify): a visitor who types a phone number or email is never
told whose it is and never linked to that profile until they prove it with a one-time code sent
to the registered contact (email by the relay, SMS by the carrier) or sign in through the bank's
app; the proof is on the customer's timeline."""

# The sink fixture is imported from email_fixtures and requested by name (ruff reads a redefinition).
# ruff: noqa: F811

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from customers.models import Customer, Identity, IdentityKind
from customers.service import link_identity
from demo.carrier import FakeCarrierApi
from interactions import chat
from interactions.models import Interaction, TimelineEvent
from switchboard import security
from switchboard.security import issue_token
from tests.factories import make_customer, make_queue
from tests.interactions.email_fixtures import sink  # noqa: F401

PHONE = "07400 155501"
EMAIL = "ada.lovelace@example.com"
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
async def carrier() -> AsyncIterator[FakeCarrierApi]:
    api = FakeCarrierApi(account_sid="AC" + "1" * 32, auth_token="carrier-token")
    api.base_url = await api.start()  # type: ignore[attr-defined]
    yield api
    await api.stop()


@pytest.fixture
def settings(settings, sink, carrier):  # noqa: F811 - conftest's settings: mail to the sink, SMS to the carrier
    return settings.model_copy(
        update={
            "smtp_out_host": "127.0.0.1",
            "smtp_out_port": sink.port,
            "carrier_api_url": carrier.base_url,
            "carrier_account_sid": carrier.account_sid,
            "carrier_auth_token": carrier.auth_token,
        }
    )


async def _ada(db) -> Customer:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
        ada = await make_customer(
            s, phone=PHONE, display_name="Ada Lovelace", relationship_balance=250_000, segments=["private"]
        )
        await link_identity(
            s, customer_id=ada.id, kind=IdentityKind.EMAIL, raw_value=EMAIL, default_region="GB"
        )
        await s.commit()
        return ada


async def _start(client, **body) -> dict:
    response = await client.post("/chat/start", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _chat_headers(started: dict) -> dict[str, str]:
    return {"X-Chat-Token": started["token"]}


async def test_a_typed_contact_reveals_nothing_and_links_nothing(client, db) -> None:
    ada = await _ada(db)
    for contact in (PHONE, EMAIL):
        started = await _start(client, name="Someone", contact=contact)
        assert "customer_name" not in started and "returning" not in started
        assert "Ada" not in str(started) and "Lovelace" not in str(started)
        assert started["identity"] == "unverified" and started["can_verify"] is True
        async with db.sessionmaker() as s:
            it = await s.get(Interaction, uuid.UUID(started["interaction_id"]))
            assert it.customer_id != ada.id  # never Ada's profile, history or tier
            assert it.attributes["identity"] == "unverified"
            assert it.attributes["claimed_contact"]["value"] in ("+447400155501", EMAIL)
            # Ada's identities are untouched: no link from the typed contact to this chat.
            owners = (
                await s.scalars(select(Identity.customer_id).where(Identity.customer_id == it.customer_id))
            ).all()
            assert ada.id not in owners
            await s.commit()
    # The same answer for a contact nobody has: no enumeration.
    stranger = await _start(client, name="Someone", contact="stranger@example.com")
    assert set(stranger) == set(started)


async def test_email_code_verifies_and_is_on_the_timeline(client, db, sink) -> None:
    ada = await _ada(db)
    started = await _start(client, name="Ada", contact=EMAIL)
    chat_id = started["interaction_id"]
    sent = await client.post(f"/chat/{chat_id}/verify/send", headers=_chat_headers(started))
    assert sent.status_code == 202, sent.text
    assert len(sink.messages) == 1 and sink.messages[0].rcpt_tos == (EMAIL,)
    code = CODE.search(sink.messages[0].parsed().get_content()).group(1)
    wrong = await client.post(
        f"/chat/{chat_id}/verify",
        json={"code": f"{(int(code) + 1) % 10**6:06d}"},
        headers=_chat_headers(started),
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "code"
    # A wrong code does not burn the right one; a code is used once.
    right = await client.post(f"/chat/{chat_id}/verify", json={"code": code}, headers=_chat_headers(started))
    assert right.status_code == 200, right.text
    assert right.json() == {"identity": "verified", "customer_name": "Ada Lovelace"}
    again = await client.post(f"/chat/{chat_id}/verify", json={"code": code}, headers=_chat_headers(started))
    assert again.status_code == 409
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, uuid.UUID(chat_id))
        assert it.customer_id == ada.id and it.attributes["identity"] == "verified"
        event = await s.scalar(
            select(TimelineEvent).where(
                TimelineEvent.customer_id == ada.id, TimelineEvent.kind == "identity_verified"
            )
        )
        assert event is not None and event.interaction_id == it.id and event.data["method"] == "email"
        await s.commit()


async def test_sms_code_through_the_carrier(client, db, carrier) -> None:
    ada = await _ada(db)
    started = await _start(client, contact=PHONE)
    chat_id = started["interaction_id"]
    assert (
        await client.post(f"/chat/{chat_id}/verify/send", headers=_chat_headers(started))
    ).status_code == 202
    assert [t.to for t in carrier.texts] == ["+447400155501"]
    code = CODE.search(carrier.texts[0].body).group(1)
    right = await client.post(f"/chat/{chat_id}/verify", json={"code": code}, headers=_chat_headers(started))
    assert right.status_code == 200
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, uuid.UUID(chat_id))).customer_id == ada.id
        await s.commit()


async def test_unregistered_contact_gets_the_same_answer_and_nothing_is_sent(
    client, db, sink, carrier
) -> None:
    await _ada(db)
    started = await _start(client, contact="nobody@example.com")
    sent = await client.post(f"/chat/{started['interaction_id']}/verify/send", headers=_chat_headers(started))
    assert sent.status_code == 202 and sent.json()["status"] == "sent if registered"
    assert sink.messages == [] and carrier.texts == []
    refused = await client.post(
        f"/chat/{started['interaction_id']}/verify", json={"code": "123456"}, headers=_chat_headers(started)
    )
    assert refused.status_code == 422


async def test_guessing_is_throttled(client, db, sink) -> None:
    await _ada(db)
    started = await _start(client, contact=EMAIL)
    chat_id = started["interaction_id"]
    await client.post(f"/chat/{chat_id}/verify/send", headers=_chat_headers(started))
    for n in range(5):
        guess = await client.post(
            f"/chat/{chat_id}/verify", json={"code": f"00000{n}"}, headers=_chat_headers(started)
        )
        assert guess.status_code in (422, 200)
    blocked = await client.post(
        f"/chat/{chat_id}/verify", json={"code": "999999"}, headers=_chat_headers(started)
    )
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # Another visitor's token cannot ask for this chat's code.
    other = await _start(client)
    assert (
        await client.post(f"/chat/{chat_id}/verify/send", headers=_chat_headers(other))
    ).status_code == 404


async def test_bank_app_sign_in_is_verified_from_the_start(client, db, settings) -> None:
    await _ada(db)
    token = issue_token(
        subject="app-user-ada",
        role="customer",
        secret=security.app_token_key(settings),
        issuer=settings.jwt_issuer,
        audience=chat.APP_TOKEN_AUDIENCE,
        ttl=timedelta(minutes=5),
    )
    started = await _start(client, app_token=token)
    assert started["identity"] == "verified" and started["can_verify"] is False
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, uuid.UUID(started["interaction_id"]))
        assert it.attributes["verified_by"] == "app"
        kinds = (
            await s.scalars(select(TimelineEvent.kind).where(TimelineEvent.interaction_id == it.id))
        ).all()
        assert "identity_verified" in kinds
        await s.commit()
