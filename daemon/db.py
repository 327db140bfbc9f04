"""Connecting to PostgreSQL with errors a person can act on."""

from __future__ import annotations

from typing import Any

import asyncpg

from daemon.config import redact_dsn
from daemon.errors import DatabaseError

_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
APP_NAME = "results-realtime"


def _settings(role: str, extra: dict[str, str] | None) -> dict[str, str]:
    """Every session says what it is, so pg_stat_activity tells ops which one is ours."""
    return {"application_name": f"{APP_NAME} {role}".strip(), **(extra or {})}


def _unreachable(dsn: str | None, exc: BaseException, purpose: str) -> DatabaseError:
    where = redact_dsn(dsn) if dsn else "the server named by PG* variables (or localhost:5432)"
    why = f" {purpose}" if purpose else ""
    return DatabaseError(
        f"cannot connect to PostgreSQL at {where}{why}: {exc}. "
        "Set DATABASE_URL (or database.url in config.toml) to a reachable server."
    )


async def connect(
    dsn: str | None,
    *,
    connect_timeout: float = 10.0,
    server_settings: dict[str, str] | None = None,
    purpose: str = "",
    role: str = "",
) -> asyncpg.Connection:
    """One connection; dsn None or "" means libpq's PG* variables.

    `role` names the session in pg_stat_activity (application_name 'results-realtime ROLE').
    """
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn or None, timeout=connect_timeout, server_settings=_settings(role, server_settings)
        )
    except _CONNECT_ERRORS as exc:
        raise _unreachable(dsn, exc, purpose) from exc
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
    try:
        pool: asyncpg.Pool | None = await asyncpg.create_pool(
            dsn or None,
            min_size=1,
            max_size=max_size,
            timeout=connect_timeout,
            server_settings=_settings(role, options.pop("server_settings", None)),
            **options,
        )
    except _CONNECT_ERRORS as exc:
        raise _unreachable(dsn, exc, purpose) from exc
    if pool is None:  # only when create_pool is awaited twice; never here
        raise DatabaseError("asyncpg returned no pool")
    return pool
