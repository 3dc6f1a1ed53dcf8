"""A tiny SMTP sink: accepts every message and keeps it (in memory, and as .eml files when given
a directory). It is the fake at the outer edge for demos and tests; nothing is ever delivered."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from interactions.email.server import SmtpServer
from switchboard.db import utcnow

log = logging.getLogger(__name__)

SINK_SIZE_LIMIT = 50_000_000


@dataclass(frozen=True)
class SunkMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    def parsed(self) -> EmailMessage:
        message = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


class SinkHandler:
    def __init__(self, directory: Path | None = None) -> None:
        self.messages: list[SunkMessage] = []
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        data = bytes(envelope.original_content or envelope.content)
        sunk = SunkMessage(envelope.mail_from, tuple(envelope.rcpt_tos), data)
        self.messages.append(sunk)
        if self._directory is not None:
            name = f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
            (self._directory / name).write_bytes(data)
        log.info("sink kept a message to %s (%d bytes)", ", ".join(sunk.rcpt_tos), len(data))
        return "250 2.0.0 Kept by the sink (not delivered)"


class SmtpSink:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, directory: Path | None = None) -> None:
        self.handler = SinkHandler(directory)
        self._server = SmtpServer(self.handler, host=host, port=port, data_size_limit=SINK_SIZE_LIMIT)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def messages(self) -> list[SunkMessage]:
        return self.handler.messages

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()
