"""What the traffic generator has open (chats with their tokens, inbound calls), kept in a file.

A generator stopped in order ends its contacts itself; one that was killed (or whose app went
first) leaves them waiting in the queue, offered to agents on every later start. The generator is a
customer, not a service (it never touches the database), so it ends them the way their customers
would, through the front doors, on its next start: this file is how it remembers which they are.
Written on every change (a few hundred bytes, replaced atomically), so a kill loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "demo-traffic-open.json"


@dataclass
class OpenContacts:
    """``path`` None keeps nothing (a generator without a data directory, e.g. in some tests)."""

    path: Path | None
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)  # Idempotency-Key -> start body
    chats: dict[str, str] = field(default_factory=dict)  # interaction id -> the chat's access token
    calls: dict[str, dict[str, str]] = field(default_factory=dict)  # CallSid -> caller, to

    @classmethod
    def load(cls, path: Path | None) -> OpenContacts:
        """What a previous run left open (nothing when there is no file or it cannot be read)."""
        kept = cls(path)
        if path is None or not path.exists():
            return kept
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            kept.starts = {str(k): dict(v) for k, v in dict(data.get("starts", {})).items()}
            kept.chats = {str(k): str(v) for k, v in dict(data.get("chats", {})).items()}
            kept.calls = {str(k): dict(v) for k, v in dict(data.get("calls", {})).items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("demo traffic: ignoring unreadable %s (%r)", path, exc)
        return kept

    def add_start(self, key: str, request: dict[str, Any]) -> None:
        self.starts[key] = request
        self._save()

    def end_start(self, key: str) -> None:
        if self.starts.pop(key, None) is not None:
            self._save()

    def add_chat(self, interaction_id: str, token: str) -> None:
        self.chats[interaction_id] = token
        self._save()

    def end_chat(self, interaction_id: str) -> None:
        if self.chats.pop(interaction_id, None) is not None:
            self._save()

    def add_call(self, call_sid: str, *, caller: str, to: str) -> None:
        self.calls[call_sid] = {"caller": caller, "to": to}
        self._save()

    def end_call(self, call_sid: str) -> None:
        if self.calls.pop(call_sid, None) is not None:
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"starts": self.starts, "chats": self.chats, "calls": self.calls}))
        os.replace(partial, self.path)
