"""Every route declares who may call it, and the app enforces it (DESIGN §6).

* ``ROUTE_MIN_ROLE`` must list every (method, path) the app serves: a new route fails this file
  until its author declares the least role allowed to call it.
* Without credentials every non-public route answers 401 (problem+json).
* A user one rank below the minimum gets 403 (problem+json) -- or 401 when the minimum is
  "customer" (any signed-in user), since one rank below that is nobody.
* A user holding the minimum role gets past authentication and authorisation (neither 401 nor
  403); what happens next (404 for the random id, 422 for the empty body) does not matter here.

Roles ladder: public < customer < agent < supervisor < admin. "customer" means "any signed-in
user" (the route itself then decides what that user may see, e.g. only their own interactions).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import AsyncClient

from routing.models import Agent
from switchboard.auth.models import Role
from switchboard.db import Database

PROBLEM_JSON = "application/problem+json"

LADDER = ("public", "customer", "agent", "supervisor", "admin")
ROLE_FOR = {
    "customer": Role.CUSTOMER,
    "agent": Role.AGENT,
    "supervisor": Role.SUPERVISOR,
    "admin": Role.ADMIN,
}

# Routes anyone may call (they may still refuse, e.g. POST /login without its CSRF token).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/api/auth/token",
        "/login",
        "/logout",
        "/",
        # carrier webhooks: no user, but every request must carry a valid carrier signature
        "/carrier/twilio/voice/incoming",
        "/carrier/twilio/voice/gather",
        "/carrier/twilio/voice/wait",
        "/carrier/twilio/voice/queue-action",
        "/carrier/twilio/voice/status",
        "/carrier/twilio/voice/answer",
        "/chat",
        "/chat/widget.js",
        "/chat/start",
        "/chat/{interaction_id}/feedback",
        # tickets: anyone may file one (the web form and its JSON twin)
        "/api/tickets",
        "/support/new",
    }
)

ROUTE_MIN_ROLE: dict[tuple[str, str], str] = {
    # wiring
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    # auth
    ("POST", "/api/auth/token"): "public",
    ("GET", "/api/auth/me"): "customer",
    ("POST", "/api/auth/users"): "admin",
    # failed background jobs (switchboard.jobs_admin)
    ("GET", "/api/admin/jobs"): "admin",
    ("POST", "/api/admin/jobs/{job_id}/{action}"): "admin",
    ("GET", "/admin/jobs"): "admin",
    ("POST", "/admin/jobs/{job_id}/retry"): "admin",
    ("POST", "/admin/jobs/{job_id}/discard"): "admin",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "public",
    ("GET", "/"): "public",  # redirects to /login when signed out
    # customers
    ("GET", "/api/customers/tier-policy"): "agent",
    ("PUT", "/api/customers/tier-policy"): "supervisor",
    ("GET", "/api/customers"): "supervisor",
    ("POST", "/api/customers"): "supervisor",
    ("GET", "/api/customers/{customer_id}"): "agent",  # staff only; agents see only their own customers
    ("PATCH", "/api/customers/{customer_id}"): "supervisor",
    ("POST", "/api/customers/{customer_id}/identities"): "agent",
    ("POST", "/api/customers/{customer_id}/merge"): "supervisor",
    ("GET", "/api/customers/{customer_id}/timeline"): "customer",  # visibility-scoped
    # interactions
    ("POST", "/api/interactions"): "agent",  # agents: outbound only
    # voice: callbacks, outbound contact, carrier webhooks (signature-checked, see PUBLIC_PATHS)
    ("POST", "/api/interactions/outbound"): "agent",  # attached to the calling agent
    ("POST", "/api/interactions/{interaction_id}/callback"): "customer",  # visibility-scoped
    ("POST", "/carrier/twilio/voice/incoming"): "public",
    ("POST", "/carrier/twilio/voice/gather"): "public",
    ("POST", "/carrier/twilio/voice/wait"): "public",
    ("POST", "/carrier/twilio/voice/queue-action"): "public",
    ("POST", "/carrier/twilio/voice/status"): "public",
    ("POST", "/carrier/twilio/voice/answer"): "public",  # an outbound leg we placed was answered
    ("GET", "/api/interactions"): "customer",  # visibility-scoped
    ("GET", "/api/interactions/{interaction_id}"): "customer",  # visibility-scoped
    ("POST", "/api/interactions/{interaction_id}/transition"): "supervisor",
    ("PUT", "/api/interactions/{interaction_id}/disposition"): "agent",
    ("POST", "/api/interactions/{interaction_id}/messages"): "agent",
    ("GET", "/api/interactions/{interaction_id}/messages"): "customer",  # visibility-scoped
    ("POST", "/api/interactions/{interaction_id}/notes"): "agent",
    ("GET", "/api/interactions/{interaction_id}/timeline"): "customer",  # visibility-scoped, notes hidden
    # tickets and email: anyone may file a ticket; replies go out as the holding agent
    ("POST", "/api/tickets"): "public",
    ("GET", "/support/new"): "public",
    ("POST", "/support/new"): "public",
    ("POST", "/api/interactions/{interaction_id}/reply"): "agent",
    # routing: rule sets are the supervisors' business
    ("GET", "/api/routing/rule-sets"): "supervisor",
    ("POST", "/api/routing/rule-sets"): "supervisor",
    ("POST", "/api/routing/rule-sets/validate"): "supervisor",
    ("POST", "/api/routing/rule-sets/rollback"): "supervisor",
    ("GET", "/api/routing/rule-sets/{version}"): "supervisor",
    ("PUT", "/api/routing/rule-sets/{version}"): "supervisor",
    ("POST", "/api/routing/rule-sets/{version}/publish"): "supervisor",
    ("POST", "/api/routing/rule-sets/reevaluate"): "supervisor",
    ("POST", "/api/routing/rule-sets/{version}/preview"): "supervisor",
    ("POST", "/api/routing/presence"): "agent",
    ("GET", "/api/routing/offers"): "agent",
    ("POST", "/api/routing/offers/{offer_id}/accept"): "agent",
    ("POST", "/api/routing/offers/{offer_id}/reject"): "agent",
    ("POST", "/api/routing/interactions/{interaction_id}/wrap-up"): "agent",
    ("POST", "/api/routing/interactions/{interaction_id}/complete"): "agent",
    ("POST", "/api/routing/interactions/{interaction_id}/abandon"): "supervisor",
    ("POST", "/api/routing/interactions/{interaction_id}/transfer"): "agent",
    ("GET", "/api/routing/interactions/{interaction_id}/transfer"): "agent",
    ("POST", "/api/routing/interactions/{interaction_id}/transfer/cancel"): "agent",
    ("POST", "/api/routing/dry-run"): "supervisor",
    # Any signed-in user who was handed a 202 for an engine call; others get 404 (not theirs).
    ("GET", "/api/routing/commands/{request_id}"): "customer",
    ("GET", "/api/routing/stats"): "supervisor",
    ("GET", "/api/routing/stats/history"): "supervisor",
    # routing: outgoing webhooks
    ("POST", "/api/routing/webhooks"): "supervisor",
    ("GET", "/api/routing/webhooks"): "supervisor",
    ("GET", "/api/routing/webhooks/{subscription_id}"): "supervisor",
    ("PATCH", "/api/routing/webhooks/{subscription_id}"): "supervisor",
    ("DELETE", "/api/routing/webhooks/{subscription_id}"): "supervisor",
    ("POST", "/api/routing/webhooks/{subscription_id}/test"): "supervisor",
    # agent desktop (HTML; the /desktop/ws websocket authenticates itself, see tests/agent_desktop)
    ("GET", "/desktop"): "agent",  # browsers without a session are redirected to /login
    ("POST", "/desktop/presence"): "agent",
    ("GET", "/desktop/interactions/{interaction_id}/customer"): "agent",
    # agent desktop: work around an interaction (agent_desktop/work.py) and the EX pulse
    ("GET", "/desktop/interactions/{interaction_id}/tools"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/notes"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/wrap-up"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/complete"): "agent",
    ("GET", "/desktop/interactions/{interaction_id}/transfer/agents"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/transfer"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/transfer/cancel"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/contact-customer"): "agent",
    ("GET", "/desktop/interactions/{interaction_id}/canned"): "agent",
    ("POST", "/desktop/ex/pulse"): "agent",
    ("POST", "/desktop/ex/checkin"): "agent",
    ("GET", "/api/ex/pulse"): "supervisor",  # averages and counts only, never one agent's answers
    # web chat: customers need no login; the per-chat access token authorises feedback
    ("GET", "/chat"): "public",
    ("GET", "/chat/widget.js"): "public",
    ("POST", "/chat/start"): "public",
    ("POST", "/chat/{interaction_id}/feedback"): "public",
    ("GET", "/desktop/interactions/{interaction_id}/chat"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/messages"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/typing"): "agent",
    # agent desktop: the conversation in a tab (thread of linked legs, email reply, call controls)
    ("GET", "/desktop/interactions/{interaction_id}/thread"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/email-reply"): "agent",
    ("GET", "/desktop/attachments/{attachment_id}"): "agent",  # only customers the agent serves
    ("GET", "/desktop/interactions/{interaction_id}/voice"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/call/{action}"): "agent",
}

_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def iter_api_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every APIRoute, including those inside included routers.

    Recent FastAPI keeps included routers as branches (``effective_route_contexts``) instead of
    copying their routes into ``app.routes``; older versions list APIRoutes directly.
    """
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                if isinstance(ctx.original_route, APIRoute):
                    for method in sorted(ctx.methods):
                        yield method, ctx.path
        elif isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, route.path


def _served(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(set(iter_api_routes(app)) - {("HEAD", p) for p in PUBLIC_PATHS})


def _concrete(path: str) -> str:
    return _PATH_PARAM.sub(lambda _: str(uuid.uuid4()), path)


async def _call(client: AsyncClient, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = {}
    return await client.request(method, _concrete(path), **kwargs)


# ---------------------------------------------------------------- the table is complete


def test_every_route_declares_its_minimum_role(app: FastAPI) -> None:
    served = _served(app)
    assert served, "no routes found: iter_api_routes no longer understands this FastAPI"
    missing = [f"{m} {p}" for m, p in served if (m, p) not in ROUTE_MIN_ROLE]
    assert not missing, "routes without a declared minimum role in ROUTE_MIN_ROLE:\n  " + "\n  ".join(missing)


def test_table_has_no_stale_entries(app: FastAPI) -> None:
    served = set(_served(app))
    stale = [f"{m} {p}" for m, p in ROUTE_MIN_ROLE if (m, p) not in served]
    assert not stale, "ROUTE_MIN_ROLE lists routes the app no longer serves:\n  " + "\n  ".join(stale)


def test_table_values_are_known_roles() -> None:
    assert set(ROUTE_MIN_ROLE.values()) <= set(LADDER)
    for (_, path), role in ROUTE_MIN_ROLE.items():
        assert (role == "public") == (path in PUBLIC_PATHS), path


# ---------------------------------------------------------------- enforcement


async def test_no_credentials_is_401_on_every_private_route(app: FastAPI, client: AsyncClient) -> None:
    failures = []
    for method, path in _served(app):
        role = ROUTE_MIN_ROLE.get((method, path))
        response = await _call(client, method, path, {})
        if role == "public" or (role is None and path in PUBLIC_PATHS):
            if response.status_code == 401 or response.status_code >= 500:
                failures.append(f"{method} {path}: public route answered {response.status_code}")
            continue
        if response.status_code != 401 or response.headers.get("content-type") != PROBLEM_JSON:
            failures.append(f"{method} {path}: expected 401 problem+json, got {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.fixture
async def role_headers(make_user: Callable[..., Any], db: Database) -> dict[str, dict[str, str]]:
    """Bearer headers for one user per role; the agent user has an agent profile."""
    headers: dict[str, dict[str, str]] = {}
    for name, role in ROLE_FOR.items():
        user, h = await make_user(role)
        headers[name] = h
        if role is Role.AGENT:
            async with db.sessionmaker() as s:
                s.add(Agent(user_id=user.id, display_name="Route Test Agent", languages=["en"]))
                await s.commit()
    return headers


async def test_one_rank_below_minimum_is_refused(
    app: FastAPI, client: AsyncClient, role_headers: dict[str, dict[str, str]]
) -> None:
    failures = []
    checked = 0
    for method, path in _served(app):
        role = ROUTE_MIN_ROLE.get((method, path))
        if role in (None, "public", "customer"):
            continue  # customer: one rank below is anonymous, covered by the 401 walk
        below = LADDER[LADDER.index(role) - 1]
        response = await _call(client, method, path, role_headers[below])
        checked += 1
        if response.status_code != 403 or response.headers.get("content-type") != PROBLEM_JSON:
            failures.append(
                f"{method} {path}: {below} (below {role}) expected 403 problem+json, "
                f"got {response.status_code}"
            )
    assert checked > 0
    assert not failures, "\n".join(failures)


async def test_minimum_role_gets_past_auth(
    app: FastAPI, client: AsyncClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """The table is not stricter than the app: the declared role itself is let through."""
    failures = []
    for method, path in _served(app):
        role = ROUTE_MIN_ROLE.get((method, path))
        if role in (None, "public"):
            continue
        response = await _call(client, method, path, role_headers[role])
        if response.status_code in (401, 403) or response.status_code >= 500:
            failures.append(f"{method} {path}: {role} got {response.status_code}: {response.text[:200]}")
    assert not failures, "\n".join(failures)


async def test_higher_roles_inherit_staff_routes(
    app: FastAPI, client: AsyncClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """Staff rank is a ladder: admin may do whatever a supervisor or agent may."""
    failures = []
    for method, path in _served(app):
        role = ROUTE_MIN_ROLE.get((method, path))
        if role not in ("agent", "supervisor"):
            continue
        for higher in LADDER[LADDER.index(role) + 1 :]:
            response = await _call(client, method, path, role_headers[higher])
            if response.status_code in (401, 403):
                failures.append(f"{method} {path}: {higher} (above {role}) got {response.status_code}")
    assert not failures, "\n".join(failures)
