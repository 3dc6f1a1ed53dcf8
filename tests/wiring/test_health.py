from __future__ import annotations


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_openapi_served(client):
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Switchboard"
    assert "/api/auth/token" in spec["paths"]


async def test_unknown_route_is_problem_json(client):
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
