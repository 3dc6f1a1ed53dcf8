"""Browser login: double-submit CSRF before login, httpOnly SameSite=Lax session cookie after,
an HMAC CSRF header on every cookie-authenticated state change, logout clearing the cookie.
Plus the OAuth2 password grant at POST /api/auth/token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response

from switchboard.auth.models import Role
from switchboard.auth.pages import HOME_BY_ROLE
from switchboard.security import csrf_token_for
from switchboard.settings import Settings
from tests.helpers import TEST_PASSWORD

PROBLEM_JSON = "application/problem+json"
HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _set_cookies(response: Response) -> dict[str, str]:
    """name -> full Set-Cookie header (lower-cased attributes for easy assertions)."""
    result: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0].strip()
        result[name] = header
    return result


async def _login_form(client: AsyncClient) -> str:
    page = await client.get("/login")
    assert page.status_code == 200
    match = HIDDEN_CSRF.search(page.text)
    assert match, "login form has no hidden csrf_token field"
    return match.group(1)


async def _login(client: AsyncClient, username: str, password: str = TEST_PASSWORD) -> Response:
    csrf = await _login_form(client)
    return await client.post("/login", data={"username": username, "password": password, "csrf_token": csrf})


# ---------------------------------------------------------------- GET /login


async def test_login_page_sets_csrf_cookie_matching_hidden_field(client: AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    cookies = _set_cookies(page)
    assert "sb_csrf" in cookies
    attrs = cookies["sb_csrf"].lower()
    assert "httponly" in attrs
    assert "samesite=strict" in attrs
    assert "path=/login" in attrs
    match = HIDDEN_CSRF.search(page.text)
    assert match is not None
    assert client.cookies.get("sb_csrf") == match.group(1)
    # A second visit reuses the browser's marker instead of minting a new one.
    again = await client.get("/login")
    assert HIDDEN_CSRF.search(again.text).group(1) == match.group(1)  # type: ignore[union-attr]


# ---------------------------------------------------------------- POST /login CSRF


async def test_login_without_csrf_cookie_or_field_is_403(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    user, _ = await make_user(Role.AGENT)
    response = await client.post("/login", data={"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert "sb_session" not in _set_cookies(response)


async def test_login_with_cookie_but_no_field_is_403(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    user, _ = await make_user(Role.AGENT)
    await _login_form(client)
    response = await client.post("/login", data={"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert "sb_session" not in _set_cookies(response)


async def test_login_with_wrong_csrf_is_403(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    user, _ = await make_user(Role.AGENT)
    await _login_form(client)
    response = await client.post(
        "/login", data={"username": user.username, "password": TEST_PASSWORD, "csrf_token": "forged-value"}
    )
    assert response.status_code == 403
    assert "sb_session" not in _set_cookies(response)


async def test_login_with_field_but_no_cookie_is_403(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    """The attacker's page can set the field, not our cookie."""
    user, _ = await make_user(Role.AGENT)
    csrf = await _login_form(client)
    client.cookies.clear()
    response = await client.post(
        "/login", data={"username": user.username, "password": TEST_PASSWORD, "csrf_token": csrf}
    )
    assert response.status_code == 403
    assert "sb_session" not in _set_cookies(response)


# ---------------------------------------------------------------- POST /login credentials


async def test_wrong_password_is_401_without_session(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    user, _ = await make_user(Role.AGENT)
    response = await _login(client, user.username, "not-the-password")
    assert response.status_code == 401
    assert "sb_session" not in _set_cookies(response)
    assert client.cookies.get("sb_session") is None
    assert "Wrong username or password" in response.text


async def test_unknown_user_is_401_without_session(client: AsyncClient) -> None:
    response = await _login(client, "nobody-here")
    assert response.status_code == 401
    assert "sb_session" not in _set_cookies(response)


async def test_disabled_user_cannot_log_in(
    client: AsyncClient, make_user: Callable[..., Any], db: Any
) -> None:
    from sqlalchemy import update

    from switchboard.auth.models import User

    user, _ = await make_user(Role.AGENT)
    async with db.sessionmaker() as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))
        await s.commit()
    response = await _login(client, user.username)
    assert response.status_code == 401
    assert "sb_session" not in _set_cookies(response)


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.ADMIN])
async def test_right_password_redirects_to_role_home_with_session_cookie(
    client: AsyncClient, make_user: Callable[..., Any], role: Role
) -> None:
    user, _ = await make_user(role)
    response = await _login(client, user.username)
    assert response.status_code == 303
    assert response.headers["location"] == HOME_BY_ROLE[role]
    cookies = _set_cookies(response)
    assert "sb_session" in cookies
    attrs = cookies["sb_session"].lower()
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "path=/" in attrs
    assert "max-age=" in attrs
    # The pre-login CSRF marker is spent.
    assert "sb_csrf" in cookies
    assert (
        "max-age=0" in cookies["sb_csrf"].lower() or "expires=thu, 01 jan 1970" in cookies["sb_csrf"].lower()
    )
    # The cookie authenticates safe requests.
    me = await client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == user.username


async def test_secure_cookie_flag_follows_settings(
    app: Any, client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"cookie_secure": True})
    user, _ = await make_user(Role.AGENT)
    response = await _login(client, user.username)
    assert response.status_code == 303
    assert "secure" in _set_cookies(response)["sb_session"].lower()


# ---------------------------------------------------------------- CSRF on cookie sessions


async def _admin_cookie_session(client: AsyncClient, make_user: Callable[..., Any]) -> str:
    admin, _ = await make_user(Role.ADMIN)
    response = await _login(client, admin.username)
    assert response.status_code == 303
    token = client.cookies.get("sb_session")
    assert token
    return token


def _new_user_body(username: str) -> dict[str, str]:
    return {"username": username, "display_name": "New Agent", "role": "agent", "password": "long-enough-pw"}


async def test_cookie_post_without_csrf_header_is_403_problem(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    await _admin_cookie_session(client, make_user)
    response = await client.post("/api/auth/users", json=_new_user_body("csrf-victim"))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["errors"][0]["field"] == "X-CSRF-Token"


async def test_cookie_post_with_wrong_csrf_header_is_403(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    await _admin_cookie_session(client, make_user)
    # A token bound to a different session does not fit this one.
    other = csrf_token_for("some-other-session-token", settings.secret_key)
    for sent in ["", "x", other]:
        response = await client.post(
            "/api/auth/users", json=_new_user_body("csrf-victim"), headers={"X-CSRF-Token": sent}
        )
        assert response.status_code == 403, sent
        assert response.headers["content-type"] == PROBLEM_JSON


async def test_cookie_post_with_right_csrf_header_passes(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    token = await _admin_cookie_session(client, make_user)
    response = await client.post(
        "/api/auth/users",
        json=_new_user_body("made-by-cookie"),
        headers={"X-CSRF-Token": csrf_token_for(token, settings.secret_key)},
    )
    assert response.status_code == 201, response.text
    assert response.json()["username"] == "made-by-cookie"


async def test_cookie_get_needs_no_csrf(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    await _admin_cookie_session(client, make_user)
    assert (await client.get("/api/auth/me")).status_code == 200


async def test_bearer_post_needs_no_csrf(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    _, headers = await make_user(Role.ADMIN)
    response = await client.post("/api/auth/users", json=_new_user_body("made-by-bearer"), headers=headers)
    assert response.status_code == 201


async def test_signed_in_page_carries_csrf_token_for_htmx(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    token = await _admin_cookie_session(client, make_user)
    page = await client.get("/supervisor")
    assert page.status_code == 200
    assert csrf_token_for(token, settings.secret_key) in page.text


# ---------------------------------------------------------------- logout


async def test_logout_without_csrf_is_403_and_keeps_session(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    await _admin_cookie_session(client, make_user)
    response = await client.post("/logout")
    assert response.status_code == 403
    assert "sb_session" not in _set_cookies(response)


async def test_logout_clears_cookie(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    token = await _admin_cookie_session(client, make_user)
    response = await client.post(
        "/logout", headers={"X-CSRF-Token": csrf_token_for(token, settings.secret_key)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    cleared = _set_cookies(response)["sb_session"].lower()
    assert 'sb_session=""' in cleared or "sb_session=;" in cleared
    assert "max-age=0" in cleared
    assert "path=/" in cleared
    assert client.cookies.get("sb_session") is None
    assert (await client.get("/api/auth/me")).status_code == 401
    home = await client.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/login"


async def test_logout_form_field_csrf_works_without_javascript(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    """The layout's sign-out form posts the token as a hidden field (no htmx header without JS)."""
    token = await _admin_cookie_session(client, make_user)
    response = await client.post("/logout", data={"csrf_token": csrf_token_for(token, settings.secret_key)})
    assert response.status_code == 303
    assert client.cookies.get("sb_session") is None


async def test_logout_without_session_just_redirects(client: AsyncClient) -> None:
    response = await client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


# ---------------------------------------------------------------- POST /api/auth/token


async def test_token_endpoint_issues_bearer(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    user, _ = await make_user(Role.SUPERVISOR)
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": TEST_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["role"] == "supervisor"


async def test_token_endpoint_wrong_password_is_401(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    user, _ = await make_user(Role.AGENT)
    response = await client.post("/api/auth/token", data={"username": user.username, "password": "nope"})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "access_token" not in response.json()


async def test_token_endpoint_missing_username_is_422_naming_field(client: AsyncClient) -> None:
    response = await client.post("/api/auth/token", data={"password": "whatever"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 422
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["body.username"]
    assert "body.username" in body["detail"]


async def test_token_endpoint_json_body_is_422(client: AsyncClient) -> None:
    response = await client.post("/api/auth/token", json={"username": "a", "password": "b"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_logout_form_field_with_wrong_token_is_403(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    await _admin_cookie_session(client, make_user)
    wrong = csrf_token_for("another-session", settings.secret_key)
    response = await client.post("/logout", data={"csrf_token": wrong})
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    assert client.cookies.get("sb_session") is not None
