"""App factory: wiring only (database, Redis, routers, error handlers, static files)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from agent_desktop import chat as desktop_chat
from agent_desktop import conversation as desktop_conversation
from agent_desktop import ex_api as desktop_ex_api
from agent_desktop import follow_ups as desktop_follow_ups
from agent_desktop import my_schedule as desktop_my_schedule
from agent_desktop import pages as desktop_pages
from agent_desktop import voice as desktop_voice
from agent_desktop import work as desktop_work
from agent_desktop import ws as desktop_ws
from console import adherence_pages as console_adherence_pages
from console import alert_rule_pages as console_alert_rule_pages
from console import audit_api as console_audit_api
from console import audit_pages as console_audit_pages
from console import experience_pages as console_experience_pages
from console import floor_actions as console_floor_actions
from console import follow_up_pages as console_follow_up_pages
from console import forecast_api as console_forecast_api
from console import forecast_pages as console_forecast_pages
from console import journey_pages as console_journey_pages
from console import owner_pages as console_owner_pages
from console import pages as console_pages
from console import queue_pages as console_queue_pages
from console import recorder as wallboard_recorder
from console import roster_pages as console_roster_pages
from console import rules_dryrun as console_rules_dryrun
from console import rules_editor as console_rules_editor
from console import rules_pages as console_rules_pages
from console import schedule_api as console_schedule_api
from console import schedule_pages as console_schedule_pages
from console import simulation_pages as console_simulation_pages
from console import staffing_pages as console_staffing_pages
from console import swap_pages as console_swap_pages
from console import thresholds_api as console_thresholds_api
from console import tier_policy_pages as console_tier_policy_pages
from console import wallboard as console_wallboard
from console.admin.routes import routers as console_admin_routers
from customers.api import router as customers_router
from customers.timeline import publish_after_commit
from experience import customer_merge as experience_customer_merge
from experience.api import router as experience_router
from experience.dashboard_api import router as experience_dashboard_router
from experience.journey_api import router as experience_journey_router
from experience.rules import seed_default_rules
from experience.survey_pages import router as survey_pages_router
from interactions import customer_merge as interactions_customer_merge
from interactions.api import CreateShortcut
from interactions.api import router as interactions_router
from interactions.chat_pages import router as chat_router
from interactions.chat_waiting_api import router as chat_waiting_router
from interactions.ticket_pages import router as ticket_pages_router
from interactions.tickets import router as tickets_router
from interactions.voice.api import router as voice_router
from interactions.voice.twilio import router as twilio_router
from routing.api import router as routing_router
from routing.heartbeats import BeatBatcher
from routing.host import EngineHost
from routing.service import rule_set_live
from routing.simulation.api import router as simulation_router
from routing.visibility import authorise_customer_access
from routing.webhooks import WebhookDispatcher
from routing.webhooks_api import router as webhooks_router
from switchboard import api_docs, health, jobs_admin, replies
from switchboard import openapi as api_openapi
from switchboard.auth import admin_pages as auth_admin_pages
from switchboard.auth import api as auth_api
from switchboard.auth import pages as auth_pages
from switchboard.auth.cache import UserCache, watch_user_changes
from switchboard.db import Database
from switchboard.egress import EgressPolicy
from switchboard.errors import OUTAGE_ERRORS, install_error_handlers
from switchboard.events import EventHub
from switchboard.gcfreeze import freeze_long_lived, keep_frozen
from switchboard.middleware import BodySizeLimit, ReceivedAt, RequestGuard, SecurityHeaders
from switchboard.redis import RedisHandle, open_redis
from switchboard.settings import PROJECT_ROOT, Settings, settings_or_exit
from switchboard.tasks import cancel_and_wait
from switchboard.templating import templates
from switchboard.throttle import Throttle
from workforce import adherence_api as workforce_adherence
from workforce import owners as workforce_owners
from workforce import queues as workforce_queues
from workforce import staffing_api as workforce_staffing
from workforce import swap_api as workforce_swaps
from workforce.identity import watch_agent_identity

log = logging.getLogger(__name__)


async def _finish(task: asyncio.Task, *, grace_seconds: float = 10.0) -> None:
    """Let a background task stop on its own, but never let shutdown hang on it: after the grace
    period it is cancelled (SQL stays consistent: every engine decision is one transaction)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace_seconds)
    except TimeoutError:
        log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), grace_seconds)
        await cancel_and_wait(task)


async def _bounded(stop: Coroutine[Any, Any, Any], what: str, *, seconds: float = 30.0) -> None:
    """Run one shutdown step, abandoning it (logged) if it has not finished within ``seconds``."""
    try:
        await asyncio.wait_for(stop, timeout=seconds)
    except TimeoutError:
        log.error("shutdown: %s did not stop within %.0f s; going on without it", what, seconds)


def wire_sessions(db: Database, redis_client: aioredis.Redis) -> None:
    """Every hook the product puts on SQLAlchemy sessions, in one place, on this database only.

    - Committed changes to users invalidate every process's user cache (switchboard.auth.cache),
      and so do changes to whom an agent profile belongs (workforce.identity).
    - Committed timeline events go live on their customer's topic (customers.timeline), which
      is how desktops' customer 360 updates.

    Other processes wire what they need themselves: the SMTP listener publishes timeline events;
    RQ jobs and scripts wire nothing (they change no users; their events are read on resync).
    The engine host registers its own (``routing.host.persist.keep_loaded_rows``) on its database.
    """
    watch_user_changes(db.session_class, redis_client)
    watch_agent_identity(db.session_class)  # announced through the user cache's channel
    publish_after_commit(db, redis_client)


def engine_host(db: Database, handle: RedisHandle, settings: Settings) -> EngineHost:
    """The routing-engine host an app process or ``switchboard engine`` runs, from the settings."""
    return EngineHost(
        db,
        handle.async_client(),
        lease_ttl_ms=settings.engine_lease_ms,
        desktop_grace_seconds=settings.desktop_grace_seconds,
        gc_freeze=settings.gc_freeze,
    )


async def run_engine(settings: Settings) -> None:
    """A routing-engine host with no web server (``switchboard engine``), until cancelled.

    The app runs a host in every process by default; a busy app process then makes the engine's
    commands wait behind its requests (one event loop). A deployment can instead run app processes
    with ``SWITCHBOARD_ROUTING_ENGINE=false`` and two or more of these (one leads, the others stand
    by): the engine's decisions no longer queue behind HTTP and socket work. Same lease, same SQL,
    same streams: any mix of hosts in app processes and here elects one leader per partition.
    """
    db = Database(settings.resolved_database_url, echo=settings.sql_echo, schema=settings.database_schema)
    handle = open_redis(settings.redis_url, settings.data_dir)
    client = handle.async_client()
    wire_sessions(db, client)  # its timeline events go live to desktops, as from an app process
    host = engine_host(db, handle, settings)
    if settings.gc_freeze:
        freeze_long_lived()
    task = asyncio.create_task(host.run(), name="routing-engine")
    try:
        await asyncio.shield(task)  # a stop cancels this wait, not the host: it stops itself below
    finally:
        await host.stop()
        await _finish(task)
        await _bounded(handle.close(), "Redis")  # its clients, and the embedded server if any
        await db.dispose()


def create_app(settings: Settings | None = None, *, redis_handle: RedisHandle | None = None) -> FastAPI:
    """Build the app. Tests pass their own settings and an already-open Redis handle."""
    settings = settings or settings_or_exit()
    # Production templates do not change under a running process: without this, every render and
    # every include stats its file to see whether to reload it (~2 % of the desktop's CPU).
    templates.env.auto_reload = not settings.is_production

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url, echo=settings.sql_echo, schema=settings.database_schema)
        owns_redis = redis_handle is None
        handle = redis_handle or open_redis(settings.redis_url, settings.data_dir)
        app.state.db = db
        app.state.redis = handle
        app.state.redis_client = handle.async_client()
        # Engine calls wait through one listener with its own connection (switchboard.replies), so
        # waiting callers hold none of the pool health checks, creates and heartbeats share.
        app.state.replies = replies.ReplyListener(handle.async_client())
        replies.register(app.state.redis_client, app.state.replies)
        app.state.replies.start()
        wire_sessions(db, app.state.redis_client)
        # The shipped alert rules (issue #12): added once, by whichever process starts first. The
        # app starts with its database down (requests answer 503 until it is back); the alerts job
        # seeds them again before each evaluation.
        try:
            async with db.sessionmaker() as session:
                await seed_default_rules(session)
        except OUTAGE_ERRORS as exc:
            log.warning("shipped alert rules not seeded at start-up (database unavailable): %s", exc)
        app.state.event_hub = EventHub(handle.async_client())
        await app.state.event_hub.start()
        # Authenticated users cached per process, invalidated through Redis (switchboard.auth.cache).
        app.state.user_cache = UserCache(handle.async_client())
        await app.state.user_cache.start()
        throttle_client = handle.async_client()
        app.state.throttle = Throttle.from_settings(throttle_client, settings)
        engine_task = None
        app.state.engine_host = None
        if settings.routing_engine:
            host = engine_host(db, handle, settings)
            app.state.engine_host = host
            engine_task = asyncio.create_task(host.run(), name="routing-engine")
        # Desktop sockets' heartbeats, batched per process (routing.heartbeats); a quarter of the
        # grace period so a live desktop is never mistaken for a vanished one.
        app.state.desktop_beats = BeatBatcher(
            app.state.redis_client, interval=min(1.0, settings.desktop_grace_seconds / 4)
        )
        beats_task = asyncio.create_task(app.state.desktop_beats.run(), name="desktop-beats")
        # Outgoing webhooks: every process dispatches; SQL claims keep them off each other's rows.
        app.state.webhook_dispatcher = WebhookDispatcher(
            db, egress=EgressPolicy.from_entries(settings.webhook_allowed_destinations)
        )
        webhook_task = asyncio.create_task(app.state.webhook_dispatcher.run(), name="webhooks")
        # The wallboard's samples (occupancy, waiting and arrivals per interval): one process at a time.
        recorder_task = asyncio.create_task(
            wallboard_recorder.run(db.sessionmaker, app.state.redis_client), name="wallboard-recorder"
        )
        gc_task = None
        if settings.gc_freeze:
            freeze_long_lived()  # modules, templates, compiled statements: as old as the process
            gc_task = asyncio.create_task(keep_frozen(), name="gc-freeze")
        try:
            yield
        finally:
            # Each step bounded: one stuck stop (a lost cancellation, a wedged connection) must not
            # hold the rest of the shutdown, nor the process, forever.
            await cancel_and_wait(gc_task)
            await cancel_and_wait(recorder_task)
            await _bounded(app.state.webhook_dispatcher.stop(), "webhook dispatcher")
            await _finish(webhook_task)
            await _bounded(app.state.desktop_beats.stop(), "desktop heartbeats")
            await _finish(beats_task)
            if engine_task is not None:
                await app.state.engine_host.stop()
                await _finish(engine_task)
            await _bounded(app.state.user_cache.stop(), "user cache")
            await _bounded(throttle_client.aclose(), "throttle client")
            await _bounded(app.state.event_hub.stop(), "event hub")
            replies.unregister(app.state.redis_client)
            await _bounded(app.state.replies.stop(), "engine replies")
            await _bounded(app.state.redis_client.aclose(), "Redis client")
            if owns_redis:
                await _bounded(handle.close(), "embedded Redis")
            await db.dispose()

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        description="Omnichannel contact-centre routing and agent desktop for banks.",
        lifespan=lifespan,
        # Served from static/vendor by switchboard.api_docs instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # Who may see a customer reads the work behind them, above customers (customers.access).
    app.state.customer_access = authorise_customer_access
    # What follows a customer into a merge (customers.merge), from the layers above customers.
    app.state.customer_movers = {**interactions_customer_merge.MOVERS, **experience_customer_merge.MOVERS}
    # Whether rules route a chat, or the first chat queue takes it, is routing's (interactions.chat).
    app.state.rules_live = rule_set_live
    # The create hot path past FastAPI's routing (inside BodySizeLimit: added first = inner).
    app.add_middleware(CreateShortcut)
    # Outside the shortcut (it is a route too), inside the size limit (which bounds what it reads).
    app.add_middleware(RequestGuard)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        SecurityHeaders,
        frame_origins=settings.allowed_origins,
        hsts=settings.is_production or settings.cookie_secure,
    )
    app.add_middleware(ReceivedAt)  # outermost: the stamp is taken before anything else runs
    install_error_handlers(app)
    api_openapi.install(app)

    app.include_router(health.router)
    # The agent desktop's routes first: requests are matched against the routers in this
    # order, one by one, and the desktop's are the floor's hottest (status, accept, wrap-up,
    # complete, chat); no other router serves a path under /desktop.
    app.include_router(desktop_pages.router)
    app.include_router(desktop_ws.router)
    app.include_router(desktop_work.router)
    app.include_router(desktop_follow_ups.router)
    app.include_router(desktop_my_schedule.router)
    app.include_router(desktop_chat.router)
    app.include_router(desktop_conversation.router)
    app.include_router(desktop_voice.router)
    app.include_router(api_docs.router)
    app.include_router(auth_api.router)
    app.include_router(customers_router)
    # Before interactions_router: POST /api/interactions/outbound must not be read as an id.
    app.include_router(voice_router)
    app.include_router(interactions_router)
    app.include_router(twilio_router)  # public: every request is signature-checked instead
    app.include_router(routing_router)
    app.include_router(webhooks_router)
    app.include_router(auth_pages.router)
    app.include_router(auth_admin_pages.router)
    app.include_router(console_pages.router)
    app.include_router(console_audit_pages.router)
    app.include_router(console_audit_api.router)
    app.include_router(console_staffing_pages.router)
    app.include_router(console_adherence_pages.router)
    app.include_router(console_simulation_pages.router)
    app.include_router(console_experience_pages.router)
    app.include_router(console_journey_pages.router)
    app.include_router(console_forecast_pages.router)
    app.include_router(console_forecast_api.router)
    app.include_router(console_schedule_api.router)
    app.include_router(console_schedule_pages.router)
    app.include_router(console_swap_pages.router)
    app.include_router(console_roster_pages.router)
    app.include_router(console_floor_actions.router)
    app.include_router(console_floor_actions.pages)
    app.include_router(console_follow_up_pages.router)
    app.include_router(console_alert_rule_pages.router)
    app.include_router(console_owner_pages.router)
    # The editor's fixed paths (/new, /check, /reevaluate) before /supervisor/rules/{version}.
    app.include_router(console_rules_editor.router)
    app.include_router(console_rules_dryrun.router)
    app.include_router(console_rules_pages.router)
    app.include_router(console_queue_pages.router)
    app.include_router(console_thresholds_api.router)
    app.include_router(console_tier_policy_pages.router)
    for admin_router in console_admin_routers:
        app.include_router(admin_router)
    app.include_router(workforce_queues.router)
    app.include_router(workforce_owners.router)
    app.include_router(workforce_staffing.router)
    app.include_router(workforce_adherence.router)
    app.include_router(workforce_swaps.router)
    app.include_router(simulation_router)
    app.include_router(experience_router)
    app.include_router(experience_dashboard_router)
    app.include_router(experience_journey_router)
    app.include_router(console_wallboard.router)
    app.include_router(desktop_ex_api.router)
    app.include_router(chat_router)
    app.include_router(chat_waiting_router)
    app.include_router(tickets_router)
    app.include_router(ticket_pages_router)
    app.include_router(survey_pages_router)
    app.include_router(jobs_admin.router)
    app.include_router(jobs_admin.pages)

    static_dir = PROJECT_ROOT / "static"
    static_dir.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    return app
