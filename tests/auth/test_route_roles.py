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

from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import agent_profile
from workforce.deps import get_current_agent

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
        "/carrier/twilio/voice/tones",
        "/carrier/twilio/voice/agent-leg",
        "/chat",
        "/chat/widget.js",
        "/chat/start",
        "/chat/{interaction_id}/feedback",
        "/chat/{interaction_id}/verify",
        "/chat/{interaction_id}/verify/send",
        "/chat/{interaction_id}/callback",
        "/chat/{interaction_id}/message",
        # tickets: anyone may file one (the web form and its JSON twin)
        "/api/tickets",
        "/support/new",
        # surveys: the signed one-time link is the authority (experience.survey_pages)
        "/survey/{token}",
    }
)

ROUTE_MIN_ROLE: dict[tuple[str, str], str] = {
    # wiring
    ("GET", "/healthz"): "public",
    ("GET", "/docs"): "public",  # served by switchboard.api_docs (our own assets, under the CSP)
    ("GET", "/redoc"): "public",
    ("GET", "/readyz"): "public",
    # auth
    ("POST", "/api/auth/token"): "public",
    ("GET", "/api/auth/me"): "customer",
    ("POST", "/api/auth/users"): "admin",
    ("POST", "/api/auth/logout"): "customer",
    ("POST", "/api/auth/me/password"): "customer",
    ("GET", "/api/auth/users"): "admin",
    ("PATCH", "/api/auth/users/{user_id}"): "admin",
    ("POST", "/api/auth/users/{user_id}/disable"): "admin",
    ("POST", "/api/auth/users/{user_id}/enable"): "admin",
    ("POST", "/api/auth/users/{user_id}/password"): "admin",
    # user administration page (switchboard.auth.admin_pages)
    ("GET", "/admin/users"): "admin",
    ("POST", "/admin/users/{user_id}/disable"): "admin",
    ("POST", "/admin/users/{user_id}/enable"): "admin",
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
    ("POST", "/carrier/twilio/voice/tones"): "public",  # keypad tones played into the conference
    ("POST", "/carrier/twilio/voice/agent-leg"): "public",  # the agent's device: answered, or not
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
    ("GET", "/survey/{token}"): "public",
    ("POST", "/survey/{token}"): "public",
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
    ("POST", "/api/routing/conditions/validate"): "supervisor",
    ("GET", "/api/routing/conditions/attributes"): "supervisor",
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
    ("GET", "/desktop/offers/{offer_id}/origin"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/transfer"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/transfer/cancel"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/contact-customer"): "agent",
    ("GET", "/desktop/interactions/{interaction_id}/canned"): "agent",
    ("POST", "/desktop/ex/pulse"): "agent",
    ("POST", "/desktop/ex/checkin"): "agent",
    ("GET", "/desktop/follow-ups"): "agent",  # the follow-ups the user owns
    ("POST", "/desktop/follow-ups/{follow_up_id}"): "agent",  # owner-scoped
    ("GET", "/api/ex/pulse"): "supervisor",  # averages and counts only, never one agent's answers
    # supervisor console: its home, the audit log, its page and its CSV export
    ("GET", "/supervisor"): "supervisor",  # browsers without a session are redirected to /login
    ("GET", "/supervisor/audit"): "supervisor",
    ("GET", "/api/audit"): "supervisor",
    ("GET", "/api/audit/export.csv"): "supervisor",
    # administration (console.admin): the same seven routes for every entity
    ("GET", "/api/queues"): "supervisor",
    ("POST", "/api/queues"): "supervisor",
    ("GET", "/api/queues/{key}"): "supervisor",
    ("PATCH", "/api/queues/{key}"): "supervisor",
    ("DELETE", "/api/queues/{key}"): "supervisor",
    ("GET", "/supervisor/queues"): "supervisor",
    # the rules editor (console/rules_*.py)
    ("GET", "/supervisor/rules"): "supervisor",
    ("GET", "/supervisor/rules/new"): "supervisor",
    ("POST", "/supervisor/rules/new"): "supervisor",
    ("POST", "/supervisor/rules/check"): "supervisor",
    ("POST", "/supervisor/rules/reevaluate"): "supervisor",
    ("GET", "/supervisor/rules/{version}"): "supervisor",
    ("GET", "/supervisor/rules/{version}/edit"): "supervisor",
    ("POST", "/supervisor/rules/{version}/edit"): "supervisor",
    ("POST", "/supervisor/rules/{version}/publish"): "supervisor",
    ("POST", "/supervisor/rules/{version}/rollback"): "supervisor",
    ("POST", "/supervisor/rules/{version}/dry-run"): "supervisor",
    ("POST", "/supervisor/rules/{version}/preview"): "supervisor",
    ("POST", "/supervisor/queues/{queue_id}"): "supervisor",
    ("POST", "/supervisor/queues/{queue_id}/chat-wait"): "supervisor",
    ("POST", "/supervisor/queues/{queue_id}/thresholds"): "supervisor",
    ("GET", "/api/queue-thresholds"): "supervisor",
    ("GET", "/api/queue-thresholds/{queue}"): "supervisor",
    ("PUT", "/api/queue-thresholds/{queue}"): "supervisor",
    ("GET", "/supervisor/tier-policy"): "supervisor",
    ("POST", "/supervisor/tier-policy"): "supervisor",
    ("POST", "/supervisor/tier-policy/preview"): "supervisor",
    ("GET", "/supervisor/queues/new"): "supervisor",
    ("POST", "/supervisor/queues"): "supervisor",
    ("GET", "/supervisor/queues/{key}/edit"): "supervisor",
    ("POST", "/supervisor/queues/{key}/edit"): "supervisor",
    ("POST", "/supervisor/queues/{key}/delete"): "supervisor",
    ("GET", "/api/skills"): "supervisor",
    ("POST", "/api/skills"): "supervisor",
    ("GET", "/api/skills/{key}"): "supervisor",
    ("PATCH", "/api/skills/{key}"): "supervisor",
    ("DELETE", "/api/skills/{key}"): "supervisor",
    ("GET", "/supervisor/skills"): "supervisor",
    ("GET", "/supervisor/skills/new"): "supervisor",
    ("POST", "/supervisor/skills"): "supervisor",
    ("GET", "/supervisor/skills/{key}/edit"): "supervisor",
    ("POST", "/supervisor/skills/{key}/edit"): "supervisor",
    ("POST", "/supervisor/skills/{key}/delete"): "supervisor",
    ("GET", "/api/agents"): "supervisor",
    ("POST", "/api/agents"): "supervisor",
    ("GET", "/api/agents/{key}"): "supervisor",
    ("PATCH", "/api/agents/{key}"): "supervisor",
    ("DELETE", "/api/agents/{key}"): "supervisor",
    ("GET", "/supervisor/agents"): "supervisor",
    ("GET", "/supervisor/agents/new"): "supervisor",
    ("POST", "/supervisor/agents"): "supervisor",
    ("GET", "/supervisor/agents/{key}/edit"): "supervisor",
    ("POST", "/supervisor/agents/{key}/edit"): "supervisor",
    ("POST", "/supervisor/agents/{key}/delete"): "supervisor",
    ("GET", "/api/teams"): "supervisor",
    ("POST", "/api/teams"): "supervisor",
    ("GET", "/api/teams/{key}"): "supervisor",
    ("PATCH", "/api/teams/{key}"): "supervisor",
    ("DELETE", "/api/teams/{key}"): "supervisor",
    ("GET", "/supervisor/teams"): "supervisor",
    ("GET", "/supervisor/teams/new"): "supervisor",
    ("POST", "/supervisor/teams"): "supervisor",
    ("GET", "/supervisor/teams/{key}/edit"): "supervisor",
    ("POST", "/supervisor/teams/{key}/edit"): "supervisor",
    ("POST", "/supervisor/teams/{key}/delete"): "supervisor",
    ("GET", "/api/wrap-up-codes"): "supervisor",
    ("POST", "/api/wrap-up-codes"): "supervisor",
    ("GET", "/api/wrap-up-codes/{key}"): "supervisor",
    ("PATCH", "/api/wrap-up-codes/{key}"): "supervisor",
    ("DELETE", "/api/wrap-up-codes/{key}"): "supervisor",
    ("GET", "/supervisor/wrap-up-codes"): "supervisor",
    ("GET", "/supervisor/wrap-up-codes/new"): "supervisor",
    ("POST", "/supervisor/wrap-up-codes"): "supervisor",
    ("GET", "/supervisor/wrap-up-codes/{key}/edit"): "supervisor",
    ("POST", "/supervisor/wrap-up-codes/{key}/edit"): "supervisor",
    ("POST", "/supervisor/wrap-up-codes/{key}/delete"): "supervisor",
    ("GET", "/api/canned-responses"): "supervisor",
    ("POST", "/api/canned-responses"): "supervisor",
    ("GET", "/api/canned-responses/{key}"): "supervisor",
    ("PATCH", "/api/canned-responses/{key}"): "supervisor",
    ("DELETE", "/api/canned-responses/{key}"): "supervisor",
    ("GET", "/supervisor/canned-responses"): "supervisor",
    ("GET", "/supervisor/canned-responses/new"): "supervisor",
    ("POST", "/supervisor/canned-responses"): "supervisor",
    ("GET", "/supervisor/canned-responses/{key}/edit"): "supervisor",
    ("POST", "/supervisor/canned-responses/{key}/edit"): "supervisor",
    ("POST", "/supervisor/canned-responses/{key}/delete"): "supervisor",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("GET", "/api/users/{key}"): "admin",
    ("PATCH", "/api/users/{key}"): "admin",
    ("DELETE", "/api/users/{key}"): "admin",
    ("GET", "/admin/users/new"): "admin",
    ("POST", "/admin/users"): "admin",
    ("GET", "/admin/users/{key}/edit"): "admin",
    ("POST", "/admin/users/{key}/edit"): "admin",
    ("POST", "/admin/users/{key}/delete"): "admin",
    ("GET", "/api/workforce/queues"): "supervisor",
    ("PATCH", "/api/workforce/queues/{queue_id}"): "supervisor",
    ("POST", "/api/workforce/staffing"): "supervisor",
    ("POST", "/api/workforce/simulations"): "supervisor",
    ("GET", "/api/workforce/simulations/{job_id}"): "supervisor",
    ("POST", "/api/supervisor/agents/{agent_id}/state"): "supervisor",
    ("POST", "/api/supervisor/interactions/{interaction_id}/end"): "supervisor",
    ("GET", "/supervisor/agents/{agent_id}/state"): "supervisor",
    ("POST", "/supervisor/agents/{agent_id}/state"): "supervisor",
    ("GET", "/supervisor/work"): "supervisor",
    ("POST", "/supervisor/work/{interaction_id}/end"): "supervisor",
    ("POST", "/supervisor/work/{interaction_id}/move"): "supervisor",
    ("POST", "/supervisor/work/{interaction_id}/priority"): "supervisor",
    ("POST", "/api/supervisor/interactions/{interaction_id}/move"): "supervisor",
    ("POST", "/api/supervisor/interactions/{interaction_id}/priority"): "supervisor",
    ("GET", "/supervisor/workforce/staffing"): "supervisor",
    ("GET", "/supervisor/workforce/adherence"): "supervisor",
    ("GET", "/api/workforce/adherence"): "supervisor",
    # workforce forecast (issue #13 item 1)
    ("GET", "/api/workforce/forecast"): "supervisor",
    ("PUT", "/api/workforce/forecast/overrides"): "supervisor",
    ("DELETE", "/api/workforce/forecast/overrides"): "supervisor",
    ("GET", "/api/workforce/holidays"): "supervisor",
    ("POST", "/api/workforce/holidays"): "supervisor",
    ("DELETE", "/api/workforce/holidays/{day}"): "supervisor",
    ("GET", "/supervisor/workforce/forecast"): "supervisor",
    ("POST", "/supervisor/workforce/forecast/overrides"): "supervisor",
    ("POST", "/supervisor/workforce/forecast/overrides/clear"): "supervisor",
    ("POST", "/supervisor/workforce/holidays"): "supervisor",
    ("POST", "/supervisor/workforce/holidays/{day}/remove"): "supervisor",
    ("GET", "/supervisor/workforce/simulation"): "supervisor",
    ("POST", "/supervisor/workforce/simulation"): "supervisor",
    ("GET", "/supervisor/workforce/simulation/jobs/{job_id}"): "supervisor",
    # shift swaps and time off (issue #13 item 5)
    ("GET", "/api/workforce/my/shift-requests"): "agent",
    ("POST", "/api/workforce/my/shift-requests"): "agent",
    ("POST", "/api/workforce/my/shift-requests/{request_id}/accept"): "agent",
    ("POST", "/api/workforce/my/shift-requests/{request_id}/decline"): "agent",
    ("POST", "/api/workforce/my/shift-requests/{request_id}/cancel"): "agent",
    ("GET", "/api/workforce/shift-requests"): "supervisor",
    ("POST", "/api/workforce/shift-requests/{request_id}/approve"): "supervisor",
    ("POST", "/api/workforce/shift-requests/{request_id}/refuse"): "supervisor",
    ("GET", "/supervisor/workforce/requests"): "supervisor",
    ("POST", "/supervisor/workforce/requests/{request_id}/{decision}"): "supervisor",
    ("GET", "/desktop/schedule"): "agent",  # the agent's own shifts, adherence and requests
    ("POST", "/desktop/schedule/requests"): "agent",
    ("POST", "/desktop/schedule/requests/{request_id}/{action}"): "agent",  # own or named-in only
    # schedules (issue #13 item 3)
    ("POST", "/api/workforce/shift-templates"): "supervisor",
    ("PUT", "/api/workforce/agents/{agent_id}/contract"): "supervisor",
    ("POST", "/api/workforce/schedules"): "supervisor",
    ("GET", "/api/workforce/schedules/{schedule_id}"): "supervisor",
    ("POST", "/api/workforce/schedules/{schedule_id}/shifts"): "supervisor",
    ("PATCH", "/api/workforce/schedules/{schedule_id}/shifts/{shift_id}"): "supervisor",
    ("DELETE", "/api/workforce/schedules/{schedule_id}/shifts/{shift_id}"): "supervisor",
    ("POST", "/api/workforce/schedules/{schedule_id}/publish"): "supervisor",
    ("GET", "/supervisor/workforce/schedules"): "supervisor",
    ("POST", "/supervisor/workforce/schedules"): "supervisor",
    ("GET", "/supervisor/workforce/schedules/{schedule_id}"): "supervisor",
    ("POST", "/supervisor/workforce/schedules/{schedule_id}/shifts"): "supervisor",
    ("POST", "/supervisor/workforce/schedules/{schedule_id}/publish"): "supervisor",
    ("GET", "/supervisor/workforce/rosters"): "supervisor",
    ("POST", "/supervisor/workforce/rosters/templates"): "supervisor",
    ("POST", "/supervisor/workforce/rosters/contracts/{agent_id}"): "supervisor",
    # closing the loop (experience/, issue #12): alert rules, follow-ups, improvement items
    ("GET", "/api/experience/summary"): "supervisor",
    ("GET", "/api/experience/trend"): "supervisor",
    ("GET", "/api/experience/together"): "supervisor",
    ("GET", "/api/experience/interactions"): "supervisor",
    ("GET", "/supervisor/experience"): "supervisor",
    ("GET", "/supervisor/experience/interactions"): "supervisor",
    ("GET", "/api/experience/journeys"): "supervisor",
    ("GET", "/api/customers/{customer_id}/journey"): "supervisor",
    ("GET", "/supervisor/journeys"): "supervisor",
    ("GET", "/supervisor/customers/{customer_id}/journey"): "supervisor",
    ("GET", "/api/alert-rules"): "supervisor",
    ("POST", "/api/alert-rules"): "supervisor",
    ("GET", "/api/alert-rules/attributes"): "supervisor",
    ("POST", "/api/alert-rules/evaluate"): "supervisor",
    ("GET", "/api/alert-rules/{rule_id}"): "supervisor",
    ("PATCH", "/api/alert-rules/{rule_id}"): "supervisor",
    ("GET", "/api/follow-ups"): "agent",  # an agent gets only the follow-ups they own
    ("GET", "/api/follow-ups/{follow_up_id}"): "agent",  # owner-scoped for agents
    ("PATCH", "/api/follow-ups/{follow_up_id}"): "agent",  # owner-scoped for agents
    ("GET", "/api/improvements"): "supervisor",
    ("POST", "/api/improvements"): "supervisor",
    ("GET", "/api/improvements/candidates"): "supervisor",
    ("GET", "/api/improvements/trend"): "supervisor",
    ("PATCH", "/api/improvements/{improvement_id}"): "supervisor",
    ("GET", "/supervisor/follow-ups"): "supervisor",
    ("GET", "/supervisor/alert-rules"): "supervisor",
    ("GET", "/supervisor/owners"): "supervisor",
    ("POST", "/supervisor/owners/teams/{name}"): "supervisor",
    ("POST", "/supervisor/owners/queues/{queue_id}"): "supervisor",
    ("GET", "/api/workforce/teams"): "supervisor",
    ("PUT", "/api/workforce/teams/{name}/lead"): "supervisor",
    ("PUT", "/api/workforce/queues/{queue_id}/owner"): "supervisor",
    ("POST", "/supervisor/alert-rules"): "supervisor",
    ("POST", "/supervisor/alert-rules/{rule_id}"): "supervisor",
    ("GET", "/supervisor/follow-ups/{follow_up_id}"): "supervisor",
    ("POST", "/supervisor/follow-ups/{follow_up_id}"): "supervisor",
    ("GET", "/supervisor/improvements"): "supervisor",
    ("POST", "/supervisor/improvements"): "supervisor",
    ("POST", "/supervisor/improvements/{improvement_id}"): "supervisor",
    # web chat: customers need no login; the per-chat access token authorises feedback
    ("GET", "/chat"): "public",
    ("GET", "/chat/widget.js"): "public",
    ("POST", "/chat/start"): "public",
    ("POST", "/chat/{interaction_id}/feedback"): "public",
    ("POST", "/chat/{interaction_id}/verify/send"): "public",  # the chat token authorises
    ("POST", "/chat/{interaction_id}/verify"): "public",
    ("POST", "/chat/{interaction_id}/callback"): "public",  # the chat token authorises
    ("POST", "/chat/{interaction_id}/message"): "public",
    ("GET", "/desktop/interactions/{interaction_id}/chat"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/messages"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/typing"): "agent",
    # agent desktop: the conversation in a tab (thread of linked legs, email reply, call controls)
    ("GET", "/desktop/interactions/{interaction_id}/thread"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/email-reply"): "agent",
    ("GET", "/desktop/attachments/{attachment_id}"): "agent",  # only customers the agent serves
    ("GET", "/desktop/interactions/{interaction_id}/voice"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/call/{action}"): "agent",
    ("POST", "/desktop/interactions/{interaction_id}/call/digits"): "agent",
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


# Signing out ends the caller's sessions (their token version): walked last, after every other route.
SIGN_OUT = ("POST", "/api/auth/logout")


def _served(app: FastAPI) -> list[tuple[str, str]]:
    routes = set(iter_api_routes(app)) - {("HEAD", p) for p in PUBLIC_PATHS}
    return sorted(routes, key=lambda route: (route == SIGN_OUT, route))


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
    """Bearer headers for one user per role; every staff user has an agent profile (supervisors who
    also take contacts), so the ladder tests see roles, not "no agent profile" (tested below)."""
    headers: dict[str, dict[str, str]] = {}
    for name, role in ROLE_FOR.items():
        user, h = await make_user(role)
        headers[name] = h
        if role is not Role.CUSTOMER:
            await agent_profile(db, user, name="Route Test Agent", languages=["en"])
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


# ---------------------------------------------------------------- "this user has no agent profile"
# One answer wherever a route acts as an agent: 403 problem+json, type no-agent-profile, naming
# ``agent`` -- for an agent-role user without a profile as for a supervisor who takes no contacts.

# Routes that look the profile up inside the handler (it is needed only when acting as an agent),
# with a body that passes validation so the profile check is reached.
INNER_PROFILE_CHECKS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/interactions"): {
        "channel": "voice",
        "direction": "outbound",
        "identity": {"kind": "phone", "value": "+447911100010"},
    },
    ("POST", "/api/interactions/outbound"): {
        "customer_id": str(uuid.uuid4()),
        "channel": "voice",
        "reason": "About your card",
    },
}
# The agent's actions in both front ends: the walk below must find at least these.
AGENT_ACTIONS = {
    ("POST", "/api/routing/presence"),
    ("POST", "/api/routing/offers/{offer_id}/accept"),
    ("POST", "/api/routing/offers/{offer_id}/reject"),
    ("POST", "/api/routing/interactions/{interaction_id}/wrap-up"),
    ("POST", "/api/routing/interactions/{interaction_id}/complete"),
    ("POST", "/api/routing/interactions/{interaction_id}/transfer"),
    ("POST", "/api/routing/interactions/{interaction_id}/transfer/cancel"),
    ("POST", "/desktop/presence"),
    ("POST", "/desktop/interactions/{interaction_id}/wrap-up"),
    ("POST", "/desktop/interactions/{interaction_id}/complete"),
    ("POST", "/desktop/interactions/{interaction_id}/transfer"),
    ("POST", "/desktop/interactions/{interaction_id}/transfer/cancel"),
}


def _uses_current_agent(dependant: Any) -> bool:
    return any(d.call is get_current_agent or _uses_current_agent(d) for d in dependant.dependencies)


def routes_needing_an_agent(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route that depends, at any depth, on ``CurrentAgent``."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        pairs = (
            [(ctx.original_route, ctx.path, ctx.methods) for ctx in contexts()]
            if contexts is not None
            else [(route, getattr(route, "path", ""), getattr(route, "methods", ()))]
        )
        for original, path, methods in pairs:
            if isinstance(original, APIRoute) and _uses_current_agent(original.dependant):
                found.update((method, path) for method in methods)
    return found


def test_every_agent_action_needs_the_profile(app: FastAPI) -> None:
    assert routes_needing_an_agent(app) >= AGENT_ACTIONS


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
async def test_no_agent_profile_is_one_403_everywhere(
    app: FastAPI, client: AsyncClient, make_user: Callable[..., Any], role: Role
) -> None:
    _, headers = await make_user(role)  # no agent profile
    calls = {route: {} for route in routes_needing_an_agent(app)} | INNER_PROFILE_CHECKS
    failures = []
    for (method, path), body in sorted(calls.items()):
        if role is not Role.AGENT and path == "/api/interactions":
            continue  # a supervisor creates inbound work as themselves: no profile needed
        kwargs: dict[str, Any] = {"headers": headers}
        if method in {"POST", "PUT", "PATCH"}:
            kwargs["json"] = body
        response = await client.request(method, _concrete(path), **kwargs)
        problem = response.json() if response.headers.get("content-type") == PROBLEM_JSON else {}
        if (
            response.status_code != 403
            or not str(problem.get("type", "")).endswith("/no-agent-profile")
            or [e.get("field") for e in problem.get("errors", [])] != ["agent"]
        ):
            failures.append(f"{method} {path}: {response.status_code} {response.text[:160]}")
    assert not failures, "\n".join(failures)
