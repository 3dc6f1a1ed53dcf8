"""One Jinja2 environment (autoescaping on) for pages, htmx fragments and websocket pushes."""

from __future__ import annotations

from fastapi.templating import Jinja2Templates

from switchboard.labels import label
from switchboard.settings import PROJECT_ROOT

templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))
templates.env.filters["label"] = label
