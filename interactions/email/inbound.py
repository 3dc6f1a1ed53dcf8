"""The inbound SMTP listener: every accepted email becomes (or joins) an email interaction.

SMTP replies are the sender's only feedback, so each refusal says why: 552 for size (the whole
message, or one attachment), 550 for an unusable sender, 451 (retry later) when we could not
store it. Nothing is written unless the message is accepted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from email.utils import parseaddr
from typing import Any

import redis.asyncio as aioredis

from customers.timeline import publish_after_commit
from interactions.email.parsing import EmailRejected, parse_email
from interactions.email.server import SmtpServer
from interactions.email.service import ingest_email
from interactions.states import State
from switchboard.commands import notify_enqueued
from switchboard.db import Database
from switchboard.errors import DomainError, TooManyRequests
from switchboard.pii import mask_card_numbers
from switchboard.settings import Settings
from switchboard.throttle import Throttle

log = logging.getLogger(__name__)


def id_domain(from_address: str) -> str:
    """The domain our generated Message-IDs use (the part after @ of our From address)."""
    # "Bank <noreply@bank.example>" as well as a bare address; the display name is not the domain.
    address = parseaddr(from_address)[1] or from_address
    return address.rpartition("@")[2].strip("<> ") or "switchboard.invalid"


class InboundHandler:
    """aiosmtpd handler: parse, then store in one transaction, then tell routing."""

    def __init__(self, *, db: Database, settings: Settings, redis: aioredis.Redis | None = None) -> None:
        self._db = db
        self._settings = settings
        self._redis = redis
        # Without Redis (a bare listener in a test) there is nothing to count in: no throttle.
        self._throttle = Throttle.from_settings(redis, settings) if redis is not None else None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        raw = bytes(envelope.original_content or envelope.content)
        try:
            parsed = parse_email(
                raw,
                attachment_max_bytes=self._settings.email_attachment_max_bytes,
                id_domain=id_domain(self._settings.smtp_from),
            )
        except EmailRejected as exc:
            log.info("refused an email from %s: %s", envelope.mail_from, exc.reply)
            return exc.reply
        if self._throttle is not None:
            try:
                await self._throttle.inbound_email(sender=parsed.from_address)
            except TooManyRequests as exc:
                # Temporary: the sending server keeps the message and retries later; nothing lost.
                log.info("deferred an email from %s: sender over its rate", envelope.mail_from)
                return f"450 4.7.1 Too many messages from this sender; try again in {exc.retry_after} s"
            except Exception:  # noqa: BLE001 - Redis unavailable: defer rather than refuse or skip
                log.warning("email throttle unavailable; deferring %s", envelope.mail_from)
                return "451 4.3.0 We could not store your message just now; please try again later"
        try:
            async with self._db.sessionmaker() as db_session:
                result = await ingest_email(
                    db_session, email=parsed, default_region=self._settings.default_phone_region
                )
                await db_session.commit()
        except DomainError as exc:
            # The sender's data is at fault (e.g. a malformed From): retrying will not help.
            code = "550 5.1.7" if exc.field == "from" else "554 5.6.0"
            log.info("refused an email from %s: %s", envelope.mail_from, exc.detail)
            return f"{code} {exc.detail}"
        except Exception:
            log.exception("could not store an email from %s", envelope.mail_from)
            return "451 4.3.0 We could not store your message just now; please try again later"
        if result.opened and result.interaction.state is State.QUEUED and self._redis is not None:
            await notify_enqueued(self._redis, result.interaction.id)
        # The subject is masked here, not only by the log filter: bodies and subjects never reach
        # a log line with a card number in them, whatever handlers the deployment configures.
        log.info(
            "email %s from %s %s interaction %s (%s): %s",
            parsed.message_id,
            parsed.from_address,
            "was a repeat of" if result.duplicate else ("opened" if result.opened else "joined"),
            result.interaction.id,
            result.reference,
            mask_card_numbers(parsed.subject)[:120],
        )
        return f"250 2.0.0 Thank you; your reference is {result.reference}"


class EmailListener:
    """The inbound SMTP server bound to settings (or an explicit host/port, e.g. port 0 in tests)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        redis: aioredis.Redis | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.handler = InboundHandler(db=db, settings=settings, redis=redis)
        self._server = SmtpServer(
            self.handler,
            host=host if host is not None else settings.smtp_host,
            port=port if port is not None else settings.smtp_port,
            data_size_limit=settings.email_max_bytes,
            hostname=id_domain(settings.smtp_from),
        )

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()


async def serve(settings: Settings) -> None:
    """``switchboard smtp``: the listener until SIGTERM (the CLI adds the demo's outbound sink)."""
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    # Without a shared Redis, routing's reconcile pass (every 2 s) picks new interactions up anyway.
    redis = aioredis.from_url(settings.redis_url, decode_responses=True) if settings.redis_url else None
    if redis is not None:  # an email arriving shows at once in any desktop open on that customer
        publish_after_commit(db, redis)
    listener = EmailListener(db=db, settings=settings, redis=redis)
    await listener.start()
    log.info("inbound SMTP listener on %s:%d", settings.smtp_host, listener.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await listener.stop()
        if redis is not None:
            await redis.aclose()
        await db.dispose()
