"""The OpenAPI document as the API really behaves: every error is an RFC 9457 problem
(``application/problem+json``, one ``Problem`` schema), authenticated operations name their
security schemes and answer 401 with ``WWW-Authenticate``, and FastAPI's default 422 body (which
the app never sends) is gone. Built once from the routes, then cached by FastAPI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from switchboard.deps import SESSION_COOKIE, get_current_user, get_optional_user
from switchboard.errors import PROBLEM_JSON, WWW_AUTHENTICATE

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMAS: dict[str, Any] = {
    "ProblemFieldError": {
        "type": "object",
        "required": ["field", "message"],
        "properties": {
            "field": {"type": "string", "description": "Where: body.identity.value, query.limit, header.X"},
            "message": {"type": "string"},
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; ``errors`` names each offending field.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemFieldError"}},
        },
        "additionalProperties": True,
        "example": {
            "type": "https://switchboard.dev/problems/validation-error",
            "title": "Invalid input",
            "status": 422,
            "detail": "Invalid value for: body.identity.value",
            "instance": "/api/interactions",
            "errors": [{"field": "body.identity.value", "message": "not a phone number"}],
        },
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "password": {
        "type": "oauth2",
        "description": "POST /api/auth/token (form-encoded username and password) issues the Bearer token.",
        "flows": {"password": {"tokenUrl": "/api/auth/token", "scopes": {}}},
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The browser session; unsafe methods also need X-CSRF-Token.",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"password": []}, {"session": []}]

_DESCRIPTIONS = {
    "400": "Bad request: a body that is not UTF-8 or nested too deep, or another malformed request",
    "401": "Not authenticated: no valid token or session",
    "403": "Forbidden: signed in, but this role or user may not do this",
    "404": "Not found",
    "409": "Conflict with the current state (compare-and-set, duplicates)",
    "413": "Request body too large",
    "422": "Invalid input: ``errors`` names each field (control characters, bounds, formats)",
    "429": "Too many requests: wait for ``Retry-After``",
    "503": "A dependency (database, Redis, the routing engine) is unavailable: retry after ``Retry-After``",
}
_RETRY_AFTER = {"description": "Seconds to wait", "schema": {"type": "integer"}}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _api_routes(routes: list[Any]) -> Iterator[tuple[str, set[str], Dependant, bool]]:
    """(path, methods, dependant, in schema) of every API route, inside included routers too
    (recent FastAPI keeps those as branches with ``effective_route_contexts``)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                if isinstance(ctx.original_route, APIRoute):
                    yield ctx.path_format, set(ctx.methods), ctx.dependant, ctx.include_in_schema
        elif isinstance(route, APIRoute):
            yield route.path_format, set(route.methods or ()), route.dependant, route.include_in_schema


def _auth(dependant: Dependant) -> str | None:
    """Whether the route needs a user: "required", "optional" or None (its dependency tree)."""
    calls = set(_calls(dependant))
    if get_current_user in calls or any(getattr(call, "authenticates", False) for call in calls):
        return "required"
    if get_optional_user in calls:
        return "optional"
    return None


def _problem_response(code: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    response = dict(existing or {})
    response["description"] = _DESCRIPTIONS.get(code, response.get("description") or "Error")
    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    headers = dict(response.get("headers") or {})
    if code == "401":
        headers["WWW-Authenticate"] = {"description": WWW_AUTHENTICATE, "schema": {"type": "string"}}
    if code in ("429", "503"):
        headers["Retry-After"] = _RETRY_AFTER
    if headers:
        response["headers"] = headers
    return response


def document(spec: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Rewrite ``spec`` (FastAPI's document) in place; returned for convenience."""
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(PROBLEM_SCHEMAS)
    components["securitySchemes"] = SECURITY_SCHEMES
    auth_by_operation = {
        (path, method.lower()): _auth(dependant)
        for path, methods, dependant, in_schema in _api_routes(routes)
        if in_schema
        for method in methods
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            auth = auth_by_operation.get((path, method))
            responses = operation.setdefault("responses", {})
            codes = {"400", "422", "503"}
            if auth == "required":
                operation["security"] = SECURITY
                codes |= {"401", "403"}
            elif auth == "optional":
                operation["security"] = [*SECURITY, {}]
            if "{" in path or method != "get":
                codes.add("404")  # the resource in the path, or one the body names
            if method != "get":
                codes.add("409")  # state changed under the caller, or a duplicate
            if "requestBody" in operation:
                codes.add("413")
            codes |= {code for code in responses if code[:1] in "45"}
            for code in sorted(codes):
                responses[code] = _problem_response(code, responses.get(code))
            for response in responses.values():
                for header in (response.get("headers") or {}).values():
                    if "schema" not in header and "content" not in header:
                        header["schema"] = {"type": "string"}  # OpenAPI requires one of them
    return spec


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document(spec, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
