"""Bad requests get a 4xx application/problem+json answer, never a 500 or an HTML page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response

from switchboard.auth.models import Role
from switchboard.settings import Settings

PROBLEM_JSON = "application/problem+json"
USERS = "/api/auth/users"


def _assert_problem(response: Response, status: int | None = None) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    assert 400 <= response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("https://")
    assert body["title"]
    assert "detail" in body
    return body


async def _admin_headers(make_user: Callable[..., Any]) -> dict[str, str]:
    _, headers = await make_user(Role.ADMIN)
    return headers


# ---------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"username": "a",}',
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[" * 50_000,  # deeply nested: the parser's recursion limit must not become a 500
        b'{"username": ' + b"1" * 6000 + b"}",  # longer than Python's int-digit limit
        b"",
        b"null",
        b"[]",
        b'"a string"',
    ],
)
async def test_malformed_json_is_problem(
    client: AsyncClient, make_user: Callable[..., Any], raw: bytes
) -> None:
    headers = {**await _admin_headers(make_user), "Content-Type": "application/json"}
    response = await client.post(USERS, content=raw, headers=headers)
    _assert_problem(response)


async def test_json_syntax_error_names_body(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    headers = {**await _admin_headers(make_user), "Content-Type": "application/json"}
    response = await client.post(USERS, content=b'{"username": "a",', headers=headers)
    body = _assert_problem(response, 422)
    assert body["errors"][0]["field"].startswith("body")


async def test_invalid_fields_are_named(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    headers = await _admin_headers(make_user)
    response = await client.post(
        USERS,
        json={"username": "ok-name", "display_name": "X", "role": "emperor", "password": "short"},
        headers=headers,
    )
    body = _assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.role", "body.password"}


async def test_unknown_field_is_rejected(client: AsyncClient, make_user: Callable[..., Any]) -> None:
    headers = await _admin_headers(make_user)
    response = await client.post(
        USERS,
        json={"username": "ok-name", "display_name": "X", "role": "agent", "password": "long-enough", "x": 1},
        headers=headers,
    )
    body = _assert_problem(response, 422)
    assert {e["field"] for e in body["errors"]} == {"body.x"}


# ---------------------------------------------------------------- content types


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_wrong_content_type_for_json_route(
    client: AsyncClient, make_user: Callable[..., Any], content_type: str
) -> None:
    headers = {**await _admin_headers(make_user), "Content-Type": content_type}
    body = b'{"username": "ok-name", "display_name": "X", "role": "agent", "password": "long-enough"}'
    response = await client.post(USERS, content=body, headers=headers)
    _assert_problem(response)


async def test_json_to_form_route(client: AsyncClient) -> None:
    response = await client.post("/api/auth/token", json={"username": "a", "password": "b"})
    _assert_problem(response, 422)


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nbroken"),
        ("multipart/form-data", b"no boundary given"),
        ("application/x-www-form-urlencoded", b"\xff\xfe=%%%&&=="),
    ],
)
async def test_broken_form_bodies(client: AsyncClient, content_type: str, raw: bytes) -> None:
    response = await client.post("/api/auth/token", content=raw, headers={"Content-Type": content_type})
    _assert_problem(response)


# ---------------------------------------------------------------- size limit


def _too_big(settings: Settings) -> bytes:
    return b'{"username": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'


async def test_oversize_with_content_length_is_413(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    headers = {**await _admin_headers(make_user), "Content-Type": "application/json"}
    response = await client.post(USERS, content=_too_big(settings), headers=headers)
    body = _assert_problem(response, 413)
    assert body["type"].endswith("/payload-too-large")


async def test_oversize_is_refused_before_auth(client: AsyncClient, settings: Settings) -> None:
    """The size check runs first: nobody, signed in or not, gets to stream a huge body."""
    response = await client.post(
        USERS, content=_too_big(settings), headers={"Content-Type": "application/json"}
    )
    _assert_problem(response, 413)


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"a" * n
        sent += n


@pytest.mark.parametrize(
    ("path", "content_type", "auth"),
    [
        (USERS, "application/json", True),
        ("/api/auth/token", "application/x-www-form-urlencoded", False),
        ("/login", "application/x-www-form-urlencoded", False),
    ],
)
async def test_oversize_streamed_without_content_length_is_413(
    client: AsyncClient,
    make_user: Callable[..., Any],
    settings: Settings,
    path: str,
    content_type: str,
    auth: bool,
) -> None:
    headers = {"Content-Type": content_type}
    if auth:
        headers.update(await _admin_headers(make_user))
    request = client.build_request(
        "POST", path, content=_chunks(settings.max_body_bytes + 100_000), headers=headers
    )
    assert "content-length" not in request.headers
    assert request.headers.get("transfer-encoding") == "chunked"
    response = await client.send(request)
    body = _assert_problem(response, 413)
    assert body["type"].endswith("/payload-too-large")


async def test_streamed_body_under_the_limit_is_fine(
    client: AsyncClient, make_user: Callable[..., Any]
) -> None:
    headers = {**await _admin_headers(make_user), "Content-Type": "application/json"}

    async def body() -> AsyncIterator[bytes]:
        yield b'{"username": "streamed", "display_name": "S", '
        yield b'"role": "agent", "password": "long-enough"}'

    response = await client.send(client.build_request("POST", USERS, content=body(), headers=headers))
    assert response.status_code == 201, response.text


async def test_body_exactly_at_limit_is_not_413(
    client: AsyncClient, make_user: Callable[..., Any], settings: Settings
) -> None:
    headers = {**await _admin_headers(make_user), "Content-Type": "application/json"}
    raw = b'{"username": "' + b"a" * (settings.max_body_bytes - 16) + b'"}'
    assert len(raw) == settings.max_body_bytes
    response = await client.post(USERS, content=raw, headers=headers)
    body = _assert_problem(response, 422)  # too long a username, but not too big a body
    assert "body.username" in {e["field"] for e in body["errors"]}


# ---------------------------------------------------------------- routing errors


async def test_wrong_method_is_405_problem(client: AsyncClient) -> None:
    response = await client.delete("/api/auth/token")
    _assert_problem(response, 405)


async def test_unknown_api_path_is_404_problem(client: AsyncClient) -> None:
    _assert_problem(await client.get("/api/does/not/exist"), 404)


@pytest.mark.parametrize("path", ["/api/auth/me?x=%ff", "/api/auth/me/%00", "/api/%2e%2e/auth/me"])
async def test_odd_paths_are_not_500(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code < 500
