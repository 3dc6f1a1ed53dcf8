"""``switchboard`` command: migrate, seed, serve, worker, smtp and ``run`` (all of it, for a new machine)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Coroutine
from typing import Any

from switchboard.settings import PROJECT_ROOT, Settings, settings_or_exit
from switchboard.tasks import cancel_and_wait

log = logging.getLogger("switchboard")


def migrate(settings: Settings) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["url"] = settings.resolved_database_url
    cfg.attributes["schema"] = settings.database_schema
    command.upgrade(cfg, "head")


def seed(settings: Settings, *, force: bool = False) -> bool:
    from demo.bank import seed_demo_bank

    return asyncio.run(
        seed_demo_bank(settings.resolved_database_url, schema=settings.database_schema, force=force)
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from switchboard.app import create_app
    from switchboard.logging_filters import uvicorn_log_config

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Websocket per-message deflate stays uvicorn's default (on), as browsers negotiate it:
        # measured 34 KB of RSS per socket and 11-37 us of CPU per frame, ~0.2 ms of a ~150 ms
        # agent loop, for frames 4x smaller (docs/benchmarks.md, "Per-message deflate").
        # uvicorn replaces its loggers' handlers: mask card numbers there too.
        log_config=uvicorn_log_config(),
    )


def worker(settings: Settings, *, burst: bool = False) -> None:
    """An RQ worker for background jobs (tier recomputation, surveys, alerts); ``burst`` drains the
    queues and exits (one-off runs, tests). Retries, prompt re-queueing of a dead worker's job and
    the maintenance pass: switchboard.jobs."""
    # Every model, so that any job's session can flush any table's rows (the timeline's foreign
    # keys point at interactions even in a job that only touches customers).
    import switchboard.model_registry  # noqa: F401
    from switchboard.jobs import run_worker

    run_worker(settings, burst=burst)


def smtp(settings: Settings) -> None:
    """The inbound SMTP listener (email -> interactions), the outbound sink when configured, and the
    chat-transcript mailer (the email process owns outgoing customer mail)."""
    from interactions.chat_transcripts import run_mailer
    from interactions.email.inbound import serve as serve_smtp

    async def email_process() -> None:
        sink = None
        if settings.runs_smtp_sink:  # demo: replies land under data_dir/outbox instead of a relay
            from demo.smtp_sink import SmtpSink

            outbox = settings.data_dir / "outbox"
            sink = SmtpSink(host=settings.smtp_out_host, port=settings.smtp_out_port, directory=outbox)
            await sink.start()
            log.info("outbound sink on %s:%d keeps mail in %s", settings.smtp_out_host, sink.port, outbox)
        mailer = asyncio.create_task(run_mailer(settings), name="transcript-mailer")
        try:
            await serve_smtp(settings)
        finally:
            await cancel_and_wait(mailer)
            if sink is not None:
                await sink.stop()

    asyncio.run(email_process())


def dialer(settings: Settings) -> None:
    """Places the carrier leg of accepted callbacks (and any agent call the API could not dial)."""
    from interactions.voice.dialer import run_dialer

    asyncio.run(_until_signal(run_dialer(settings)))


def engine(settings: Settings) -> None:
    """A routing-engine host without the web app (``switchboard.app.run_engine``)."""
    from switchboard.app import run_engine

    asyncio.run(_until_signal(run_engine(settings)))


def traffic(settings: Settings) -> None:
    """Simulated customers (chat, voice through the carrier simulator, email by SMTP) until SIGTERM."""
    from demo.traffic import run_traffic

    asyncio.run(run_traffic(settings))


async def _until_signal(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until SIGTERM/SIGINT, then cancel it so its cleanup runs."""
    task = asyncio.create_task(work)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopping):
        pending.cancel()
    await asyncio.gather(task, stopping, return_exceptions=True)


def demo_carrier(settings: Settings) -> dict[str, str]:
    """Settings that let demo traffic reach the voice channel: a carrier token (random per run when
    none is configured) and, unless a real carrier is configured, the simulated carrier's REST API."""
    if settings.is_production or settings.demo_traffic_per_minute <= 0:
        return {}
    env = {"SWITCHBOARD_CARRIER_AUTH_TOKEN": settings.carrier_auth_token or secrets.token_urlsafe(24)}
    if not settings.carrier_api_url:
        env["SWITCHBOARD_CARRIER_API_URL"] = f"http://127.0.0.1:{settings.demo_carrier_port}"
        env["SWITCHBOARD_CARRIER_ACCOUNT_SID"] = settings.carrier_account_sid or "AC" + "0" * 32
    return env


def run(settings: Settings) -> None:
    """Migrate, seed the demo bank if empty, start Redis (embedded unless REDIS_URL), a worker, the SMTP
    listener, the dialer, the app and demo traffic (unless turned off), each a child process, until
    SIGTERM or Ctrl-C stops them in order (``switchboard.runner``)."""
    from switchboard.redis import open_redis

    migrate(settings)
    seeded = seed(settings)
    handle = open_redis(settings.redis_url, settings.data_dir)
    demo_env = demo_carrier(settings)
    settings = settings.model_copy(
        update={"redis_url": handle.url}
        | {name.removeprefix("SWITCHBOARD_").lower(): value for name, value in demo_env.items()}
    )
    env = {
        **os.environ,
        "SWITCHBOARD_REDIS_URL": handle.url,
        "SWITCHBOARD_DATABASE_URL": settings.resolved_database_url,
        **demo_env,
    }
    from switchboard.runner import ProcessTree

    tree = ProcessTree(env)
    try:
        tree.start_service("worker")
        tree.start_service("smtp")
        if settings.carrier_api_url:
            tree.start_service("dialer")
        tree.start_app()
        if demo_env:
            tree.start_generator("traffic")
        _print_banner(settings, seeded=seeded, traffic=bool(demo_env))
        tree.wait()
    finally:
        tree.stop()  # generators first, while the app still answers their hang-ups; then the app
        from switchboard.redis import stop_embedded

        stop_embedded(handle)


def _print_banner(settings: Settings, *, seeded: bool, traffic: bool) -> None:
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"\n  Switchboard is starting on {url}\n"
        f"  {'Seeded' if seeded else 'Using'} the demo bank. Demo logins (password 'switchboard'):\n"
        "    agent:      agent01 … agent30\n"
        "    supervisor: supervisor1, supervisor2\n"
        "    admin:      admin\n"
        f"  Email: send to {settings.smtp_host}:{settings.smtp_port}; the web form is {url}/support/new\n"
        + (
            f"  Demo traffic: about {settings.demo_traffic_per_minute:g} simulated contacts a minute "
            "(chat, voice, email); SWITCHBOARD_DEMO_TRAFFIC_PER_MINUTE=0 turns it off\n"
            if traffic
            else ""
        ),
        flush=True,
    )


def configure_logging() -> None:
    from switchboard.logging_filters import install_card_masking

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin otherwise
    install_card_masking()


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    parser = argparse.ArgumentParser(prog="switchboard")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="alembic upgrade head")
    seed_parser = sub.add_parser("seed", help="seed the demo bank (only into an empty database)")
    seed_parser.add_argument("--force", action="store_true", help="seed even if data exists")
    sub.add_parser("serve", help="run the web app")
    sub.add_parser(
        "engine",
        help="run a routing-engine host alone, no web server (app processes then run with "
        "SWITCHBOARD_ROUTING_ENGINE=false)",
    )
    worker_parser = sub.add_parser("worker", help="run an RQ worker")
    worker_parser.add_argument("--burst", action="store_true", help="drain the queues, then exit")
    sub.add_parser("smtp", help="run the inbound SMTP listener (and the outbound sink in demo)")
    sub.add_parser("dialer", help="place carrier legs for accepted callbacks (needs CARRIER_API_URL)")
    sub.add_parser("traffic", help="generate live demo traffic against a running app")
    sub.add_parser("run", help="migrate, seed, start Redis + worker + SMTP listener + dialer + traffic + app")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "seed":
        print("seeded" if seed(settings, force=args.force) else "database already has data; not seeded")
    elif args.command == "serve":
        serve(settings)
    elif args.command == "engine":
        engine(settings)
    elif args.command == "worker":
        worker(settings, burst=args.burst)
    elif args.command == "smtp":
        smtp(settings)
    elif args.command == "dialer":
        dialer(settings)
    elif args.command == "traffic":
        traffic(settings)
    elif args.command == "run":
        run(settings)


if __name__ == "__main__":
    main()
