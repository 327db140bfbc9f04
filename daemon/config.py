"""Settings: `config.toml` for what is not secret, environment variables for secrets and overrides.

Every key has an environment twin, `RESULTS_REALTIME_<SECTION>_<KEY>`; a few well-known keys use the
names Supabase tooling already uses (`DATABASE_URL`, `SUPABASE_URL`, ...). A few keys also have a
command-line option (`--database-url`, `--health-port`, ...). Precedence: built-in default < config
file < environment < option. Errors name the key, its source and what is expected.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

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
ENV_PREFIX = "RESULTS_REALTIME_"
# RESULTS_REALTIME_* variables that are not settings' twins: they are read elsewhere (the config
# file's path, the demo's page assets, watch's teacher token, the JS tests' Python). Any other
# RESULTS_REALTIME_* variable is a configuration error, as an unknown key in config.toml is.
OTHER_ENV: frozenset[str] = frozenset(
    {
        CONFIG_ENV,
        "RESULTS_REALTIME_DEMO_ASSETS",
        "RESULTS_REALTIME_TEACHER_TOKEN",
        "RESULTS_REALTIME_PYTHON",
    }
)
DSN_FORM = "postgresql://user:password@host:5432/dbname"
_KEYWORD_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")


_NUMBER_KINDS: dict[object, str] = {int: "an integer", float: "a number"}


class _Section(BaseModel):
    # inf passes every lower bound, and a timer or a sleep of inf seconds raises OverflowError
    # long after start-up: refuse it (and nan) here, where the error names the key.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """Lax mode reads `health_port = true` as port 1; a boolean there is a mistake. Strict
        mode is not the cure: environment values are strings ("10") that lax mode parses."""
        if isinstance(value, bool) and info.field_name:
            kind = _NUMBER_KINDS.get(cls.model_fields[info.field_name].annotation)
            if kind:
                raise ValueError(f"expected {kind}, not a boolean")
        return value


class DatabaseSettings(_Section):
    url: str | None = Field(
        default=None,
        description="PostgreSQL DSN; unset means libpq's PG* variables (PGHOST, PGPORT, ...).",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        problem = dsn_problem(value) if value else None
        if problem:
            raise ValueError(problem)
        return value


class RealtimeSettings(_Section):
    enabled: bool = Field(default=True, description="Master switch (RESULTS_REALTIME_ENABLED).")
    url: str = Field(default="http://127.0.0.1:54321", description="Supabase project URL.")
    service_role_key: str | None = Field(default=None, description="Service-role JWT (secret).")
    jwt_secret: str | None = Field(default=None, description="JWT signing secret (secret).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        problem = http_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class DaemonSettings(_Section):
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    busy_poll_interval_ms: float = Field(default=1.0, gt=0, le=1000)
    max_linger_ms: float = Field(default=100.0, ge=0, le=1000)
    staging_pause_factor: float = Field(default=0.0, ge=0, le=100)
    idle_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    probe_interval_s: float = Field(default=5.0, gt=0)
    probe_timeout_s: float = Field(default=2.0, gt=0)
    leader_poll_interval_s: float = Field(default=1.0, gt=0, le=4)
    reconnect_max_backoff_s: float = Field(default=5.0, gt=0)
    max_lag_s: float = Field(default=60.0, gt=0)
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
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a directory; pass the path of a TOML file (config.toml)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (a TOML file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def config_path(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The file load_settings reads: --config, else $RESULTS_REALTIME_CONFIG, else ./config.toml
    if there is one (None: defaults and environment only)."""
    env = os.environ if env is None else env
    if path:
        return path
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    local = Path("config.toml")
    return local if local.is_file() else None


def known_env_names() -> frozenset[str]:
    """Every environment variable the package reads: the settings' twins and OTHER_ENV."""
    names = {
        env_name(section, key)
        for section, model in _sections().items()
        for key in model.model_fields
    }
    return frozenset(names | OTHER_ENV)


def _prefixed_twins() -> dict[str, tuple[str, str]]:
    """What one might write for a key whose twin has a well-known name, -> (key, that name):
    RESULTS_REALTIME_<SECTION>_<KEY>, RESULTS_REALTIME_<KEY> and RESULTS_REALTIME_<NAME> (for
    service_role_key: SUPABASE_SERVICE_ROLE_KEY). A key name two of them share (url) is left out."""
    keys = [key for _, key in WELL_KNOWN_ENV]
    twins: dict[str, tuple[str, str]] = {}
    for (section, key), name in WELL_KNOWN_ENV.items():
        guesses = [f"{section}_{key}", name, *([key] if keys.count(key) == 1 else [])]
        for guess in guesses:
            twins.setdefault(f"{ENV_PREFIX}{guess}".upper(), (f"{section}.{key}", name))
    return twins


def _unknown_env(env: Mapping[str, str]) -> list[str]:
    """RESULTS_REALTIME_* variables that nothing reads (a typo would otherwise go unnoticed)."""
    known = known_env_names()
    twins = _prefixed_twins()
    problems = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or env[name] == "":
            continue
        if name in twins:
            key, twin = twins[name]
            hint = f"; {key}'s environment variable is {twin}"
        else:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"environment variable {name}: no setting has this name{hint}")
    return problems


@dataclass(frozen=True)
class Override:
    """A key set by a command-line option: the top layer, validated with the rest, so a bad
    value is reported like a bad file or environment value, naming the option."""

    option: str  # e.g. "--database-url"
    value: object


Overrides = Mapping[tuple[str, str], Override]


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
) -> Settings:
    """Merge defaults, the TOML file, the environment and the options into validated, frozen
    Settings."""
    env = os.environ if env is None else env
    path = config_path(path, env)
    raw: dict[str, Any] = _read_file(path) if path else {}
    sources: dict[tuple[str, str], str] = {}
    sections = _sections()
    problems = _unknown_env(env)
    for section in raw:
        if section not in sections and not isinstance(raw[section], dict):
            raise ConfigError(f"{path}: {_outside_any_section(section, sections)}")
        if section not in sections:
            hint = _closest(section, list(sections), "section")
            raise ConfigError(f"{path}: unknown section [{section}]; {hint}")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{path}: [{section}] must be a table of keys")
        for key, value in raw[section].items():
            sources[(section, key)] = f"{path}"
            if (section, key) in SECRET_KEYS:
                problems.append(
                    f"{section}.{key} (from {path}): a secret, not read from config files; "
                    f"remove it from the file and set environment variable "
                    f"{env_name(section, key)} instead"
                )
            elif (section, key) == ("database", "url") and dsn_has_password(value):
                problems.append(
                    f"database.url (from {path}): holds a password, a secret, not read from "
                    "config files; remove the password from the file and set environment "
                    "variable DATABASE_URL (the whole URL, with it) instead, or PGPASSWORD"
                )
    for section, model in sections.items():
        for key in model.model_fields:
            name = env_name(section, key)
            if name in env and env[name] != "":
                raw.setdefault(section, {})[key] = env[name]
                sources[(section, key)] = f"environment variable {name}"
    for (section, key), override in (overrides or {}).items():
        if section not in sections or key not in sections[section].model_fields:
            raise TypeError(f"option {override.option} names no setting: {section}.{key}")
        raw.setdefault(section, {})[key] = override.value
        sources[(section, key)] = override.option
    if problems:  # before validation: a secret from a file must never be used, even to fail
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            dotted = ".".join(loc)
            where = sources.get((loc[0], loc[1]), "defaults") if len(loc) >= 2 else "config"
            if error["type"] == "extra_forbidden":
                known = list(sections[loc[0]].model_fields) if loc[0] in sections else []
                hint = _closest(loc[-1], known, "key")
                problems.append(f"{dotted} (from {where}): unknown key; {hint}")
            else:
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["type"] == "finite_number":  # pydantic: "Input should be a finite ..."
                    message = "expected a finite number, not inf or nan"
                got = _shown(tuple(loc[:2]), error.get("input"))
                problems.append(f"{dotted} (from {where}): {message}; got {got!r}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def _closest(name: str, known: list[str], what: Literal["section", "key"]) -> str:
    """'did you mean X?' for a near miss, else the list of what exists."""
    shown = [f"[{n}]" if what == "section" else n for n in known]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {shown[known.index(close[0])]}?"
    return f"known {what}s: {', '.join(shown)}"


def _outside_any_section(key: str, sections: dict[str, type[_Section]]) -> str:
    """A top-level `key = value`: every key lives in a [section]; name the one it belongs to."""
    owners = [name for name, model in sections.items() if key in model.model_fields]
    if owners:
        where = " or ".join(f"[{name}]" for name in owners)
        return f"{key} is outside any section; put it under {where}"
    every = [k for model in sections.values() for k in model.model_fields]
    close = difflib.get_close_matches(key, every, n=1, cutoff=0.6)
    owner = next((n for n, m in sections.items() if close and close[0] in m.model_fields), "")
    hint = f"did you mean {close[0]} (under [{owner}])?" if close else "no setting has this name"
    return f"{key} is outside any section, and unknown; {hint}"


def dsn_has_password(dsn: object) -> bool:
    """Does this DSN carry a password (in the user info, ?password=, or password=...)?"""
    if not isinstance(dsn, str):
        return False
    if _unencoded_credentials(dsn.strip()) or _SECRET_VALUE.search(dsn):
        return True
    try:
        return bool(urlsplit(dsn.strip()).password)
    except ValueError:
        return redact_dsn(dsn) != dsn


def _shown(key: tuple[str, ...], value: Any) -> Any:
    """A rejected value as an error message may repeat it: never a secret or a password."""
    if key in SECRET_KEYS:
        return "***"
    if key == ("database", "url") and isinstance(value, str):
        return redact_dsn(value)
    return value


def dsn_problem(dsn: str) -> str | None:
    """Why asyncpg cannot use this DSN, or None. The words never repeat the DSN (a password)."""
    scheme, sep, _ = dsn.strip().partition("://")
    if not sep:
        if _KEYWORD_DSN.match(dsn):
            return (
                "a libpq keyword/value string (host=... dbname=...) is not supported (asyncpg "
                f"reads URLs only); write it as a URL, {DSN_FORM}, or leave the setting unset "
                "and use the PG* variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)"
            )
        return f"not a PostgreSQL URL; expected {DSN_FORM}"
    if scheme.lower() not in ("postgresql", "postgres"):
        return (
            f"the scheme must be postgresql:// or postgres://, not {scheme}://; expected {DSN_FORM}"
        )
    if _unencoded_credentials(dsn.strip()):
        return _ENCODE_CREDENTIALS
    try:
        netloc = urlsplit(dsn.strip()).netloc
    except ValueError as exc:
        return f"not a valid URL ({exc}); expected {DSN_FORM}"
    for host in netloc.rpartition("@")[2].split(","):  # asyncpg takes host1:port1,host2:port2
        port = host.rpartition("]")[2] if host.startswith("[") else host
        _, colon, port = port.rpartition(":")
        if colon and port and not (port.isdigit() and 1 <= int(port) <= 65535):
            return f"port {port!r} is not a number from 1 to 65535; expected {DSN_FORM}"
    return None


_ENCODE_CREDENTIALS = (
    "the password (or user name) contains '@', '#', '/' or '?', which must be percent-encoded "
    "in a URL ('@' as %40, '#' as %23, '/' as %2F, '?' as %3F); expected "
    f"{DSN_FORM}"
)


def _unencoded_credentials(dsn: str) -> bool:
    """A user or password holding a URL delimiter: asyncpg would split the URL inside it, take
    part of the password for a host or a port, and report that part back in its error."""
    rest = dsn.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.count("@") > 1:  # asyncpg ends the user info at the first '@'
        return True
    if "@" in authority or "@" not in rest:
        return False
    # '@' after a '/', '?' or '#': the user info was cut short by one of those, unless the '@'
    # is in a query value (?user=a@b) -- which comes after a '='; the cut authority then reads
    # as user:pass, whose "port" is no number.
    before = rest[: rest.rindex("@")]
    port = authority.rpartition(":")[2] if ":" in authority else ""
    return "=" not in before or (port != "" and not port.isdigit())


def http_url_problem(url: str) -> str | None:
    """Why this is not a usable http(s) base URL, or None."""
    expected = "expected an http:// or https:// URL such as https://<ref>.supabase.co"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc}); {expected}"
    if parts.scheme not in ("http", "https"):
        shown = f"not {parts.scheme}://" if parts.scheme else "and it has none"
        return f"the scheme must be http:// or https://, {shown}; {expected}"
    if not parts.hostname:
        return f"no host name; {expected}"
    if port == 0:
        return f"port 0 is not a port to connect to; {expected}"
    if "?" in url or "#" in url:  # paths are appended to it: ...?x=1/realtime/v1/api/broadcast
        return (
            "it has a query string (?...) or fragment (#...); remove it: expected the project "
            "URL alone, such as https://<ref>.supabase.co (the daemon appends /realtime/v1/... "
            "to it)"
        )
    return None


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


_SECRET_VALUE = re.compile(r"\b(password|sslpassword)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.I)


def redact_dsn(dsn: str) -> str:
    """Hide every password a DSN can carry, for every message and log line that shows one:
    postgresql://user:secret@host/db, ...?password=secret, and libpq's password=secret."""
    scheme, sep, rest = dsn.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")  # the last @: a password may hold '?' or '/'
        if ":" in creds:
            rest = f"{creds.split(':', 1)[0]}:***@{host}"
    return _SECRET_VALUE.sub(lambda m: f"{m[1]}{m[2]}***", f"{scheme}{sep}{rest}")
