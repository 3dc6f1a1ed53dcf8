"""Throttles (switchboard.throttle, the ``limits`` library over Redis): sign-in per account and per
address with lockout, public intake (chat starts, tickets) per address and per contact; each
refusal a 429 problem+json with Retry-After. And the password policy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from httpx import ASGITransport, AsyncClient, Response

from switchboard.app import create_app
from switchboard.auth.models import Role
from tests.factories import make_queue
from tests.helpers import TEST_PASSWORD

PROBLEM_JSON = "application/problem+json"
HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@asynccontextmanager
async def _app(settings, redis_handle, **limits: Any) -> AsyncIterator[Callable[[str], AsyncClient]]:
    """The app with these throttle settings; ``client(address)`` is a client from that address."""
    app = create_app(settings.model_copy(update=limits), redis_handle=redis_handle)
    clients: list[AsyncClient] = []

    def client(address: str = "203.0.113.7") -> AsyncClient:
        c = AsyncClient(
            transport=ASGITransport(app=app, client=(address, 40000)), base_url="http://testserver"
        )
        clients.append(c)
        return c

    async with app.router.lifespan_context(app):
        try:
            yield client
        finally:
            for c in clients:
                await c.aclose()


def _assert_429(response: Response, limit: str) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"].endswith("/rate-limited") and body["limit"] == limit
    retry_after = int(response.headers["Retry-After"])
    assert retry_after == body["retry_after"] and retry_after > 0
    return retry_after


async def _sign_in(client: AsyncClient, username: str, password: str) -> Response:
    return await client.post("/api/auth/token", data={"username": username, "password": password})


async def test_failed_sign_ins_lock_the_account(settings, redis_handle, redis_sync, db, make_user) -> None:
    user, _ = await make_user(Role.AGENT)
    async with _app(settings, redis_handle) as client:  # the defaults: 5 failures / 15 minutes
        attacker = client("198.51.100.1")
        for _ in range(5):
            assert (await _sign_in(attacker, user.username, "guess-guess-guess")).status_code == 401
        # Locked: even the right password is refused, without being checked, from any address.
        retry_after = _assert_429(
            await _sign_in(client("198.51.100.2"), user.username, TEST_PASSWORD), "login-account"
        )
        assert 800 < retry_after <= 900
        # Other accounts are not affected.
        other, _ = await make_user(Role.AGENT)
        assert (await _sign_in(client("198.51.100.2"), other.username, TEST_PASSWORD)).status_code == 200


async def test_parallel_guesses_cannot_outrun_the_account_lock(
    settings, redis_handle, redis_sync, db, make_user
) -> None:
    """Guesses sent at once all used to pass the lock's check before the first failure was counted
    (the password check takes a while), so a burst got far more than five tries."""
    user, _ = await make_user(Role.AGENT)
    async with _app(settings, redis_handle) as client:  # 5 failures / 15 minutes
        attackers = [client(f"198.51.100.{n}") for n in range(20)]
        answers = await asyncio.gather(
            *(_sign_in(c, user.username, f"guess-guess-{n}") for n, c in enumerate(attackers))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [401] * 5 + [429] * 15, statuses
        for response in answers:
            if response.status_code == 429:
                _assert_429(response, "login-account")


async def test_a_success_clears_the_account_count(settings, redis_handle, redis_sync, db, make_user) -> None:
    user, _ = await make_user(Role.AGENT)
    async with _app(settings, redis_handle, throttle_login_per_account="3/15 minutes") as client:
        c = client()
        for _ in range(2):
            assert (await _sign_in(c, user.username, "typo-typo-typo")).status_code == 401
        assert (await _sign_in(c, user.username, TEST_PASSWORD)).status_code == 200
        for _ in range(2):
            assert (await _sign_in(c, user.username, "typo-typo-typo")).status_code == 401
        assert (await _sign_in(c, user.username, TEST_PASSWORD)).status_code == 200


async def test_failed_sign_ins_lock_the_address(settings, redis_handle, redis_sync, db, make_user) -> None:
    user, _ = await make_user(Role.AGENT)
    async with _app(settings, redis_handle, throttle_login_per_address="4/15 minutes") as client:
        sprayer = client("192.0.2.50")
        for n in range(4):  # password spraying: one guess each on many (here unknown) accounts
            assert (await _sign_in(sprayer, f"nobody-{n}", "Summer2026!")).status_code == 401
        _assert_429(await _sign_in(sprayer, user.username, TEST_PASSWORD), "login-address")
        # Another address signs in as usual.
        assert (await _sign_in(client("192.0.2.51"), user.username, TEST_PASSWORD)).status_code == 200


async def test_login_page_says_locked_with_retry_after(
    settings, redis_handle, redis_sync, db, make_user
) -> None:
    user, _ = await make_user(Role.AGENT)
    async with _app(settings, redis_handle, throttle_login_per_account="2/15 minutes") as client:
        browser = client()
        for expected in (401, 401, 429):
            form = await browser.get("/login")
            csrf = HIDDEN_CSRF.search(form.text).group(1)
            response = await browser.post(
                "/login",
                data={"username": user.username, "password": "wrong-wrong-wrong", "csrf_token": csrf},
            )
            assert response.status_code == expected
        assert "Too many failed sign-ins" in response.text and int(response.headers["Retry-After"]) > 0


async def test_chat_starts_are_limited_per_address(settings, redis_handle, redis_sync, db) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    async with _app(settings, redis_handle, throttle_intake_per_address="3/minute") as client:
        flood = client("198.51.100.9")
        for n in range(3):
            assert (await flood.post("/chat/start", json={"name": f"Visitor {n}"})).status_code == 201
        _assert_429(await flood.post("/chat/start", json={"name": "Visitor 4"}), "intake-address-chat")
        assert (await client("198.51.100.10").post("/chat/start", json={})).status_code == 201


async def test_parallel_chat_starts_cannot_outrun_the_limit(settings, redis_handle, redis_sync, db) -> None:
    """Starts sent at once all used to pass the check before any was counted."""
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    async with _app(settings, redis_handle, throttle_intake_per_address="3/minute") as client:
        flood = client("198.51.100.9")
        answers = await asyncio.gather(*(flood.post("/chat/start", json={}) for _ in range(12)))
        assert sorted(r.status_code for r in answers) == [201] * 3 + [429] * 9


async def test_chat_starts_are_limited_per_contact(settings, redis_handle, redis_sync, db) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "cards")
    async with _app(settings, redis_handle, throttle_intake_per_contact="2/hour") as client:
        for n in range(2):
            started = await client(f"198.51.100.{n}").post("/chat/start", json={"contact": "+447911123456"})
            assert started.status_code == 201
        # The same number from a third address: refused (enumeration and impersonation cost).
        refused = await client("198.51.100.3").post("/chat/start", json={"contact": "+44 7911 123456 "})
        _assert_429(refused, "intake-contact-chat")
        other = await client("198.51.100.3").post("/chat/start", json={"contact": "+447911123457"})
        assert other.status_code == 201


def _ticket(n: int, email: str) -> dict[str, str]:
    return {"email": email, "subject": f"Question {n}", "message": "Please call me back about my card."}


async def test_tickets_are_limited_per_address_and_per_email(settings, redis_handle, redis_sync, db) -> None:
    async with _app(
        settings, redis_handle, throttle_intake_per_address="3/minute", throttle_intake_per_contact="2/hour"
    ) as client:
        one = client("203.0.113.20")
        assert (await one.post("/api/tickets", json=_ticket(1, "a@example.com"))).status_code == 201
        assert (await one.post("/api/tickets", json=_ticket(2, "a@example.com"))).status_code == 201
        _assert_429(await one.post("/api/tickets", json=_ticket(3, "a@example.com")), "intake-contact-ticket")
        assert (await one.post("/api/tickets", json=_ticket(4, "b@example.com"))).status_code == 201
        _assert_429(await one.post("/api/tickets", json=_ticket(5, "c@example.com")), "intake-address-ticket")


# ---------------------------------------------------------------- password policy


async def test_password_policy_on_create_change_and_reset(client, make_user, settings) -> None:
    _, admin = await make_user(Role.ADMIN)
    body = {"username": "new-agent", "display_name": "New Agent", "role": "agent"}
    for password, reason in (
        ("password", "at least 10"),
        ("password123", "commonly used"),
        ("Qwertyuiop1", "commonly used"),
        ("new-agent-2026", "username"),
    ):
        refused = await client.post("/api/auth/users", json={**body, "password": password}, headers=admin)
        assert refused.status_code == 422, password
        assert refused.json()["errors"][0]["field"] == "body.password"
        assert reason in refused.json()["detail"]
    made = await client.post("/api/auth/users", json={**body, "password": "tram-lantern-oboe"}, headers=admin)
    assert made.status_code == 201
    user, headers = await make_user(Role.AGENT)
    change = await client.post(
        "/api/auth/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": "iloveyou12"},
        headers=headers,
    )
    assert change.status_code == 422 and change.json()["errors"][0]["field"] == "body.new_password"
    reset = await client.post(
        f"/api/auth/users/{user.id}/password", json={"password": "letmein123"}, headers=admin
    )
    assert reset.status_code == 422 and reset.json()["errors"][0]["field"] == "body.password"
