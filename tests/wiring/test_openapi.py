"""The OpenAPI document (switchboard.openapi) is valid OpenAPI 3.1, describes every error as the one
Problem schema in application/problem+json, names its security schemes, has unique schema names
and documents the carrier webhooks as forms answered with TwiML; and the errors the app really
sends match what the document says, operation by operation."""

from __future__ import annotations

import uuid

import jsonschema
from openapi_spec_validator import validate

from switchboard.auth.models import Role
from switchboard.errors import PROBLEM_JSON

ERROR_CODES = {"400", "401", "403", "404", "409", "413", "422", "429", "503"}


async def _spec(client) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(spec: dict):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


async def test_the_document_is_valid_openapi(client):
    validate(await _spec(client))


async def test_every_error_response_is_a_problem(client):
    spec = await _spec(client)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, operation in _operations(spec):
        errors = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
        assert {"400", "422", "503"} <= errors.keys(), (method, path)
        for code, response in errors.items():
            assert response["content"] == {
                PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (
                method,
                path,
                code,
            )
        assert "Retry-After" in errors["503"]["headers"]


async def test_security_schemes_and_401_with_www_authenticate(client):
    spec = await _spec(client)
    assert {"bearer", "password", "session"} <= spec["components"]["securitySchemes"].keys()
    op = spec["paths"]["/api/customers"]["get"]
    assert {"bearer": []} in op["security"]
    assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    assert "403" in op["responses"]
    public = spec["paths"]["/api/tickets"]["post"]
    assert "security" not in public and "401" not in public["responses"]


async def test_schema_names_are_unique_and_short(client):
    names = (await _spec(client))["components"]["schemas"].keys()
    assert not [n for n in names if "__" in n]  # FastAPI qualifies colliding names with the module
    assert {"CustomerSummary", "InteractionCustomer"} <= names


async def test_carrier_webhooks_are_forms_answered_with_twiml(client):
    spec = await _spec(client)
    carrier = {p: ops["post"] for p, ops in spec["paths"].items() if p.startswith("/carrier/twilio/")}
    assert len(carrier) == 8  # incoming, gather, wait, queue-action, status, answer, tones, agent-leg
    for path, op in carrier.items():
        assert list(op["requestBody"]["content"]) == ["application/x-www-form-urlencoded"], path
        assert list(op["responses"]["200"]["content"]) == ["application/xml"], path
        assert "X-Twilio-Signature" in [p["name"] for p in op["parameters"]]


async def test_real_errors_match_the_document(client, make_user):
    """One real request per error status; each answer is a documented status of its operation,
    problem+json, and valid against the Problem schema."""
    spec = await _spec(client)
    problem = {**spec["components"]["schemas"]["Problem"], "components": spec["components"]}
    problem = {"$ref": "#/components/schemas/Problem", "components": spec["components"]}
    _, supervisor = await make_user(Role.SUPERVISOR)
    _, agent = await make_user(Role.AGENT)
    missing = uuid.uuid4()
    cases = [
        (
            "post",
            "/api/interactions",
            "/api/interactions",
            {"content": b"\xff", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("get", "/api/customers", "/api/customers", {}, 401),
        ("get", "/api/customers", "/api/customers", {"headers": {"Authorization": "Bearer nonsense"}}, 401),
        ("get", "/api/routing/webhooks", "/api/routing/webhooks", {"headers": agent}, 403),
        ("get", "/api/customers/{customer_id}", f"/api/customers/{missing}", {"headers": supervisor}, 404),
        ("post", "/api/tickets", "/api/tickets", {"json": {"email": "no"}}, 422),
        ("get", "/api/customers", "/api/customers?limit=0", {"headers": supervisor}, 422),
        (
            "post",
            "/api/tickets",
            "/api/tickets",
            {"content": b"{" + b"x" * 2_000_000, "headers": {"Content-Type": "application/json"}},
            413,
        ),
    ]
    for method, template, url, kwargs, status in cases:
        response = await client.request(method.upper(), url, **kwargs)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON, url
        jsonschema.validate(response.json(), problem)
        assert str(status) in spec["paths"][template][method]["responses"], (template, status)
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_main_operations_carry_examples(client):
    schemas = (await _spec(client))["components"]["schemas"]
    for name in ("InteractionCreate", "TicketCreate", "Problem"):
        assert schemas[name].get("examples") or schemas[name].get("example"), name
