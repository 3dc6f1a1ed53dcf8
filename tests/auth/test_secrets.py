"""Secrets: no usable key in the source, production refuses to start without one, separate keys
for staff sessions and customer (bank-app) chat tokens, rotation through previous keys."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from interactions import chat
from switchboard import security
from switchboard.auth.models import Role
from switchboard.security import issue_token
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import make_queue


def test_development_key_is_random_generated_once_into_the_data_dir(tmp_path: Path):
    first = Settings(environment="development", data_dir=tmp_path / "a")
    again = Settings(environment="development", data_dir=tmp_path / "a")
    other = Settings(environment="development", data_dir=tmp_path / "b")
    assert len(first.secret_key) >= 32
    assert again.secret_key == first.secret_key  # kept: sessions survive a restart
    assert other.secret_key != first.secret_key  # random: nobody can read it in the source
    key_file = tmp_path / "a" / "secret_key"
    assert key_file.read_text().strip() == first.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Nothing in the source is a key the app would accept.
    source = "".join(p.read_text() for p in (PROJECT_ROOT / "switchboard").glob("*.py"))
    assert first.secret_key not in source


def _run(tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    clean |= {"PYTHONPATH": str(PROJECT_ROOT), "SWITCHBOARD_DATA_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "command",
    [
        ["switchboard", "migrate"],
        ["switchboard", "serve"],
        # The production recipe in the README: uvicorn builds the app itself.
        ["uvicorn", "--factory", "switchboard.app:create_app", "--port", "0"],
    ],
)
def test_production_without_a_key_refuses_to_start_with_one_line(tmp_path: Path, command: list[str]):
    result = _run(tmp_path, command, SWITCHBOARD_ENVIRONMENT="production")
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if "SWITCHBOARD_SECRET_KEY" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # uvicorn may add one line of its own
    assert not (tmp_path / "secret_key").exists()  # production never generates one


def test_production_refuses_a_short_key(tmp_path: Path):
    with pytest.raises(ValueError, match="SWITCHBOARD_SECRET_KEY"):
        Settings(environment="production", data_dir=tmp_path, secret_key="short")


async def test_customer_tokens_are_not_signed_with_the_staff_key(client, db, settings):
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    assert security.app_token_key(settings) not in (None, settings.secret_key)

    def app_token(secret: str) -> str:
        return issue_token(
            subject="app-user-7",
            role="customer",
            secret=secret,
            issuer=settings.jwt_issuer,
            audience=chat.APP_TOKEN_AUDIENCE,
            ttl=timedelta(minutes=5),
        )

    forged = await client.post("/chat/start", json={"app_token": app_token(settings.secret_key)})
    assert forged.status_code == 422, forged.text
    assert [e["field"] for e in forged.json()["errors"]] == ["app_token"]
    real = await client.post("/chat/start", json={"app_token": app_token(security.app_token_key(settings))})
    assert real.status_code == 201, real.text


async def test_production_without_an_app_key_refuses_app_sign_in(tmp_path: Path):
    prod = Settings(environment="production", data_dir=tmp_path, secret_key="k" * 40)
    assert security.app_token_key(prod) is None
    configured = prod.model_copy(update={"app_token_secret": "a" * 40})
    assert security.app_token_key(configured) == "a" * 40


async def test_rotation_keeps_sessions_signed_by_a_previous_key(app, client, make_user, settings):
    user, _ = await make_user(Role.AGENT)
    old_key = settings.secret_key
    token = issue_token(
        subject=str(user.id),
        role=user.role.value,
        secret=old_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=timedelta(minutes=5),
    )
    bearer = {"Authorization": f"Bearer {token}"}
    # Rotated: a new current key, the old one listed as previous.
    app.state.settings = settings.model_copy(
        update={"secret_key": "new-key-" + "n" * 40, "previous_secret_keys": [old_key]}
    )
    assert (await client.get("/api/auth/me", headers=bearer)).status_code == 200
    # The old key dropped after a token lifetime: its sessions end.
    app.state.user_cache.invalidate()
    app.state.settings = settings.model_copy(update={"secret_key": "new-key-" + "n" * 40})
    assert (await client.get("/api/auth/me", headers=bearer)).status_code == 401
