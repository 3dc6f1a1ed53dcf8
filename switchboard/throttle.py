"""Throttles on the doors an attacker can knock on without an account: sign-in and public intake.

The counting is the ``limits`` library's moving window, kept in Redis (shared by every app
process; keys under this deployment's namespace), never hand-written counters. A refusal is
``TooManyRequests``: a 429 problem+json with ``Retry-After`` (seconds until the window frees a
slot), naming what was limited.

* Sign-in: attempts are counted per account (each one as it starts, atomically, so a burst
  cannot outrun the count) and failed ones per client address; once either is spent further
  attempts are refused *before* the password is checked (a lockout) until the window frees a
  slot. A successful sign-in clears the account's count.
* Public intake (chat starts, tickets): every request is counted per client address and per
  contact (phone, email) given.
* Inbound email: per sender address only (the client address is the sending mail server, which
  carries many customers' mail); the SMTP answer is a temporary 450, so nothing is lost: the
  sending server retries later.

The client address is the socket peer: behind a proxy, run uvicorn with ``--proxy-headers`` and
``--forwarded-allow-ips`` so it is the customer's, not the proxy's.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from switchboard.errors import TooManyRequests
from switchboard.redis import rkey
from switchboard.settings import Settings


def parse_limit(text: str) -> RateLimitItem:
    """``"5/15 minutes"`` -> a limit, or ValueError (settings validate with it)."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"not a rate limit like '5/15 minutes': {text!r}") from exc


@dataclass(frozen=True)
class Rule:
    name: str  # what the 429 says was limited: "login-account", "intake-address", ...
    limit: RateLimitItem


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


def _id(value: str) -> str:
    # Contacts and usernames are not written into Redis keys as they are (PII, unbounded length).
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def throttle_of(connection: HTTPConnection) -> Throttle:
    return connection.app.state.throttle


class Throttle:
    """One per app process, over the app's Redis connection pool."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        login_per_account: str,
        login_per_address: str,
        intake_per_address: str,
        intake_per_contact: str,
        email_per_sender: str,
    ) -> None:
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=rkey("throttle"),
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self.login_account = Rule("login-account", parse_limit(login_per_account))
        self.login_address = Rule("login-address", parse_limit(login_per_address))
        self.intake_address = Rule("intake-address", parse_limit(intake_per_address))
        self.intake_contact = Rule("intake-contact", parse_limit(intake_per_contact))
        self.email_sender = Rule("intake-contact-email", parse_limit(email_per_sender))

    @classmethod
    def from_settings(cls, client: aioredis.Redis, settings: Settings) -> Throttle:
        """The deployment's limits (``SWITCHBOARD_THROTTLE_*``), over ``client``'s connection pool."""
        return cls(
            client,
            login_per_account=settings.throttle_login_per_account,
            login_per_address=settings.throttle_login_per_address,
            intake_per_address=settings.throttle_intake_per_address,
            intake_per_contact=settings.throttle_intake_per_contact,
            email_per_sender=settings.throttle_email_per_sender,
        )

    async def _refuse_if_spent(self, checks: list[tuple[Rule, str]]) -> None:
        for rule, key in checks:
            if not await self._limiter.test(rule.limit, rule.name, key):
                await self._refuse(rule, key)

    async def _count(self, rule: Rule, key: str) -> None:
        """Count one use; 429 when requests running at once spent the window between the check
        and this (the hit is atomic in Redis, the check before it is not)."""
        if not await self._limiter.hit(rule.limit, rule.name, key):
            await self._refuse(rule, key)

    async def _refuse(self, rule: Rule, key: str) -> None:
        stats = await self._limiter.get_window_stats(rule.limit, rule.name, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"Too many attempts; try again in {retry_after} s",
            retry_after=retry_after,
            limit=rule.name,
        )

    # ---- sign-in ---------------------------------------------------------------------------------

    async def before_login(self, *, username: str, address: str) -> None:
        """Refuse (429) while the account or the address is locked out.

        The account's attempt is counted here, in the same atomic step as the check (a success
        clears the count again): counted only after the password check, guesses sent at once all
        passed the check before the first failure was counted. The address counts failures only
        (after the check), so the staff of one office behind one address can all sign in; a burst
        from one address may overshoot its limit by the burst's size, never an account's."""
        await self._refuse_if_spent([(self.login_address, address)])
        await self._count(self.login_account, _id(username))

    async def login_failed(self, *, username: str, address: str) -> None:
        # The account's attempt was counted by before_login.
        await self._limiter.hit(self.login_address.limit, self.login_address.name, address)

    async def login_succeeded(self, *, username: str) -> None:
        await self._limiter.clear(self.login_account.limit, self.login_account.name, _id(username))

    async def spend(self, rule: Rule, key: str) -> None:
        """Count one use of ``rule`` for ``key``; 429 once it is spent (the refused one not counted)."""
        await self._refuse_if_spent([(rule, key)])
        await self._count(rule, key)

    # ---- public intake -----------------------------------------------------------------------------

    async def intake(self, *, kind: str, address: str, contacts: list[str | None]) -> None:
        """Count one public submission (``kind``: chat, ticket) per address and per contact;
        429 once any of them is spent (the refused request is not counted)."""
        checks = [(Rule(f"{self.intake_address.name}-{kind}", self.intake_address.limit), address)]
        rule = Rule(f"{self.intake_contact.name}-{kind}", self.intake_contact.limit)
        checks += [(rule, _id(contact)) for contact in dict.fromkeys(c for c in contacts if c)]
        await self._refuse_if_spent(checks)
        for checked, key in checks:
            await self._count(checked, key)

    async def inbound_email(self, *, sender: str) -> None:
        """Count one inbound email of ``sender``; TooManyRequests once the sender's window is spent."""
        await self.spend(self.email_sender, _id(sender))
