"""Is the database migrated to what this version ships? Asked by `check` and at `run`'s start."""

from __future__ import annotations

import asyncpg

from daemon.errors import DatabaseError
from daemon.sqlfiles import migrations, query

_FIX = "run `results-realtime migrate`"


async def require_migrated(conn: asyncpg.Connection) -> int:
    """The number of migrations, all applied; else a DatabaseError (exit 3) naming the pending."""
    expected = migrations()
    if not await conn.fetchval(query("runtime_migrations_table_exists")):
        raise DatabaseError(f"the database is not migrated (it has none of our migrations): {_FIX}")
    applied = {r["version"] for r in await conn.fetch(query("runtime_applied_migrations"))}
    pending = [f"{m.version:04d}_{m.name}" for m in expected if m.version not in applied]
    if pending:
        raise DatabaseError(
            f"the database is not fully migrated: pending migrations {', '.join(pending)}; {_FIX}"
        )
    return len(expected)
