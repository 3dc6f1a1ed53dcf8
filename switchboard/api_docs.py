"""/docs (Swagger UI) and /redoc from our own static/vendor, never a CDN: a bank's network often
has no internet, and FastAPI's built-in pages would load their bundles from jsDelivr and render
blank. The bundles are npm packages copied by scripts/setup; the pages carry no inline script,
so the strict Content-Security-Policy holds (switchboard.middleware.SecurityHeaders)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

_SWAGGER = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Switchboard API</title>
  <link rel="stylesheet" href="/static/vendor/swagger-ui.css">
  <script src="/static/vendor/swagger-ui-bundle.js" defer></script>
  <script src="/static/js/api-docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-spec-url="/openapi.json"></div>
</body>
</html>
"""

_REDOC = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Switchboard API</title>
</head>
<body>
  <redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
  <script src="/static/vendor/redoc.standalone.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC)
