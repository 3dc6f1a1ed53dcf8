"""The one place that touches python-jose and argon2.

Passwords: argon2id with OWASP's recommended minimum (19 MiB of memory, 2 passes, 1 lane): ~27 ms
of CPU per hash or check on the reference machine. argon2-cffi's default (RFC 9106's low-memory
profile, 64 MiB, 3 passes, 4 lanes) costs ~217 ms, so 1,000 agents signing in at shift start
needed ~3.6 CPU-minutes in one minute, more than a two-core app host has; at this cost they need
~0.5 of a core. A hash made with other parameters (the old default) still verifies and is replaced
at the user's next successful sign-in (``password_needs_rehash``). The app calls the
``*_off_loop`` forms, which run argon2 on a small pool of low-priority threads: argon2-cffi releases
the GIL while hashing, so the event loop keeps serving every socket of the process during a login.

Tokens: HS256 only (a fixed list, so ``alg: none`` and algorithm-confusion tokens are refused),
``exp``/``iat``/``sub``/``aud``/``iss`` required, at most 30 s of clock leeway.

Keys: staff sessions are signed with ``secret_key`` and name it by a key id (``kid``, a hash
prefix), so after a rotation the keys in ``previous_secret_keys`` still verify the sessions they
signed. Customer (bank-app) chat tokens have a key of their own (``app_token_key``): a staff key
never verifies a customer token, nor the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jose import JWTError, jwt

if TYPE_CHECKING:
    from switchboard.settings import Settings

ALGORITHMS = ["HS256"]
LEEWAY_SECONDS = 30

# OWASP Password Storage Cheat Sheet, argon2id: "a minimum configuration of 19 MiB of memory, an
# iteration count of 2, and 1 degree of parallelism".
PASSWORD_HASH_PARAMETERS: dict[str, int] = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
_hasher = PasswordHasher(
    time_cost=PASSWORD_HASH_PARAMETERS["time_cost"],
    memory_cost=PASSWORD_HASH_PARAMETERS["memory_cost"],
    parallelism=PASSWORD_HASH_PARAMETERS["parallelism"],
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_needs_rehash(password_hash: str) -> bool:
    """Made with other parameters than today's (checked after a successful verification)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Hashing threads run at a lower priority (Linux nice is per thread) so that, on a busy machine, the
# event loop and the routing engine get the CPU first and logins take the rest: 1,000 agents signing
# in at shift start need ~3 cores for a minute here, more than the whole machine.
HASH_THREAD_NICENESS = 10


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted: same code, fair share
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


# One thread per core: more would only queue inside the kernel and hold argon2's memory each.
_hash_pool = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 1, thread_name_prefix="argon2", initializer=_lower_priority
)


async def hash_password_off_loop(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, hash_password, password)


async def verify_password_off_loop(password_hash: str, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hash_pool, verify_password, password_hash, password)


# A hash of a random password: verifying against it on unknown users keeps login timing uniform.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


class TokenError(Exception):
    """The token is missing, malformed, expired, forged or meant for someone else."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    expires_at: datetime
    version: int = 0  # the user's token version when issued (``ver``): a bump ends older sessions


def key_id(secret: str) -> str:
    """Names a key without revealing it (the ``kid`` header)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def issue_token(
    *,
    subject: str,
    role: str,
    secret: str,
    issuer: str,
    audience: str,
    ttl: timedelta,
    now: datetime | None = None,
    version: int | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    if version is not None:
        claims["ver"] = version
    return jwt.encode(claims, secret, algorithm=ALGORITHMS[0], headers={"kid": key_id(secret)})


def _verifying_key(token: str, secret: str, previous: Sequence[str]) -> str:
    """The key the token names: the current one (or no ``kid``: the current one), or a previous one."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except JWTError as exc:
        raise TokenError(str(exc)) from exc
    if kid is None or kid == key_id(secret):
        return secret
    for old in previous:
        if kid == key_id(old):
            return old
    raise TokenError("token signed with an unknown key")


def decode_token(
    token: str, *, secret: str, issuer: str, audience: str, previous: Sequence[str] = ()
) -> TokenClaims:
    key = _verifying_key(token, secret, previous)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_sub": True,
                "require_aud": True,
                "require_iss": True,
                "leeway": LEEWAY_SECONDS,
            },
        )
    except JWTError as exc:
        raise TokenError(str(exc)) from exc
    role = claims.get("role")
    if not isinstance(role, str):
        raise TokenError("token has no role")
    version = claims.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise TokenError("token version is not an integer")
    return TokenClaims(
        subject=str(claims["sub"]),
        role=role,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        version=version,
    )


def decode_session_token(token: str, settings: Settings) -> TokenClaims:
    """A staff (or portal) session token: the session keys, issuer and audience."""
    return decode_token(
        token,
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        previous=settings.previous_secret_keys,
    )


APP_TOKEN_KEY_CONTEXT = b"switchboard customer app token v1"


def app_token_key(settings: Settings) -> str | None:
    """The key of bank-app chat tokens: configured, or (outside production) derived from the
    session key by HMAC, so it is never the staff key itself. None: app sign-in is refused."""
    if settings.app_token_secret:
        return settings.app_token_secret
    if settings.is_production:
        return None
    return hmac.new(settings.secret_key.encode(), APP_TOKEN_KEY_CONTEXT, hashlib.sha256).hexdigest()


def csrf_token_for(session_marker: str, secret: str) -> str:
    """A CSRF token bound to the browser's auth cookie (or pre-login marker) by HMAC."""
    return hmac.new(secret.encode(), f"csrf:{session_marker}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(token: str | None, session_marker: str, secret: str, previous: Sequence[str] = ()) -> bool:
    """Pages rendered before a key rotation keep working: previous keys are accepted too."""
    if not token:
        return False
    return any(hmac.compare_digest(token, csrf_token_for(session_marker, key)) for key in (secret, *previous))
