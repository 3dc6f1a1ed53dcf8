"""Canned responses: short approved texts per queue, searchable from the desktop.

Stored in ``Queue.settings["canned"]`` as ``[{"title": ..., "body": ...}]``: a handful per queue,
edited by supervisors with the rest of the queue's settings, so no table of their own. Queues
without any get the bank-wide defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routing.models import Queue

MAX_RESULTS = 8
MAX_QUERY = 80


@dataclass(frozen=True)
class CannedResponse:
    title: str
    body: str


DEFAULT_CANNED: tuple[CannedResponse, ...] = (
    CannedResponse("Greeting", "Hello, thank you for contacting us. How can I help you today?"),
    CannedResponse("Security check", "Before we go on, I need to ask you a couple of security questions."),
    CannedResponse("Hold", "Thank you for your patience, I'm checking that for you now."),
    CannedResponse("Anything else", "Is there anything else I can help you with today?"),
    CannedResponse("Closing", "Thank you for banking with us. Have a lovely day."),
)


def canned_for(queue: Queue | None) -> tuple[CannedResponse, ...]:
    """The queue's responses; malformed entries are skipped rather than breaking the desktop."""
    raw: Any = (queue.settings or {}).get("canned") if queue is not None else None
    if isinstance(raw, list):
        items = tuple(
            CannedResponse(str(item["title"]).strip(), str(item["body"]).strip())
            for item in raw
            if isinstance(item, dict)
            and str(item.get("title", "")).strip()
            and str(item.get("body", "")).strip()
        )
        if items:
            return items
    return DEFAULT_CANNED


def search(responses: tuple[CannedResponse, ...], query: str) -> list[CannedResponse]:
    """Case-insensitive match of every word of the query in title or body; titles matching first."""
    words = query.casefold().split()[:8]
    if not words:
        return list(responses[:MAX_RESULTS])
    hits = [r for r in responses if all(w in f"{r.title} {r.body}".casefold() for w in words)]
    hits.sort(key=lambda r: not all(w in r.title.casefold() for w in words))
    return hits[:MAX_RESULTS]
