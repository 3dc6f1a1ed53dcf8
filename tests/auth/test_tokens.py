"""JWT handling: every way a token can be wrong is a 401 problem+json, never a 200 or a 500.

DESIGN §6: python-jose with an explicit algorithm list, expiry, audience and issuer checks.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from jose import jwt
from sqlalchemy import update

from switchboard.auth.models import Role, User
from switchboard.db import Database
from switchboard.security import LEEWAY_SECONDS, TokenError, decode_token, issue_token
from switchboard.settings import Settings

ME = "/api/auth/me"
PROBLEM_JSON = "application/problem+json"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(settings: Settings, user_id: uuid.UUID, role: str = "agent", **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "role": role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def _sign(claims: dict[str, Any], secret: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _issue(settings: Settings, user: User, **kwargs: Any) -> str:
    params: dict[str, Any] = {
        "subject": str(user.id),
        "role": user.role.value,
        "secret": settings.secret_key,
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "ttl": timedelta(minutes=10),
    }
    params.update(kwargs)
    return issue_token(**params)


def _decode(settings: Settings, token: str) -> Any:
    return decode_token(
        token, secret=settings.secret_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


async def _assert_401(client: AsyncClient, token: str) -> None:
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 401
    assert body["type"].endswith("/unauthorized")


# ---------------------------------------------------------------- valid token


async def test_valid_token_is_accepted(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    user, headers = await make_user(Role.AGENT)
    response = await client.get(ME, headers=headers)
    assert response.status_code == 200
    assert response.json()["username"] == user.username
    assert response.json()["role"] == "agent"


async def test_no_token_is_401(client: AsyncClient) -> None:
    response = await client.get(ME)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer ...", "Bearer " + "x" * 5000],
)
async def test_garbage_bearer_is_401(client: AsyncClient, header: str) -> None:
    response = await client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


# ---------------------------------------------------------------- expiry and leeway


async def test_expired_beyond_leeway_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    user, _ = await make_user(Role.AGENT)
    issued = datetime.now(UTC) - timedelta(hours=1)
    # Expired LEEWAY + 30 s ago.
    token = _issue(
        settings, user, now=issued, ttl=timedelta(hours=1) - timedelta(seconds=LEEWAY_SECONDS + 30)
    )
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


async def test_expired_within_leeway_is_accepted(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    user, _ = await make_user(Role.AGENT)
    issued = datetime.now(UTC) - timedelta(hours=1)
    # Expired 10 s ago: inside the 30 s clock-skew allowance.
    token = _issue(settings, user, now=issued, ttl=timedelta(hours=1) - timedelta(seconds=10))
    claims = _decode(settings, token)
    assert claims.expires_at < datetime.now(UTC)
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_leeway_is_at_most_30_seconds() -> None:
    assert LEEWAY_SECONDS <= 30


# ---------------------------------------------------------------- signature and algorithm


async def test_forged_with_other_secret_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    user, _ = await make_user(Role.ADMIN)
    token = _issue(settings, user, secret="some-other-secret-" + "y" * 32)
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


async def test_tampered_payload_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    """Re-encode the payload with a raised role but keep the original signature."""
    user, _ = await make_user(Role.AGENT)
    token = _issue(settings, user)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = ".".join([header, _b64url(json.dumps(claims).encode()), signature])
    with pytest.raises(TokenError):
        _decode(settings, forged)
    await _assert_401(client, forged)


@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
async def test_alg_none_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings, signature: str
) -> None:
    user, _ = await make_user(Role.ADMIN)
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(_claims(settings, user.id, role="admin")).encode())
    token = f"{header}.{payload}.{signature}"
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


@pytest.mark.parametrize("alg_name", ["None", "NONE", "nOnE"])
async def test_alg_none_case_variants_are_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings, alg_name: str
) -> None:
    user, _ = await make_user(Role.ADMIN)
    header = _b64url(json.dumps({"alg": alg_name, "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(_claims(settings, user.id, role="admin")).encode())
    await _assert_401(client, f"{header}.{payload}.")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_other_hmac_algorithms_are_refused(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings, algorithm: str
) -> None:
    """Only HS256 is on the list, even with the right secret."""
    user, _ = await make_user(Role.AGENT)
    token = _sign(_claims(settings, user.id), settings.secret_key, algorithm=algorithm)
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


# ---------------------------------------------------------------- audience and issuer


async def test_wrong_audience_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    user, _ = await make_user(Role.AGENT)
    token = _issue(settings, user, audience="some-other-service")
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


async def test_wrong_issuer_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    user, _ = await make_user(Role.AGENT)
    token = _issue(settings, user, issuer="https://evil.example")
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


# ---------------------------------------------------------------- required claims


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss", "role"])
async def test_missing_claim_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings, claim: str
) -> None:
    user, _ = await make_user(Role.AGENT)
    claims = _claims(settings, user.id)
    del claims[claim]
    token = _sign(claims, settings.secret_key)
    with pytest.raises(TokenError):
        _decode(settings, token)
    await _assert_401(client, token)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "not-a-uuid"),
        ("sub", 12345),
        ("exp", "tomorrow"),
        ("iat", "yesterday"),
        ("role", 3),
        ("aud", ["other-a", "other-b"]),
    ],
)
async def test_malformed_claim_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings, claim: str, value: Any
) -> None:
    user, _ = await make_user(Role.AGENT)
    token = _sign(_claims(settings, user.id, **{claim: value}), settings.secret_key)
    await _assert_401(client, token)


# ---------------------------------------------------------------- the user behind the token


async def test_role_differs_from_current_role_is_401(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    """A token minted as admin for a user who is (now) an agent is no longer honoured."""
    user, _ = await make_user(Role.AGENT)
    token = _issue(settings, user, role="admin")
    assert _decode(settings, token).role == "admin"  # well-formed and signed
    await _assert_401(client, token)


async def test_demoted_user_old_token_is_401(
    client: AsyncClient, make_user: Callable[..., Any], db: Database
) -> None:
    user, headers = await make_user(Role.SUPERVISOR)
    assert (await client.get(ME, headers=headers)).status_code == 200
    async with db.sessionmaker() as s:
        await s.execute(update(User).where(User.id == user.id).values(role=Role.AGENT))
        await s.commit()
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_disabled_user_is_401(client: AsyncClient, make_user: Callable[..., Any], db: Database) -> None:
    user, headers = await make_user(Role.AGENT)
    assert (await client.get(ME, headers=headers)).status_code == 200
    async with db.sessionmaker() as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))
        await s.commit()
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_unknown_user_is_401(client: AsyncClient, settings: Settings) -> None:
    token = _sign(_claims(settings, uuid.uuid4()), settings.secret_key)
    await _assert_401(client, token)


async def test_bearer_token_in_cookie_is_also_checked(client: AsyncClient, settings: Settings) -> None:
    """The session cookie carries the same JWT and gets the same checks."""
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(_claims(settings, uuid.uuid4(), role="admin")).encode())
    client.cookies.set("sb_session", f"{header}.{payload}.")
    try:
        response = await client.get(ME)
    finally:
        client.cookies.clear()
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON


# ---------------------------------------------------------------- security module directly


def test_issue_and_decode_round_trip(settings: Settings) -> None:
    now = datetime.now(UTC)
    token = issue_token(
        subject="abc",
        role="supervisor",
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=timedelta(minutes=5),
        now=now,
    )
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = _decode(settings, token)
    assert claims.subject == "abc"
    assert claims.role == "supervisor"
    assert claims.expires_at == datetime.fromtimestamp(int((now + timedelta(minutes=5)).timestamp()), UTC)
    raw = jwt.get_unverified_claims(token)
    assert {"sub", "role", "iss", "aud", "iat", "exp", "jti"} <= set(raw)


def test_decode_rejects_empty_and_garbage(settings: Settings) -> None:
    for token in ["", "abc", "a.b", "a.b.c", "....", "eyJ.eyJ.x"]:
        with pytest.raises(TokenError):
            _decode(settings, token)
