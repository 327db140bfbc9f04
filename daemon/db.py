"""Connecting to PostgreSQL with errors a person can act on."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

from daemon.config import dsn_problem, redact_dsn
from daemon.errors import ConfigError, DatabaseError, describe

_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# What asyncpg raises for connection settings it cannot use (it parses them before connecting):
# a bad sslmode or URL, a port out of range (OverflowError), a PGPORT that is not a number.
_SETTINGS_ERRORS = (asyncpg.ClientConfigurationError, ValueError, OverflowError)
APP_NAME = "results-realtime"
_SET_IT = "Set DATABASE_URL (or database.url in config.toml)"


def _settings(role: str, extra: dict[str, str] | None) -> dict[str, str]:
    """Every session says what it is, so pg_stat_activity tells ops which one is ours."""
    return {"application_name": f"{APP_NAME} {role}".strip(), **(extra or {})}


# The libpq variables asyncpg reads when there is no DSN that name a server (any of them set means
# "use that server", localpg.configured_dsn), in the order a person would say them.
PG_SERVER_VARIABLES = ("PGSERVICE", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER")
# ... and what messages show of how the connection is made (PGPASSWORD never).
_PG_SHOWN = (*PG_SERVER_VARIABLES, "PGSSLMODE")


def where(dsn: str | None) -> str:
    """The server a DSN names, for messages: its password redacted; without one, the PG*
    variables that name it (PGPASSWORD never shown)."""
    if dsn:
        return redact_dsn(dsn)
    named = [f"{name}={os.environ[name]}" for name in _PG_SHOWN if os.environ.get(name)]
    if not named:
        return "the server of libpq's defaults (no DATABASE_URL, no PG* variables: localhost:5432)"
    return f"the server named by PG* variables ({', '.join(named)}; unset ones: libpq defaults)"


def reached(role: str, database: str, host: str | None, port: int | None) -> str:
    """Where a connection made without a DSN actually went, as the server reports it."""
    at = f"{host}:{port}" if host else f"a local socket (port {port})"
    return f"{role}@{at}/{database} (from PG* variables)"


def _check_dsn(dsn: str | None) -> None:
    """--database-url of any command, or a DSN given in code, fails as configuration (exit 2)."""
    problem = dsn_problem(dsn) if dsn else None
    if problem:
        raise ConfigError(f"DATABASE_URL (or database.url, --database-url): {problem}")


def _reason(exc: BaseException, timeout_s: float) -> str:
    """What went wrong, never empty: asyncpg's timeout is a TimeoutError without text."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout_s:g} s (database.connect_timeout_s)"
    return str(exc).strip() or describe(exc)


_NOT_POSTGRES = (
    "The address did not answer like PostgreSQL: check the host and port (a local Supabase's "
    "API is on 54321, its database on 54322)."
)
_SSL_REQUIRING_MODES = frozenset({"require", "verify-ca", "verify-full"})


def _ssl_required(dsn: str | None) -> bool:
    """Whether sslmode (in the URL, else PGSSLMODE) forbids falling back to a plain connection."""
    query = parse_qs(urlsplit(dsn).query) if dsn else {}
    mode = query.get("sslmode", [os.environ.get("PGSSLMODE", "prefer")])[-1]
    return mode in _SSL_REQUIRING_MODES


def _advice(exc: BaseException, dsn: str | None) -> str:
    """The fix that fits the failure: the server answered, or it did not."""
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc):
        # asyncpg says this of any answer to its SSL request but "yes": a PostgreSQL server
        # without SSL says "no", which only a mode that requires SSL refuses; anything else
        # answering (an HTTP port, say) is not PostgreSQL.
        if not _ssl_required(dsn):
            return _NOT_POSTGRES
        return (
            "Either the server does not accept SSL, and sslmode requires it: use sslmode=prefer "
            "or sslmode=disable in DATABASE_URL (or PGSSLMODE), or enable SSL on the server; or "
            "the address is not PostgreSQL at all: check the host and port."
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return "Check the user name and password in DATABASE_URL (or PGUSER / PGPASSWORD)."
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return (
            "The server refused this role: check the user name and password in DATABASE_URL "
            "(or PGUSER / PGPASSWORD), and that the role may log in from here (pg_hba.conf)."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "Create that database, or fix the database name in DATABASE_URL (or PGDATABASE)."
    if isinstance(exc, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError):
        return "The server is reachable but not accepting connections now; try again shortly."
    if isinstance(exc, asyncpg.PostgresError):
        return f"The server answered but refused the connection. {_SET_IT} to a usable server."
    return f"{_SET_IT} to a reachable server (check the host and port, and that it is running)."


def connect_error(dsn: str | None, exc: BaseException, purpose: str, timeout_s: float) -> Exception:
    """What a failed connect becomes: a configuration error (exit 2) or a database one (3)."""
    """The error a failed connect becomes: configuration (exit 2) or database (exit 3)."""
    why = f" {purpose}" if purpose else ""
    if isinstance(exc, _SETTINGS_ERRORS):
        return ConfigError(
            f"the connection settings for {where(dsn)}{why} are invalid: "
            f"{redact_dsn(_reason(exc, timeout_s))}. {_SET_IT} to a URL such as "
            "postgresql://user:password@host:5432/dbname (PG* variables: PGHOST, PGPORT, ...)."
        )
    return DatabaseError(
        f"cannot connect to PostgreSQL at {where(dsn)}{why}: "
        f"{redact_dsn(_reason(exc, timeout_s))}. {_advice(exc, dsn)}"
    )


async def connect(
    dsn: str | None,
    *,
    connect_timeout: float = 10.0,
    server_settings: dict[str, str] | None = None,
    purpose: str = "",
    role: str = "",
    command_timeout: float | None = None,
) -> asyncpg.Connection:
    """One connection; dsn None or "" means libpq's PG* variables.

    `role` names the session in pg_stat_activity (application_name 'results-realtime ROLE').
    """
    _check_dsn(dsn)
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn or None,
            timeout=connect_timeout,
            server_settings=_settings(role, server_settings),
            command_timeout=command_timeout,
        )
    except _SETTINGS_ERRORS + _CONNECT_ERRORS as exc:
        raise connect_error(dsn, exc, purpose, connect_timeout) from exc
    return conn


async def create_pool(
    dsn: str | None,
    *,
    max_size: int,
    connect_timeout: float = 10.0,
    purpose: str = "",
    role: str = "pool",
    **options: Any,
) -> asyncpg.Pool:
    """A pool whose first connection is made now, so a bad DSN fails here, clearly."""
    _check_dsn(dsn)
    try:
        pool: asyncpg.Pool | None = await asyncpg.create_pool(
            dsn or None,
            min_size=1,
            max_size=max_size,
            timeout=connect_timeout,
            server_settings=_settings(role, options.pop("server_settings", None)),
            **options,
        )
    except _SETTINGS_ERRORS + _CONNECT_ERRORS as exc:
        raise connect_error(dsn, exc, purpose, connect_timeout) from exc
    if pool is None:  # only when create_pool is awaited twice; never here
        raise DatabaseError("asyncpg returned no pool")
    return pool


def dsn_for_database(server_dsn: str, database: str) -> str:
    """The same server, user and options, another database ("" = PG* variables)."""
    if not server_dsn:
        return f"postgresql:///{database}"
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{database}"))
