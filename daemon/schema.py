"""Is the database migrated to what this version ships? Asked by `check` and at `run`'s start."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from daemon.errors import DatabaseError
from daemon.sqlfiles import checksum_of, migrations, query, triggers_defined, triggers_sql

_FIX = "run `results-realtime migrate`"
TRIGGERS_FILE = "triggers.sql"


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


@dataclass(frozen=True, slots=True)
class TriggersState:
    """sql/triggers.sql as this version ships it, against what the database has."""

    text: str
    checksum: str
    recorded: str | None  # the checksum recorded when migrate last applied the file
    missing: tuple[str, ...]  # 'table: trigger' of the file's triggers that do not exist

    @property
    def current(self) -> bool:
        return self.recorded == self.checksum and not self.missing


async def triggers_state(conn: asyncpg.Connection) -> TriggersState:
    text = triggers_sql()
    wanted = triggers_defined(text)
    rows = await conn.fetch(
        query("runtime_triggers_state"),
        TRIGGERS_FILE,
        [table for table, _ in wanted],
        [name for _, name in wanted],
    )
    present = {(r["table_name"], r["trigger_name"]) for r in rows if r["present"]}
    recorded = rows[0]["recorded"] if rows else None
    return TriggersState(
        text=text,
        checksum=checksum_of(text),
        recorded=recorded,
        missing=tuple(f"{table}: {name}" for table, name in wanted if (table, name) not in present),
    )


async def require_triggers(conn: asyncpg.Connection) -> int:
    """The number of triggers, all present and as this version ships them; else a DatabaseError.

    Without them nothing reaches the outbox: a daemon would run healthy and publish nothing.
    """
    state = await triggers_state(conn)
    if state.missing:
        raise DatabaseError(
            f"the realtime triggers are missing ({', '.join(state.missing)}), so no change would "
            f"be recorded; {_FIX}"
        )
    if state.recorded != state.checksum:
        raise DatabaseError(
            f"the realtime triggers are not the ones this version ships (sql/{TRIGGERS_FILE} "
            f"changed since it was applied); {_FIX}"
        )
    return len(triggers_defined(state.text))
