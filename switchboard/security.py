"""The one place that touches python-jose and argon2.

Passwords: argon2 costs ~170-200 ms of CPU per hash or check on the reference machine. The app
calls the ``*_off_loop`` forms, which run it on a small pool of low-priority threads: argon2-cffi
releases the GIL while hashing, so the event loop keeps serving every socket of the process during
a login (on the loop, each login froze them all for ~200 ms).

Tokens: HS256 only (a fixed list, so ``alg: none`` and algorithm-confusion tokens are refused),
``exp``/``iat``/``sub``/``aud``/``iss`` required, at most 30 s of clock leeway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jose import JWTError, jwt

ALGORITHMS = ["HS256"]
LEEWAY_SECONDS = 30

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


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


# One thread per core: more would only queue inside the kernel and hold 64 MiB of argon2 memory each.
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


def issue_token(
    *,
    subject: str,
    role: str,
    secret: str,
    issuer: str,
    audience: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHMS[0])


def decode_token(token: str, *, secret: str, issuer: str, audience: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
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
    return TokenClaims(
        subject=str(claims["sub"]), role=role, expires_at=datetime.fromtimestamp(claims["exp"], UTC)
    )


def csrf_token_for(session_marker: str, secret: str) -> str:
    """A CSRF token bound to the browser's auth cookie (or pre-login marker) by HMAC."""
    return hmac.new(secret.encode(), f"csrf:{session_marker}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(token: str | None, session_marker: str, secret: str) -> bool:
    return bool(token) and hmac.compare_digest(token, csrf_token_for(session_marker, secret))
