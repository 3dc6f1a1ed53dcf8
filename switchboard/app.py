"""App factory: wiring only (database, Redis, routers, error handlers, static files)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from agent_desktop import chat as desktop_chat
from agent_desktop import conversation as desktop_conversation
from agent_desktop import ex_api as desktop_ex_api
from agent_desktop import pages as desktop_pages
from agent_desktop import voice as desktop_voice
from agent_desktop import work as desktop_work
from agent_desktop import ws as desktop_ws
from customers.api import router as customers_router
from interactions.api import CreateShortcut
from interactions.api import router as interactions_router
from interactions.chat_pages import router as chat_router
from interactions.ticket_pages import router as ticket_pages_router
from interactions.tickets import router as tickets_router
from interactions.timeline import publish_after_commit
from interactions.voice.api import router as voice_router
from interactions.voice.twilio import router as twilio_router
from routing import replies
from routing.api import router as routing_router
from routing.heartbeats import BeatBatcher
from routing.host import EngineHost
from routing.webhooks import WebhookDispatcher
from routing.webhooks_api import router as webhooks_router
from switchboard import health, jobs_admin
from switchboard.auth import api as auth_api
from switchboard.auth import pages as auth_pages
from switchboard.auth.cache import UserCache, watch_user_changes
from switchboard.db import Database
from switchboard.errors import install_error_handlers
from switchboard.events import EventHub
from switchboard.gcfreeze import freeze_long_lived, keep_frozen
from switchboard.middleware import BodySizeLimit
from switchboard.redis import RedisHandle, open_redis
from switchboard.settings import PROJECT_ROOT, Settings, get_settings
from switchboard.tasks import cancel_and_wait

log = logging.getLogger(__name__)


async def _finish(task: asyncio.Task, *, grace_seconds: float = 10.0) -> None:
    """Let a background task stop on its own, but never let shutdown hang on it: after the grace
    period it is cancelled (SQL stays consistent: every engine decision is one transaction)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace_seconds)
    except TimeoutError:
        log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), grace_seconds)
        await cancel_and_wait(task)


def wire_sessions(db: Database, redis_client: aioredis.Redis) -> None:
    """Every hook the product puts on SQLAlchemy sessions, in one place, on this database only.

    - Committed changes to users invalidate every process's user cache (switchboard.auth.cache).
    - Committed timeline events go live on their customer's topic (interactions.timeline), which
      is how desktops' customer 360 updates.

    Other processes wire what they need themselves: the SMTP listener publishes timeline events;
    RQ jobs and scripts wire nothing (they change no users; their events are read on resync).
    The engine host registers its own (``routing.host.persist.keep_loaded_rows``) on its database.
    """
    watch_user_changes(db.session_class, redis_client)
    publish_after_commit(db, redis_client)


def create_app(settings: Settings | None = None, *, redis_handle: RedisHandle | None = None) -> FastAPI:
    """Build the app. Tests pass their own settings and an already-open Redis handle."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url, echo=settings.sql_echo, schema=settings.database_schema)
        owns_redis = redis_handle is None
        handle = redis_handle or open_redis(settings.redis_url, settings.data_dir)
        app.state.db = db
        app.state.redis = handle
        app.state.redis_client = handle.async_client()
        # Engine calls wait through one listener with its own connection (routing.replies), so
        # waiting callers hold none of the pool health checks, creates and heartbeats share.
        app.state.replies = replies.ReplyListener(handle.async_client())
        replies.register(app.state.redis_client, app.state.replies)
        app.state.replies.start()
        wire_sessions(db, app.state.redis_client)
        app.state.event_hub = EventHub(handle.async_client())
        await app.state.event_hub.start()
        # Authenticated users cached per process, invalidated through Redis (switchboard.auth.cache).
        app.state.user_cache = UserCache(handle.async_client())
        await app.state.user_cache.start()
        engine_task = None
        app.state.engine_host = None
        if settings.routing_engine:
            host = EngineHost(
                db,
                handle.async_client(),
                lease_ttl_ms=settings.engine_lease_ms,
                desktop_grace_seconds=settings.desktop_grace_seconds,
                gc_freeze=settings.gc_freeze,
            )
            app.state.engine_host = host
            engine_task = asyncio.create_task(host.run(), name="routing-engine")
        # Desktop sockets' heartbeats, batched per process (routing.heartbeats); a quarter of the
        # grace period so a live desktop is never mistaken for a vanished one.
        app.state.desktop_beats = BeatBatcher(
            app.state.redis_client, interval=min(1.0, settings.desktop_grace_seconds / 4)
        )
        beats_task = asyncio.create_task(app.state.desktop_beats.run(), name="desktop-beats")
        # Outgoing webhooks: every process dispatches; SQL claims keep them off each other's rows.
        app.state.webhook_dispatcher = WebhookDispatcher(db)
        webhook_task = asyncio.create_task(app.state.webhook_dispatcher.run(), name="webhooks")
        gc_task = None
        if settings.gc_freeze:
            freeze_long_lived()  # modules, templates, compiled statements: as old as the process
            gc_task = asyncio.create_task(keep_frozen(), name="gc-freeze")
        try:
            yield
        finally:
            await cancel_and_wait(gc_task)
            await app.state.webhook_dispatcher.stop()
            await _finish(webhook_task)
            await app.state.desktop_beats.stop()
            await _finish(beats_task)
            if engine_task is not None:
                await app.state.engine_host.stop()
                await _finish(engine_task)
            await app.state.user_cache.stop()
            await app.state.event_hub.stop()
            replies.unregister(app.state.redis_client)
            await app.state.replies.stop()
            await app.state.redis_client.aclose()
            if owns_redis:
                await handle.close()
            await db.dispose()

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        description="Omnichannel contact-centre routing and agent desktop for banks.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # The create hot path past FastAPI's routing (inside BodySizeLimit: added first = inner).
    app.add_middleware(CreateShortcut)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)

    app.include_router(health.router)
    app.include_router(auth_api.router)
    app.include_router(customers_router)
    # Before interactions_router: POST /api/interactions/outbound must not be read as an id.
    app.include_router(voice_router)
    app.include_router(interactions_router)
    app.include_router(twilio_router)  # public: every request is signature-checked instead
    app.include_router(routing_router)
    app.include_router(webhooks_router)
    app.include_router(auth_pages.router)
    app.include_router(desktop_pages.router)
    app.include_router(desktop_ws.router)
    app.include_router(desktop_work.router)
    app.include_router(desktop_ex_api.router)
    app.include_router(desktop_chat.router)
    app.include_router(desktop_conversation.router)
    app.include_router(desktop_voice.router)
    app.include_router(chat_router)
    app.include_router(tickets_router)
    app.include_router(ticket_pages_router)
    app.include_router(jobs_admin.router)
    app.include_router(jobs_admin.pages)

    static_dir = PROJECT_ROOT / "static"
    static_dir.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    return app
