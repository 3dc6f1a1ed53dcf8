"""A real app process for end-to-end tests: uvicorn in its own process with the engine host on,
Debian's chromium for Playwright, and the helpers every browser test module shares.

Each module seeds its own data (before the app starts, so the engine's rebuild sees it) and wraps
the URL in its own ``Server`` record; starting, waiting for leadership and stopping live here.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.helpers import TEST_PASSWORD, db_schema_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

VENDOR_ASSETS = [PROJECT_ROOT / "static" / "vendor" / name for name in ("htmx.min.js", "htmx-ext-ws.js")]
DOCS_ASSETS = [
    PROJECT_ROOT / "static" / "vendor" / name
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
]


def _browser_missing(assets: list[Path] = VENDOR_ASSETS) -> str | None:
    """Why browser tests cannot run here, or None. Without the npm assets every page loads without
    htmx and the tests would fail far from the cause."""
    if not CHROMIUM.exists():
        return "Debian chromium is not installed at /usr/bin/chromium (scripts/setup --test installs it)"
    missing = [str(path.relative_to(PROJECT_ROOT)) for path in assets if not path.exists()]
    if missing:
        return f"browser assets missing ({', '.join(missing)}): scripts/setup installs them from npm"
    return None


needs_chromium = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")
_DOCS_MISSING = _browser_missing(VENDOR_ASSETS + DOCS_ASSETS)
needs_docs_assets = pytest.mark.skipif(_DOCS_MISSING is not None, reason=_DOCS_MISSING or "")

# Set by ``--update-screenshots`` (tests/conftest.py): only then do browser tests rewrite the images
# in docs/screenshots; otherwise they still render the screenshot (the page must paint) and keep it.
UPDATE_SCREENSHOTS = False


async def screenshot(target: Any, path: Path) -> None:
    """Take ``target``'s (a Playwright page or locator) screenshot; write it to ``path`` only when asked."""
    image = await target.screenshot(path=str(path) if UPDATE_SCREENSHOTS else None)
    assert image, "the browser rendered no image"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_settings(
    backend_url: str, redis_url: str, data_dir: Path, *, name: str, **extra: object
) -> Settings:
    """Settings for an app process on this test's database and Redis (``name`` keys the secret)."""
    return Settings(
        environment="test",
        database_url=backend_url,
        database_schema=db_schema_for(backend_url),
        redis_url=redis_url,
        data_dir=data_dir,
        secret_key=f"{name}-test-secret-" + "x" * 32,
        **extra,
    )


def start_app(port: int, settings: Settings, origin: str, log_path: Path) -> subprocess.Popen[bytes]:
    """uvicorn with the engine host on, configured through the environment like production."""
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": settings.database_url or "",
        "SWITCHBOARD_DATABASE_SCHEMA": settings.database_schema or "",
        "SWITCHBOARD_REDIS_URL": settings.redis_url or "",
        "SWITCHBOARD_SECRET_KEY": settings.secret_key,
        "SWITCHBOARD_DATA_DIR": str(settings.data_dir),
        "SWITCHBOARD_ENGINE_LEASE_MS": "1000",
        "SWITCHBOARD_ROUTING_ENGINE": "true",
        "SWITCHBOARD_ENVIRONMENT": "test",
        "SWITCHBOARD_ALLOWED_ORIGINS": json.dumps([origin]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "switchboard.app:create_app"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


def _log(path: Path) -> str:
    return path.read_text()


async def wait_for_leader(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until the process answers /readyz as the routing engine's leader (or fail with its log)."""
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"app process exited:\n{_log(log_path)}")
            try:
                if (await client.get(f"{base}/readyz")).json().get("routing_engine") == "leader":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"engine never became leader:\n{_log(log_path)}")


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@asynccontextmanager
async def running_app(settings: Settings, log_path: Path) -> AsyncIterator[str]:
    """Start the app on a free port, yield its base URL once it leads routing, stop it after."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_app(port, settings, base, log_path)
    try:
        await wait_for_leader(base, proc, log_path)
        yield base
    finally:
        stop_app(proc)


async def sign_in(page: Any, base: str, username: str) -> None:
    """The login form filled and sent from the keyboard (Enter), as ``username`` with the test password."""
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.keyboard.press("Enter")


async def sign_in_to_desktop(browser: Any, server: Any, username: str, *, available: bool = True) -> Any:
    """A desktop page signed in as ``username`` (``server.base``: the app's URL), live, available."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(f"{server.base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.base}/desktop")
    await expect(page.locator("#ws-status.live")).to_be_visible(timeout=10_000)
    if available:
        await go_available(page)
    return page


async def go_available(page: Any) -> None:
    from playwright.async_api import expect

    await page.get_by_label("Change status").select_option("available")
    await page.get_by_role("button", name="Set status").click()
    await expect(page.locator("#desktop-status .presence-badge")).to_have_text("Available")


@dataclass
class ChatServer:
    base: str
    db: Database
    agent_username: str
    agent_headers: dict[str, str]
    supervisor_headers: dict[str, str]


@dataclass
class DeskServer:
    base: str
    origin: str
    settings: Settings
    agent_username: str
    agent_token: str
    supervisor_headers: dict[str, str]


async def accept_dialog(dialog: Any) -> None:
    """A ``page.on("dialog", ...)`` handler that confirms. Playwright keeps a reference to the
    coroutine it schedules; a bare ``asyncio.ensure_future`` task can be garbage-collected before
    it runs, leaving the confirm() open and the page frozen."""
    await dialog.accept()
