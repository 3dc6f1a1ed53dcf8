"""``Idempotency-Key`` on the creates that make work: a retry returns the first request's interaction.

The plan, shared by every create path (the API's ORM path, its one-statement PostgreSQL path and
the chat start):

1. ``claim_from`` reads the header into a ``Claim`` (scope, owner, key, fingerprint of the body).
2. ``replayed`` looks the key up first: the interaction it made (a replay), None (a new key), or
   422 naming the header when the same key came with a different body (as Stripe answers).
3. The create inserts the key row in the SAME transaction / statement as the interaction
   (``row_params``: the chat start and tickets through ``record_key``, the interaction create through
   its plan, ``interactions.create_plan``, which both of its writers execute).
4. Two requests racing with one key both pass step 2; the primary key (scope, owner, key) lets
   one commit and fails the other, which rolls back everything it wrote and goes to step 2 again,
   now a replay. A database fact, so it holds across processes and across an engine fail-over
   (the engine is not involved: the key, the interaction and its queued state commit together).

Expiry: a key is kept ``KEY_TTL`` (24 h, as Stripe). ``replayed`` deletes an expired row it meets
(so a key may be reused once expired, even if nobody purges), and ``purge_expired`` deletes the
rest in batches; the worker's maintenance pass runs it (switchboard.jobs).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import IdempotencyKey
from switchboard.db import utcnow
from switchboard.errors import Invalid

HEADER = "Idempotency-Key"
FIELD = f"header.{HEADER}"
REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on an answer that created nothing (Stripe's name)
KEY_TTL = timedelta(hours=24)
MAX_KEY_CHARS = 255
PUBLIC_MIN_CHARS = 16  # the public intake (chat, tickets): the key alone ties a retry to its request
PUBLIC = "public"  # the owner of keys sent without signing in
T = TypeVar("T")


def openapi(min_chars: int = 1) -> dict[str, Any]:
    """The header in a route's OpenAPI (``openapi_extra``): read by ``claim_from``, not by FastAPI."""
    return {
        "parameters": [
            {
                "name": HEADER,
                "in": "header",
                "required": False,
                "description": (
                    "Makes the create safe to retry: the same key (and body) answers the first "
                    f"request's interaction with `{REPLAYED_HEADER}: true`; the same key with another "
                    "body is a 422. Kept 24 h."
                ),
                "schema": {"type": "string", "minLength": min_chars, "maxLength": MAX_KEY_CHARS},
            }
        ]
    }


@dataclass(frozen=True, slots=True)
class Claim:
    scope: str  # which create ("interactions", "chat")
    owner: str  # whose key: a user, or "public" for the unauthenticated intake
    key: str
    fingerprint: str  # sha256 of the canonical request body


def fingerprint(body: BaseModel) -> str:
    """The body as JSON with sorted keys: the same request hashes the same whatever its key order."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_from(
    headers: Mapping[str, str], *, scope: str, owner: str, body: BaseModel, min_chars: int = 1
) -> Claim | None:
    """The request's claim, or None without the header. ``min_chars``: on the public intake the key
    is all that ties a retry to its first request, so it must be unguessable (a UUID)."""
    key = headers.get(HEADER)
    if key is None:
        return None
    if not (min_chars <= len(key) <= MAX_KEY_CHARS) or not key.isascii() or not key.isprintable():
        raise Invalid(
            f"{HEADER} must be {min_chars}-{MAX_KEY_CHARS} printable ASCII characters (a UUID is ideal)",
            field=FIELD,
        )
    return Claim(scope=scope, owner=owner, key=key, fingerprint=fingerprint(body))


def _where(claim: Claim) -> Any:
    return (
        (IdempotencyKey.scope == claim.scope)
        & (IdempotencyKey.owner == claim.owner)
        & (IdempotencyKey.key == claim.key)
    )


async def replayed(session: AsyncSession, claim: Claim, *, now: datetime | None = None) -> uuid.UUID | None:
    """The interaction an earlier request with this key created (a replay), or None (a new key).

    Raises Invalid (422, naming the header) when the key was used with a different body. Leaves
    the session's transaction open: the caller creates in it, or ends it.
    """
    now = now or utcnow()
    row = (await session.execute(select(IdempotencyKey).where(_where(claim)))).scalar_one_or_none()
    if row is None:
        return None
    if row.expires_at <= now:
        await session.execute(
            delete(IdempotencyKey).where(_where(claim) & (IdempotencyKey.expires_at <= now))
        )
        await session.flush()
        return None
    if row.request_hash != claim.fingerprint:
        raise Invalid(
            f"This {HEADER} was already used with a different request body; use a new key for a new request",
            field=FIELD,
        )
    return row.interaction_id


def row_params(claim: Claim, interaction_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The key row's columns (the ORM insert and the lean statement's CTE take the same values)."""
    return {
        "scope": claim.scope,
        "owner": claim.owner,
        "key": claim.key,
        "request_hash": claim.fingerprint,
        "interaction_id": interaction_id,
        "created_at": now,
        "expires_at": now + KEY_TTL,
    }


async def record_key(
    session: AsyncSession, claim: Claim, interaction_id: uuid.UUID, *, now: datetime | None = None
) -> None:
    """Insert the key row in the create's transaction; a racing twin makes the flush (or the
    commit) raise IntegrityError, and the caller rolls back and asks ``replayed`` again."""
    session.add(IdempotencyKey(**row_params(claim, interaction_id, now or utcnow())))
    await session.flush()


async def once(
    session: AsyncSession,
    claim: Claim | None,
    create: Callable[[], Awaitable[tuple[T, uuid.UUID]]],
    replay: Callable[[uuid.UUID], Awaitable[T]],
    *,
    record: bool = True,
) -> tuple[T, bool]:
    """The plan on an ORM session: ``create`` (returning its result and the interaction it made)
    and commit, at most once per key; else ``replay`` the first request's interaction. Returns
    (result, replayed). Without a claim, just ``create`` and commit. ``record=False``: ``create``
    inserts the key row itself (a create plan carries it: ``interactions.create_plan``)."""
    if claim is not None:
        first = await replayed(session, claim)
        if first is not None:
            return await replay(first), True
    try:
        result, interaction_id = await create()
        if claim is not None and record:
            await record_key(session, claim, interaction_id)
        await session.commit()
    except IntegrityError:
        if claim is None:
            raise
        # A twin with the same key committed first: nothing of ours stays, answer with theirs.
        await session.rollback()
        session.expunge_all()  # rolled-back rows must not be read back from the identity map
        first = await replayed(session, claim)
        if first is None:  # pragma: no cover - the violation was not the key's
            raise
        return await replay(first), True
    return result, False


async def purge_expired(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete expired keys (one statement over the ``expires_at`` index; run every maintenance pass,
    so each deletes about a pass's worth of keys); returns how many, commits."""
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow()))
    )
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
