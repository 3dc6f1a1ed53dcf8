"""Security headers on every response (switchboard.middleware.SecurityHeaders), no-store on pages
and API answers, and the API docs served from our own static/vendor with nothing remote: over
HTTP, and in a real browser that records every request the pages make."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from switchboard.app import create_app
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.helpers import truncate_all
from tests.live_app import CHROMIUM, CHROMIUM_ARGS, live_settings, needs_docs_assets, running_app


def _csp(response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in policy.split("; ")}


async def test_pages_carry_the_headers_and_cannot_be_framed(client):
    response = await client.get("/login")
    assert response.status_code == 200
    csp = _csp(response)
    assert csp["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'" and csp["object-src"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain HTTP in tests


async def test_authenticated_pages_and_api_answers_are_not_stored(client, make_user):
    _, headers = await make_user(Role.AGENT)
    desktop = await client.get("/desktop", headers=headers)
    assert desktop.status_code == 200 and desktop.headers["cache-control"] == "no-store"
    me = await client.get("/api/auth/me", headers=headers)
    assert me.headers["cache-control"] == "no-store"
    refused = await client.get("/api/auth/me")  # errors too
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert refused.headers["x-content-type-options"] == "nosniff"


async def test_static_files_stay_cacheable(client):
    response = await client.get("/static/css/app.css")
    assert response.status_code == 200 and "cache-control" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_chat_page_may_be_framed_by_the_banks_origins_only(client, settings):
    response = await client.get("/chat?embed=1")
    ancestors = _csp(response)["frame-ancestors"].split()
    assert ancestors == ["'self'", *settings.allowed_origins]
    assert "x-frame-options" not in response.headers


async def test_hsts_when_cookies_are_secure(settings, db, redis_handle, redis_sync):
    app = create_app(settings.model_copy(update={"cookie_secure": True}), redis_handle=redis_handle)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c,
    ):
        response = await c.get("/login")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_a_stray_directive_in_an_origin_setting_never_reaches_the_header(
    settings, db, redis_handle, redis_sync
):
    origins = ["https://bank.example", "https://x.example; script-src *"]
    app = create_app(settings.model_copy(update={"allowed_origins": origins}), redis_handle=redis_handle)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c,
    ):
        response = await c.get("/chat")
    assert _csp(response)["frame-ancestors"] == "'self' https://bank.example"
    assert _csp(response)["script-src"] == "'self'"


@needs_docs_assets
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_api_docs_pages_load_only_our_own_assets(client, path):
    page = await client.get(path)
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    for url in urls:
        assert (await client.get(url)).status_code == 200, url
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


# ------------------------------------------------------------------ in a browser


@pytest.fixture
async def base_url(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[str]:
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="docs")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield base
    finally:
        await db.dispose()


@needs_docs_assets
async def test_docs_render_in_a_browser_with_no_request_leaving_the_server(base_url):
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            problems: list[str] = []
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type == "error" else None,
            )

            await page.goto(f"{base_url}/docs")
            await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                "Switchboard", timeout=15000
            )
            await expect(page.locator(".opblock").first).to_be_visible()

            await page.goto(f"{base_url}/redoc")
            await expect(page.locator("h1").first).to_contain_text("Switchboard", timeout=15000)

            # The sign-in page (htmx) under the strict policy: nothing refused either.
            await page.goto(f"{base_url}/login")
            await expect(page.get_by_label("Username")).to_be_visible()
        finally:
            await browser.close()
    foreign = [u for u in requested if not (u.startswith(base_url) or u.startswith(("data:", "blob:")))]
    assert foreign == []
    assert [m for m in problems if "Content Security Policy" in m] == []
