"""A property-based run of the OpenAPI document with schemathesis against a real app process:
every documented operation gets generated requests (valid ones, and ones that break the schema),
signed in as a supervisor; no answer may be a 5xx, and every answer must conform to the document
(a documented status, its content type, its schema, its headers).

Bounded so CI stays quick: a few examples per operation and mode, derandomised (the same cases
every run, so a failure reproduces), no example database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from switchboard.auth.models import Role
from switchboard.auth.service import create_user, token_for
from switchboard.db import Database
from tests.helpers import TEST_PASSWORD, truncate_all
from tests.live_app import live_settings, running_app

EXAMPLES = 6  # per operation and generation mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Sign-out, password and user administration would end or change the session the run uses.
SKIPPED = {
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/me/password"),
    ("POST", "/api/auth/users/{user_id}/disable"),
    ("POST", "/api/auth/users/{user_id}/password"),
    ("PATCH", "/api/auth/users/{user_id}"),
}


@dataclass
class Live:
    base: str
    headers: dict[str, str]


@pytest.fixture
async def live(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[Live]:
    settings_ = live_settings(backend_url, redis_handle.url, tmp_path, name="fuzz")
    db = Database(backend_url, schema=settings_.database_schema)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        user = await create_user(
            s, username="fuzz-sup", display_name="Fuzz", role=Role.SUPERVISOR, password=TEST_PASSWORD
        )
        await s.commit()
    headers = {"Authorization": f"Bearer {token_for(user, settings_)[0]}"}
    try:
        async with running_app(settings_, tmp_path / "app.log") as base:
            yield Live(base, headers)
    finally:
        await db.dispose()


def _fuzz(live: Live, spec: dict) -> list[str]:
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                case.call_and_validate(base_url=live.base, headers=live.headers, checks=CHECKS, timeout=10)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to break: the operation takes no input (negative mode)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation is reported
                found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
                detail = "\n".join(str(e)[:1200] for e in found)
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}):\n{detail}")
    return failures


async def test_every_operation_answers_per_the_document_and_never_5xx(live: Live):
    async with httpx.AsyncClient(base_url=live.base) as client:
        spec = (await client.get("/openapi.json")).json()
    failures = await asyncio.to_thread(_fuzz, live, spec)
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
