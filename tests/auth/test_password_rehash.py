"""Password hashes: today's parameters (OWASP's argon2id minimum) for every new hash, and a hash
made with older parameters replaced at the user's next successful sign-in, with the password the
user just proved; a failed sign-in changes nothing, and sessions issued before stay valid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from httpx import AsyncClient
from sqlalchemy import select, update

from switchboard.auth.cache import CHANGED_USERS_OPTION
from switchboard.auth.models import Role, User
from switchboard.db import Database
from switchboard.security import PASSWORD_HASH_PARAMETERS, hash_password, verify_password
from tests.helpers import TEST_PASSWORD

OLD_DEFAULT = PasswordHasher()  # argon2-cffi's default, which the product used before: 64 MiB, t=3, p=4


def _parameters(password_hash: str) -> str:
    return password_hash.split("$")[3]  # $argon2id$v=19$m=...,t=...,p=...$salt$hash


def test_new_hashes_use_the_owasp_minimum() -> None:
    made = hash_password("a long enough passphrase")
    expected = "m={memory_cost},t={time_cost},p={parallelism}".format(**PASSWORD_HASH_PARAMETERS)
    assert made.startswith("$argon2id$") and _parameters(made) == expected == "m=19456,t=2,p=1"
    assert verify_password(made, "a long enough passphrase") and not verify_password(made, "wrong")


async def _stored_hash(db: Database, user_id: Any) -> str:
    async with db.sessionmaker() as s:
        stored = await s.scalar(select(User.password_hash).where(User.id == user_id))
        await s.commit()
    assert stored is not None
    return stored


async def test_an_old_hash_is_replaced_at_the_next_successful_sign_in(
    db: Database, client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    user, headers = await make_user(Role.AGENT)  # a session issued before the rehash
    old = OLD_DEFAULT.hash(TEST_PASSWORD)
    async with db.sessionmaker() as s:
        await s.execute(update(User).where(User.id == user.id).values(password_hash=old))
        await s.commit()

    refused = await client.post("/api/auth/token", data={"username": user.username, "password": "wrong"})
    assert refused.status_code == 401
    assert await _stored_hash(db, user.id) == old  # a wrong password proves nothing: kept

    credentials = {"username": user.username, "password": TEST_PASSWORD}
    signed_in = await client.post("/api/auth/token", data=credentials)
    assert signed_in.status_code == 200, signed_in.text
    renewed = await _stored_hash(db, user.id)
    assert renewed != old and _parameters(renewed) == "m=19456,t=2,p=1"
    assert verify_password(renewed, TEST_PASSWORD)

    again = await client.post("/api/auth/token", data=credentials)
    assert again.status_code == 200 and await _stored_hash(db, user.id) == renewed  # once only
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200  # sessions stay


async def test_a_rehash_invalidates_only_its_own_user(
    app: Any, db: Database, client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    """Renewing one user's hash leaves every other user's open desktop (and cached session) alone:
    a bulk UPDATE of users otherwise counts as a change to every user, and at shift start (every
    sign-in renewing a hash after new parameters) each sign-in emptied every process's cache and
    made every open desktop check its session again."""
    other, _ = await make_user(Role.AGENT)
    user, _ = await make_user(Role.AGENT)
    async with db.sessionmaker() as s:  # named: this set-up must not count as everyone's change
        old = update(User).where(User.id == user.id).values(password_hash=OLD_DEFAULT.hash(TEST_PASSWORD))
        await s.execute(old.execution_options(**{CHANGED_USERS_OPTION: [user.id]}))
        await s.commit()
    cache = app.state.user_cache
    with cache.watch(other.id) as other_changed, cache.watch(user.id) as own_changed:
        signed_in = await client.post(
            "/api/auth/token", data={"username": user.username, "password": TEST_PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        assert _parameters(await _stored_hash(db, user.id)) == "m=19456,t=2,p=1"  # renewed
        assert own_changed.is_set()
        assert not other_changed.is_set()
