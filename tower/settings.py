"""One typed Settings object, read from the environment (and a `.env` file).

A bad value stops start-up with one clear line (see :func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "data"
DEFAULT_VAR_DIR = ROOT / "var"


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message is one line."""


class Settings(BaseSettings):
    """Every knob of a deployment. Environment names are given in each field's alias."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True,
        frozen=True,
    )

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_VAR_DIR / 'tower.db'}", alias="DATABASE_URL",
        description="SQLAlchemy URL; default is an embedded SQLite file under var/",
    )
    redis_url: str | None = Field(
        default=None, alias="REDIS_URL",
        description="Redis URL for the Redis Streams bus; unset = in-process bus",
    )
    tz: str = Field(default="Asia/Shanghai", alias="TOWER_TZ", description="display time zone")
    api_token: SecretStr | None = Field(
        default=None, alias="TOWER_API_TOKEN",
        description="when set, the write API needs 'Authorization: Bearer <token>'",
    )
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, alias="TOWER_DATA_DIR")
    future_skew_s: float = Field(
        default=600, ge=0, le=86_400, alias="TOWER_FUTURE_SKEW_S",
        description="events further than this in the future are rejected",
    )
    max_batch_events: int = Field(default=5_000, ge=1, le=100_000, alias="TOWER_MAX_BATCH_EVENTS")
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024, alias="TOWER_MAX_BODY_BYTES"
    )
    stream: str = Field(default="tower:events", alias="TOWER_STREAM", min_length=1)
    consumer_group: str = Field(default="projector", alias="TOWER_CONSUMER_GROUP", min_length=1)
    max_deliveries: int = Field(default=5, ge=1, le=1000, alias="TOWER_MAX_DELIVERIES")
    reclaim_idle_ms: int = Field(default=30_000, ge=100, alias="TOWER_RECLAIM_IDLE_MS")
    projector_batch: int = Field(default=2_000, ge=1, le=50_000, alias="TOWER_PROJECTOR_BATCH")
    stale_after_s: float = Field(default=120, gt=0, alias="TOWER_STALE_AFTER_S")
    webhook_url: str | None = Field(
        default=None, alias="TOWER_WEBHOOK_URL",
        description="adds a webhook channel named 'webhook' on every topic (see data/notify.toml)",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, alias="TOWER_WEBHOOK_SECRET",
        description="HMAC-SHA256 key of the TOWER_WEBHOOK_URL channel's signatures",
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_off(cls, value: object) -> object:
        # TOWER_API_TOKEN="" (e.g. an unset compose variable) means "no token", not "".
        return None if value in ("", None) else value

    @field_validator("webhook_url", "webhook_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def flows_path(self) -> Path:
        return self.data_dir / "flows.toml"

    @property
    def tower_path(self) -> Path:
        return self.data_dir / "tower.toml"

    @property
    def rules_path(self) -> Path:
        return self.data_dir / "rules.toml"

    @property
    def notify_path(self) -> Path:
        return self.data_dir / "notify.toml"

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: bus and projector run in-process."""
        return self.redis_url is None


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "settings"
        alias = Settings.model_fields[field].alias if field in Settings.model_fields else field
        message = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"bad setting {alias}: {message}") from None
