"""Settings: `config.toml` for what is not secret, environment variables for secrets and overrides.

Every key has an environment twin, `RESULTS_REALTIME_<SECTION>_<KEY>`; a few well-known keys use the
names Supabase tooling already uses (`DATABASE_URL`, `SUPABASE_URL`, ...). Precedence: built-in
default < config file < environment. Errors name the key, its source and what is expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.errors import ConfigError

CONFIG_ENV = "RESULTS_REALTIME_CONFIG"

# Keys whose environment twin is a well-known name rather than RESULTS_REALTIME_<SECTION>_<KEY>.
WELL_KNOWN_ENV: dict[tuple[str, str], str] = {
    ("database", "url"): "DATABASE_URL",
    ("realtime", "url"): "SUPABASE_URL",
    ("realtime", "service_role_key"): "SUPABASE_SERVICE_ROLE_KEY",
    ("realtime", "jwt_secret"): "SUPABASE_JWT_SECRET",
    ("realtime", "enabled"): "RESULTS_REALTIME_ENABLED",
}
SECRET_KEYS: frozenset[tuple[str, str]] = frozenset(
    {("realtime", "service_role_key"), ("realtime", "jwt_secret")}
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(_Section):
    url: str | None = Field(
        default=None,
        description="PostgreSQL DSN; unset means libpq's PG* variables (PGHOST, PGPORT, ...).",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)


class RealtimeSettings(_Section):
    enabled: bool = Field(default=True, description="Master switch (RESULTS_REALTIME_ENABLED).")
    url: str = Field(default="http://127.0.0.1:54321", description="Supabase project URL.")
    service_role_key: str | None = Field(default=None, description="Service-role JWT (secret).")
    jwt_secret: str | None = Field(default=None, description="JWT signing secret (secret).")


class DaemonSettings(_Section):
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    busy_poll_interval_ms: float = Field(default=1.0, gt=0, le=1000)
    max_linger_ms: float = Field(default=100.0, ge=0, le=1000)
    staging_pause_factor: float = Field(default=0.5, ge=0, le=100)
    idle_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    probe_interval_s: float = Field(default=5.0, gt=0)
    probe_timeout_s: float = Field(default=2.0, gt=0)
    leader_poll_interval_s: float = Field(default=1.0, gt=0, le=4)
    reconnect_max_backoff_s: float = Field(default=5.0, gt=0)
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=8085, ge=0, le=65535, description="0 turns it off.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class PublishSettings(_Section):
    max_messages_per_second: float = Field(default=40.0, gt=0)
    max_payload_bytes: int = Field(default=200_000, ge=1024)
    max_messages_per_request: int = Field(default=50, ge=1)
    request_timeout_s: float = Field(default=5.0, gt=0)
    retry_initial_wait_s: float = Field(default=0.1, ge=0)
    retry_max_wait_s: float = Field(default=5.0, ge=0)
    retry_max_attempts: int = Field(default=10, ge=1)
    retry_max_seconds: float = Field(default=60.0, gt=0)


class HubSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=54321, ge=0, le=65535)
    max_events_per_second: float = Field(default=0, ge=0, description="0 = no limit.")
    max_payload_kb: int = Field(default=3000, ge=1)
    max_channels_per_socket: int = Field(default=100, ge=1)
    max_joins_per_second: float = Field(default=0, ge=0, description="0 = no limit.")
    idle_timeout_s: float = Field(default=60.0, gt=0)
    max_concurrent_users: int = Field(default=0, ge=0, description="0 = no limit.")
    rate_window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Rolling window of the events/s and joins/s limits.",
    )
    connect_error_backoff_ms: float = Field(
        default=0, ge=0, le=60_000, description="Delay before a refused upgrade (Realtime: 2000)."
    )
    join_error_backoff_ms: float = Field(
        default=0, ge=0, le=60_000, description="Delay before a join error reply (Realtime: 5000)."
    )
    max_socket_buffer_kb: int = Field(
        default=4096, ge=64, description="A socket whose unsent output exceeds this is closed."
    )
    db_pool_size: int = Field(default=5, ge=1, le=100)


class ClientSettings(_Section):
    poll_interval_s: float = Field(default=5.0, gt=0, description="Polling when realtime is off.")
    rejoin_max_backoff_s: float = Field(default=10.0, gt=0)


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    daemon: DaemonSettings = DaemonSettings()
    publish: PublishSettings = PublishSettings()
    hub: HubSettings = HubSettings()
    client: ClientSettings = ClientSettings()


def env_name(section: str, key: str) -> str:
    return WELL_KNOWN_ENV.get((section, key), f"RESULTS_REALTIME_{section}_{key}".upper())


def _sections() -> dict[str, type[_Section]]:
    sections: dict[str, type[_Section]] = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, _Section)):
            raise TypeError(f"Settings.{name} must be a section model")
        sections[name] = annotation
    return sections


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; pass an existing file or none"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _default_path(env: Mapping[str, str]) -> Path | None:
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    local = Path("config.toml")
    return local if local.is_file() else None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Merge defaults, the TOML file and the environment into validated, frozen Settings."""
    env = os.environ if env is None else env
    path = path or _default_path(env)
    raw: dict[str, Any] = _read_file(path) if path else {}
    sources: dict[tuple[str, str], str] = {}
    sections = _sections()
    for section in raw:
        if section not in sections:
            known = ", ".join(sorted(sections))
            raise ConfigError(f"{path}: unknown section [{section}]; known sections: {known}")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{path}: [{section}] must be a table of keys")
        for key in raw[section]:
            sources[(section, key)] = f"{path}"
    for section, model in sections.items():
        for key in model.model_fields:
            name = env_name(section, key)
            if name in env and env[name] != "":
                raw.setdefault(section, {})[key] = env[name]
                sources[(section, key)] = f"environment variable {name}"
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            dotted = ".".join(loc)
            where = sources.get((loc[0], loc[1]), "defaults") if len(loc) >= 2 else "config"
            if error["type"] == "extra_forbidden":
                known = ", ".join(sections[loc[0]].model_fields) if loc[0] in sections else ""
                problems.append(f"{dotted} (from {where}): unknown key; known keys: {known}")
            else:
                got = error.get("input")
                problems.append(f"{dotted} (from {where}): {error['msg']}; got {got!r}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def redacted(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective configuration with secrets masked, for `check` and start-up logs."""
    out: dict[str, dict[str, Any]] = {}
    for section, values in settings.model_dump().items():
        out[section] = {}
        for key, value in values.items():
            if (section, key) in SECRET_KEYS and value:
                value = "***"
            elif section == "database" and key == "url" and value:
                value = redact_dsn(value)
            out[section][key] = value
    return out


def redact_dsn(dsn: str) -> str:
    """Hide a password inside a DSN (postgresql://user:secret@host/db -> user:***@host)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return dsn
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return dsn
