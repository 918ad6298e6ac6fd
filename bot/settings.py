"""Settings, read once from the environment (or an injected mapping in tests)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A setting, or a combination of settings, that the app refuses to start with. Its message is
    one line for the operator: what is wrong and what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAMJAI_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///var/namjai.db",
        validation_alias=AliasChoices("DATABASE_URL", "NAMJAI_DATABASE_URL"),
    )
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    photo_dir: str = "var/photos"
    # --- photo store (storage/photos.py `open_store`): unset, the folder photo_dir (one host only);
    # s3://bucket/prefix, an S3-compatible bucket that every replica shares.
    photo_store: str | None = None
    s3_endpoint: str | None = None  # http(s)://host[:port] of MinIO, Garage, Ceph…; unset: AWS S3 of s3_region
    s3_region: str | None = None  # unset: us-east-1
    s3_access_key: SecretStr | None = None  # both keys or neither (then AWS_* variables or the host's role)
    s3_secret_key: SecretStr | None = None
    # The web sandbox is a development channel: unset, it is on only when no real channel (Telegram,
    # LINE) is configured. On together with a real channel, the app refuses to start
    # (`check_start`); a database that has held real-channel data refuses it too (bot/app.py).
    sandbox: bool | None = None
    default_lang: str = "th"
    log_level: str = "INFO"
    log_format: str = "console"  # console | json
    teams_file: str | None = None  # imported on start when the database has no team yet
    # --- telegram settings (handlers/telegram.py)
    # Log the remote address of HTTP requests (off: no IP address reaches the logs).
    log_remote_addr: bool = False
    # --- hostile input: every request body is refused above this size before it is read
    max_body_bytes: int = 1_000_000  # webhooks and the sandbox's JSON (a photo is sent as a file id)
    sandbox_max_body_bytes: int = 28_000_000  # the sandbox's photo upload (base64 of 20 MB)
    # PDPA: an inbox row's payload (text, coordinates, names, file ids) is cleared this many hours
    # after it was processed; its dedupe key and status stay.
    inbox_payload_hours: float = 24.0
    telegram_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base: str | None = None  # tests point the Bot API at a loopback fake
    telegram_api_file_base: str | None = None  # default: telegram_api_base + "/file/bot"
    telegram_rate_per_second: float = 30.0  # all chats together (Bot API: ~30 messages/s)
    telegram_group_per_minute: int = 20  # per group chat (Bot API: 20 messages/min)
    # Added to each window (30 in 1.03 s and 20 in 60.03 s by default). Network jitter needs none: a
    # mark stands for its send's answer, never earlier than Telegram saw it (storage/pipeline.py
    # rate_reserve). It covers the clocks of replicas on different hosts, which mark by their own:
    # keep it above their largest difference (NTP keeps hosts within a few milliseconds).
    telegram_limit_margin: float = 0.03
    line_rate_per_second: float = 1000.0  # LINE Messaging API: 2,000 requests/s per channel
    # --- line settings (handlers/line.py)
    line_channel_secret: SecretStr | None = None
    line_access_token: SecretStr | None = None
    line_api_host: str | None = None
    line_photo_link_hours: int = 168  # how long the photo links on LINE cards work
    # --- scheduler settings (bot/scheduler.py)
    scheduler: bool = True
    photo_retention_days: int = 90
    identity_retention_days: int = 365
    scheduler_policy_file: str | None = None  # default: bot/data/policy.yaml
    scheduler_sweep_seconds: float = 30.0  # how often each replica looks for what fell due
    scheduler_batch: int = 200  # reports claimed per round of a sweep
    scheduler_lease_seconds: float = 120.0  # how long a claimed report is held before others may take it
    retention_at: str = "02:30"  # Bangkok time of the daily PDPA retention run
    outbox_batch: int = 50  # chats whose next message one delivery round claims
    outbox_concurrency: int = 4  # chats delivered at once by one replica (each holds a connection)
    inbox_concurrency: int = 3  # conversations processed at once by one replica (each holds a connection)
    # Connections per replica. The pool (kept open) covers the steady demand, inbox_concurrency +
    # outbox_concurrency + 3 (webhook writes, /healthz, the scheduler): a pool smaller than that
    # opens and closes overflow connections all the time, and each new one costs a TLS handshake,
    # type introspection and prepared statements again. All replicas, the CLI and migrations share
    # PostgreSQL's max_connections (100 by default): see deploy/README.md.
    db_pool_size: int = 10
    db_max_overflow: int = 2
    # How often the background loops look for work they were not told about (crash recovery).
    sweep_seconds: float = 2.0

    @model_validator(mode="after")
    def _sandbox_default(self) -> "Settings":
        if self.sandbox is None:
            self.sandbox = not self.real_channels()
        return self

    def real_channels(self) -> list[str]:
        """The real platforms this configuration talks to (any credential of theirs counts)."""
        out = []
        if self.telegram_token or self.telegram_webhook_secret:
            out.append("telegram")
        if self.line_channel_secret or self.line_access_token:
            out.append("line")
        return out


def check_start(settings: Settings) -> None:
    """Refuses the dangerous combinations of settings, in one line each (ConfigError)."""
    real = settings.real_channels()
    if settings.sandbox and real:
        raise ConfigError(
            f"NAMJAI_SANDBOX is on together with a real channel ({', '.join(real)}): the sandbox shows every "
            "chat, card and photo to anyone without a password, so it never runs beside real data; "
            "unset NAMJAI_SANDBOX (or set it to false)"
        )
    # The privacy notice (bot/locales/messages.yaml, consent.notice) promises these limits: a longer
    # setting would make it untrue.
    for name, most, unit in (("inbox_payload_hours", 24, "hours"), ("photo_retention_days", 90, "days"),
                             ("identity_retention_days", 365, "days")):
        value = getattr(settings, name)
        if value > most or value < 0:
            raise ConfigError(
                f"NAMJAI_{name.upper()}={value:g}: the privacy notice promises at most {most} {unit}; "
                "set it between 0 and that, or change the notice (and its version) first"
            )
    if settings.max_body_bytes > 20_000_000 or settings.max_body_bytes < 1000:
        raise ConfigError(f"NAMJAI_MAX_BODY_BYTES={settings.max_body_bytes}: between 1000 and 20000000 (webhook bodies are small; photos come by reference)")
