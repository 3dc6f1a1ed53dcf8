"""Password checks run off the event loop: while argon2 verifies a login (~200 ms of CPU), the
same process keeps answering other requests. A liveness check with a generous bound, not a timing
benchmark: with the check on the loop, nothing else is served until it is done.

The hashes checked here carry a far higher argon2 cost (~0.6 s per check) than the product's, so
that a frozen loop (silent for nearly the whole check) stays far from what a loaded test machine's
own stalls (other processes; up to ~0.25 s seen) can produce. The cyclic garbage collector is
held off while a check is measured: late in a full suite run one of its full passes over the
process's heap took ~0.4 s of the loop, a pause that has nothing to do with where the hash runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from httpx import AsyncClient
from sqlalchemy import update

from switchboard.auth import service
from switchboard.auth.models import Role, User
from switchboard.db import Database
from tests.helpers import TEST_PASSWORD

SLOW = PasswordHasher(time_cost=9)  # 64 MiB, 4 lanes, 9 passes: ~20 times the product's check

HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _answered_during(client: AsyncClient, login: asyncio.Task[Any]) -> tuple[int, float]:
    """/healthz probes one after another until the login is done: how many were answered while
    it was in flight, and the longest time (seconds) without an answer, from the login's start
    to its end (a loop frozen by the check shows as one long gap)."""
    answered, longest = 0, 0.0
    last = time.perf_counter()
    while not login.done():
        # A probe every few ms, as clients would send them (an in-process request may complete
        # without ever yielding; the pause lets the loop see the login's progress).
        await asyncio.sleep(0.005)
        response = await client.get("/healthz")
        assert response.status_code == 200
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        if not login.done():
            answered += 1
    return answered, longest


@contextlib.contextmanager
def _collector_held_off() -> Iterator[None]:
    """No cyclic-GC pass inside the measured window (collected just before it instead)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _timed(coro: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - began


@pytest.fixture
async def slow_user(db: Database, make_user: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> User:
    """An agent whose stored hash (and the unknown-user dummy's) costs ~0.6 s to check."""
    user, _ = await make_user(Role.AGENT)
    async with db.sessionmaker() as s:
        await s.execute(update(User).where(User.id == user.id).values(password_hash=SLOW.hash(TEST_PASSWORD)))
        await s.commit()
    monkeypatch.setattr(service, "DUMMY_PASSWORD_HASH", SLOW.hash("not-anyone's-password"))
    return user


async def test_login_form_check_leaves_the_loop_serving(client: AsyncClient, slow_user: User) -> None:
    user = slow_user
    page = await client.get("/login")
    csrf = HIDDEN_CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    login = asyncio.create_task(
        _timed(
            client.post(
                "/login", data={"username": user.username, "password": TEST_PASSWORD, "csrf_token": csrf}
            )
        )
    )
    with _collector_held_off():
        await asyncio.sleep(0)  # the login starts first
        answered, longest = await _answered_during(client, login)
        response, login_took = await login
    assert response.status_code == 303  # signed in: the check really ran
    assert answered >= 3, f"only {answered} /healthz answered during a {login_took * 1000:.0f} ms login"
    # Nothing waited for the password check: no silence of even half the login's own duration.
    assert longest < login_took / 2, f"{longest:.3f} s without an answer in a {login_took:.3f} s login"


async def test_token_grant_and_unknown_user_checks_leave_the_loop_serving(
    client: AsyncClient, slow_user: User
) -> None:
    user = slow_user
    for username in (user.username, "nobody-by-that-name"):  # unknown users get the same (dummy) check
        login = asyncio.create_task(
            _timed(client.post("/api/auth/token", data={"username": username, "password": TEST_PASSWORD}))
        )
        with _collector_held_off():
            await asyncio.sleep(0)
            answered, longest = await _answered_during(client, login)
            response, login_took = await login
        assert response.status_code == (200 if username == user.username else 401)
        assert answered >= 3, f"{username}: {answered} /healthz answered in a {login_took:.3f} s check"
        assert longest < login_took / 2, f"{username}: {longest:.3f} s silent in a {login_took:.3f} s check"


async def test_a_login_holds_no_database_connection_while_its_password_is_checked(
    app: Any, client: AsyncClient, slow_user: User
) -> None:
    """Sign-ins queue for the hash pool at shift start; each must not hold a pooled connection
    meanwhile (the rest of the process would wait for one)."""
    pool = app.state.db.engine.pool
    login = asyncio.create_task(
        client.post("/api/auth/token", data={"username": slow_user.username, "password": TEST_PASSWORD})
    )
    during: list[int] = []
    while not login.done():
        await asyncio.sleep(0.01)
        during.append(pool.checkedout())
    assert (await login).status_code == 200
    await asyncio.sleep(0.1)
    after = pool.checkedout()  # what the app holds anyway (e.g. its held statement connections)
    # Most of a ~0.6 s check is spent in the hash: with the read ended first, nothing more is held.
    assert len(during) >= 10 and sum(1 for n in during if n <= after) >= len(during) // 2, (during, after)
