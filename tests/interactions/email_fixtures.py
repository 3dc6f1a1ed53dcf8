"""Fixtures shared by the email and ticket tests: the inbound listener and the outbound sink,
both on 127.0.0.1 with random ports, running on the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from demo.smtp_sink import SmtpSink
from interactions.email.inbound import EmailListener
from switchboard.db import Database
from switchboard.redis import RedisHandle
from switchboard.settings import Settings

MAX_BYTES = 200_000
ATTACHMENT_MAX_BYTES = 50_000


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink(host="127.0.0.1", port=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(settings: Settings, sink: SmtpSink) -> Settings:
    return settings.model_copy(
        update={
            "smtp_out_host": "127.0.0.1",
            "smtp_out_port": sink.port,
            "smtp_from": "support@bank.example",
            "email_max_bytes": MAX_BYTES,
            "email_attachment_max_bytes": ATTACHMENT_MAX_BYTES,
        }
    )


@pytest.fixture
async def listener(
    db: Database, settings: Settings, redis_handle: RedisHandle, redis_sync: object
) -> AsyncIterator[EmailListener]:
    client = redis_handle.async_client()
    server = EmailListener(db=db, settings=settings, redis=client, host="127.0.0.1", port=0)
    await server.start()
    yield server
    await server.stop()
    await client.aclose()
