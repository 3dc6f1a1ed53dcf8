"""User accounts through /api/users and the console's user pages (issue #11 item 4): admins only;
create, role, disable, password reset; each audited before -> after (never the password), each
ending the user's sessions when it changes what they may do; never deleted."""

from __future__ import annotations

from sqlalchemy import select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role, User
from tests.helpers import TEST_PASSWORD

PROBLEM = "application/problem+json"
NEW_PASSWORD = "tangerine-lighthouse-41"


async def test_admins_only(client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    assert (await client.get("/api/users")).status_code == 401
    refused = await client.get("/api/users", headers=sup)
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM


async def test_create_change_disable_reset_and_audit(db, client, make_user):
    admin, headers = await make_user(Role.ADMIN)
    body = {"username": "kim", "display_name": "Kim", "role": "agent"}
    missing = await client.post("/api/users", json=body, headers=headers)
    assert missing.status_code == 422 and [e["field"] for e in missing.json()["errors"]] == ["password"]
    weak = await client.post("/api/users", json={**body, "password": "password1"}, headers=headers)
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "password"
    bad_role = await client.post(
        "/api/users", json={**body, "role": "boss", "password": NEW_PASSWORD}, headers=headers
    )
    assert bad_role.status_code == 422 and bad_role.json()["errors"][0]["field"] == "body.role"
    async with db.sessionmaker() as s:
        assert await s.scalar(select(User).where(User.username == "kim")) is None

    created = await client.post("/api/users", json={**body, "password": TEST_PASSWORD}, headers=headers)
    assert created.status_code == 201, created.text
    kim = created.json()
    assert "password" not in kim and kim["active"] is True
    taken = await client.post("/api/users", json={**body, "password": TEST_PASSWORD}, headers=headers)
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "username"
    token = (await client.post("/api/auth/token", data={"username": "kim", "password": TEST_PASSWORD})).json()
    kim_headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await client.get("/api/auth/me", headers=kim_headers)).status_code == 200

    changed = await client.patch(
        f"/api/users/{kim['id']}", json={"role": "supervisor", "password": NEW_PASSWORD}, headers=headers
    )
    assert changed.status_code == 200 and changed.json()["role"] == "supervisor"
    assert (await client.get("/api/auth/me", headers=kim_headers)).status_code == 401  # sessions ended
    signed_in = await client.post("/api/auth/token", data={"username": "kim", "password": NEW_PASSWORD})
    assert signed_in.status_code == 200

    disabled = await client.patch(f"/api/users/{kim['id']}", json={"active": False}, headers=headers)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    refused = await client.post("/api/auth/token", data={"username": "kim", "password": NEW_PASSWORD})
    assert refused.status_code == 401

    self_demote = await client.patch(f"/api/users/{admin.id}", json={"role": "agent"}, headers=headers)
    assert self_demote.status_code == 409 and self_demote.json()["errors"][0]["field"] == "role"
    deleted = await client.delete(f"/api/users/{kim['id']}", headers=headers)
    assert deleted.status_code == 409 and "Disable the account instead" in deleted.json()["detail"]

    async with db.sessionmaker() as s:
        entries = list(
            await s.scalars(
                select(AuditEntry).where(AuditEntry.entity_id == kim["id"]).order_by(AuditEntry.id)
            )
        )
    assert [e.action for e in entries] == ["user.created", "user.updated", "user.updated"]
    assert entries[0].data["after"]["role"] == "agent" and "password" not in entries[0].data["after"]
    assert entries[1].data["before"] == {"role": "agent"} and entries[1].data["after"] == {
        "role": "supervisor"
    }
    assert entries[1].data["set"] == ["password"]
    assert entries[2].data["before"] == {"active": True} and entries[2].data["after"] == {"active": False}
    assert NEW_PASSWORD not in str([e.data for e in entries])


async def test_the_user_pages(db, client, make_user):
    _, headers = await make_user(Role.ADMIN)
    html = {**headers, "accept": "text/html"}
    listed = await client.get("/admin/users", headers=html)
    assert 'href="/admin/users/new"' in listed.text
    bad = await client.post(
        "/admin/users",
        data={
            "username": "lee",
            "display_name": "Lee",
            "role": "agent",
            "active": "True",
            "password": "short",
        },
        headers=html,
    )
    assert bad.status_code == 422 and 'id="e-password"' in bad.text and 'type="password"' in bad.text
    assert "short" not in bad.text.split('id="f-password"')[1].split(">")[0]  # never sent back
    made = await client.post(
        "/admin/users",
        data={
            "username": "lee",
            "display_name": "Lee",
            "role": "agent",
            "active": "True",
            "password": TEST_PASSWORD,
        },
        headers=html,
    )
    assert made.status_code == 303
    async with db.sessionmaker() as s:
        lee = await s.scalar(select(User).where(User.username == "lee"))
    page = await client.get(made.headers["location"], headers=html)
    assert "Lee (lee): saved." in page.text
    edit = await client.post(
        f"/admin/users/{lee.id}/edit",
        data={"display_name": "Lee Jones", "email": "", "role": "agent", "active": "False", "password": ""},
        headers=html,
    )
    assert edit.status_code == 303
    async with db.sessionmaker() as s:
        lee = await s.get(User, lee.id)
    assert (lee.display_name, lee.is_active) == ("Lee Jones", False)
