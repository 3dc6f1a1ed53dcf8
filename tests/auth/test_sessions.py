"""Sessions end on the server: sign-out, disabling, a role or password change refuse every token
issued before (the user's token version, SQL + the per-process user cache), and an open desktop
socket on another process closes within seconds. Administrators disable and enable users by API
and on /admin/users."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.security import csrf_token_for
from switchboard.settings import Settings
from tests.factories import agent_profile
from tests.helpers import TEST_PASSWORD
from tests.live_app import running_app
from workforce.models import Presence

ME = "/api/auth/me"
NEW_PASSWORD = "a-much-longer-passphrase-9"
HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _token(client: httpx.AsyncClient, username: str, password: str = TEST_PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/token", data={"username": username, "password": password})


async def test_api_logout_revokes_the_token(client, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    assert (await client.get(ME, headers=headers)).status_code == 200
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await client.get(ME, headers=headers)).status_code == 401
    # A new sign-in works: only the sessions that existed ended.
    fresh = await _token(client, user.username)
    assert fresh.status_code == 200
    bearer = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await client.get(ME, headers=bearer)).status_code == 200


async def test_page_logout_revokes_a_copied_cookie(client, make_user, settings) -> None:
    user, _ = await make_user(Role.SUPERVISOR)
    form = await client.get("/login")
    csrf = HIDDEN_CSRF.search(form.text).group(1)
    signed_in = await client.post(
        "/login", data={"username": user.username, "password": TEST_PASSWORD, "csrf_token": csrf}
    )
    assert signed_in.status_code == 303
    cookie = client.cookies["sb_session"]
    out = await client.post("/logout", headers={"X-CSRF-Token": csrf_token_for(cookie, settings.secret_key)})
    assert out.status_code == 303
    # The browser forgot it; someone who copied it must be refused too.
    copied = await client.get(ME, headers={"Cookie": f"sb_session={cookie}"})
    assert copied.status_code == 401


async def test_disable_ends_sessions_and_sign_in_enable_restores_sign_in(client, make_user, db) -> None:
    admin, admin_headers = await make_user(Role.ADMIN)
    agent, agent_headers = await make_user(Role.AGENT)
    assert (await client.get(ME, headers=agent_headers)).status_code == 200
    disabled = await client.post(f"/api/auth/users/{agent.id}/disable", headers=admin_headers)
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    assert (await client.get(ME, headers=agent_headers)).status_code == 401
    assert (await _token(client, agent.username)).status_code == 401
    enabled = await client.post(f"/api/auth/users/{agent.id}/enable", headers=admin_headers)
    assert enabled.status_code == 200 and enabled.json()["is_active"] is True
    assert (await _token(client, agent.username)).status_code == 200
    # The session from before the disable stays ended.
    assert (await client.get(ME, headers=agent_headers)).status_code == 401
    listed = await client.get("/api/auth/users", headers=admin_headers)
    assert {u["username"]: u["is_active"] for u in listed.json()["items"]}[agent.username] is True
    async with db.sessionmaker() as s:
        actions = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(agent.id)))
        ).all()
        await s.commit()
    assert sorted(actions) == ["user.disabled", "user.enabled"]
    # Nobody locks themselves out.
    refused = await client.post(f"/api/auth/users/{admin.id}/disable", headers=admin_headers)
    assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "user_id"
    assert (
        await client.post(f"/api/auth/users/{agent.id}/disable", headers=agent_headers)
    ).status_code == 401


async def test_role_change_ends_sessions(client, make_user) -> None:
    _, admin_headers = await make_user(Role.ADMIN)
    user, headers = await make_user(Role.SUPERVISOR)
    changed = await client.patch(f"/api/auth/users/{user.id}", json={"role": "agent"}, headers=admin_headers)
    assert changed.status_code == 200 and changed.json()["role"] == "agent"
    assert (await client.get(ME, headers=headers)).status_code == 401
    fresh = await _token(client, user.username)
    me = await client.get(ME, headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
    assert me.json()["role"] == "agent"


async def test_password_change_ends_sessions(client, make_user) -> None:
    user, headers = await make_user(Role.AGENT)
    wrong = await client.post(
        "/api/auth/me/password",
        json={"current_password": "not-it", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.current_password"
    assert (await client.get(ME, headers=headers)).status_code == 200
    changed = await client.post(
        "/api/auth/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 204
    assert (await client.get(ME, headers=headers)).status_code == 401
    assert (await _token(client, user.username)).status_code == 401
    assert (await _token(client, user.username, NEW_PASSWORD)).status_code == 200


async def test_admin_password_reset_ends_sessions(client, make_user) -> None:
    _, admin_headers = await make_user(Role.ADMIN)
    user, headers = await make_user(Role.AGENT)
    reset = await client.post(
        f"/api/auth/users/{user.id}/password", json={"password": NEW_PASSWORD}, headers=admin_headers
    )
    assert reset.status_code == 204
    assert (await client.get(ME, headers=headers)).status_code == 401


# ---------------------------------------------------------------- the desktop socket


async def _closed_within(ws: Any, seconds: float) -> tuple[int | None, float]:
    began = time.perf_counter()
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(seconds):
            async for _frame in ws:
                pass
    return ws.close_code, time.perf_counter() - began


async def test_disable_closes_the_open_desktop_socket_on_another_process(
    client, make_user, db, settings: Settings, tmp_path: Path
) -> None:
    _, admin_headers = await make_user(Role.ADMIN)
    agent, _ = await make_user(Role.AGENT)
    await agent_profile(db, agent, presence=Presence.AVAILABLE)
    other = settings.model_copy(update={"data_dir": tmp_path / "other", "routing_engine": True})
    async with running_app(other, tmp_path / "other.log") as base:
        token = (await _token(client, agent.username)).json()["access_token"]
        host = base.removeprefix("http://")
        async with websockets.connect(
            f"ws://{host}/desktop/ws", additional_headers={"Cookie": f"sb_session={token}", "Origin": base}
        ) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # the resync: the socket is open and checked
            disabled = await client.post(f"/api/auth/users/{agent.id}/disable", headers=admin_headers)
            assert disabled.status_code == 200
            code, waited = await _closed_within(ws, seconds=5.0)
        assert code == 4401, f"socket not closed by the server (code {code})"
        assert waited < 3.0


async def test_logout_elsewhere_closes_the_open_desktop_socket(
    client, make_user, db, settings: Settings, tmp_path: Path
) -> None:
    agent, headers = await make_user(Role.AGENT)
    await agent_profile(db, agent, presence=Presence.AVAILABLE)
    other = settings.model_copy(update={"data_dir": tmp_path / "other", "routing_engine": True})
    async with running_app(other, tmp_path / "other.log") as base:
        token = (await _token(client, agent.username)).json()["access_token"]
        host = base.removeprefix("http://")
        async with websockets.connect(
            f"ws://{host}/desktop/ws", additional_headers={"Cookie": f"sb_session={token}", "Origin": base}
        ) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
            code, waited = await _closed_within(ws, seconds=5.0)
        assert code == 4401 and waited < 3.0


# ---------------------------------------------------------------- the admin page


async def test_admin_page_disables_and_enables_users(client, make_user, settings) -> None:
    admin, admin_headers = await make_user(Role.ADMIN)
    agent, agent_headers = await make_user(Role.AGENT)
    page = await client.get("/admin/users", headers=admin_headers)
    assert page.status_code == 200
    assert f'aria-label="Disable {agent.username}"' in page.text
    assert f'aria-label="Disable {admin.username}"' not in page.text  # not yourself
    done = await client.post(
        f"/admin/users/{agent.id}/disable", headers={**admin_headers, "HX-Request": "true"}
    )
    assert done.status_code == 200
    assert "disabled" in done.text and f'aria-label="Enable {agent.username}"' in done.text
    assert (await client.get(ME, headers=agent_headers)).status_code == 401
    again = await client.post(f"/admin/users/{agent.id}/enable", headers=admin_headers)
    assert again.status_code == 303 and again.headers["location"] == "/admin/users"
    # Agents and supervisors may not; browsers without a session go to sign in.
    _, supervisor_headers = await make_user(Role.SUPERVISOR)
    assert (await client.get("/admin/users", headers=supervisor_headers)).status_code == 403
    anonymous = await client.get("/admin/users", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
