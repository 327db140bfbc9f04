"""Connecting to PostgreSQL with errors a person can act on."""

from __future__ import annotations

import asyncpg

from daemon.config import redact_dsn
from daemon.errors import DatabaseError


async def connect(
    dsn: str | None,
    *,
    connect_timeout: float = 10.0,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Connection:
    """One connection; dsn None or "" means libpq's PG* variables."""
    where = redact_dsn(dsn) if dsn else "the server named by PG* variables (or localhost:5432)"
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn or None, timeout=connect_timeout, server_settings=server_settings
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {where}: {exc}. "
            "Set DATABASE_URL (or database.url in config.toml) to a reachable server."
        ) from exc
    return conn
