"""Applies the numbered migrations once each, in order, then the repeatable triggers file."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from daemon.errors import MigrationError
from daemon.log import get_logger
from daemon.schema import TRIGGERS_FILE, triggers_state
from daemon.sqlfiles import Migration, migrations, query

log = get_logger(__name__)

# Serialises concurrent `migrate` runs against one database.
_MIGRATE_LOCK_KEY = 0x5252_4D49_4752  # "RRMIGR"

_BOOKKEEPING = """
create schema if not exists results_realtime;
create table if not exists results_realtime.schema_migrations (
    version int primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now()
);
create table if not exists results_realtime.repeatable_files (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
);
"""
# The session's lock_timeout for the run (the caller's own comes back at the end).
_SET_LOCK_TIMEOUT = "select set_config('lock_timeout', $1, false)"
DEFAULT_LOCK_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class MigrateResult:
    applied: list[str]
    already: int


async def migrate(
    conn: asyncpg.Connection, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> MigrateResult:
    """Idempotent: a second run applies nothing and locks none of the app's tables. A changed,
    already-applied file is an error.

    Each lock a statement needs is waited for at most `lock_timeout_s`: a DDL statement waiting
    for a lock queues every later reader and writer of that table behind it, so a migration
    that meets a long transaction fails (and can be retried) instead of stalling the app.
    """
    await conn.execute("select pg_advisory_lock($1)", _MIGRATE_LOCK_KEY)
    callers = await conn.fetchval("select current_setting('lock_timeout')")
    await conn.execute(_SET_LOCK_TIMEOUT, f"{round(lock_timeout_s * 1000)}ms")
    try:
        await conn.execute(_BOOKKEEPING)
        rows = await conn.fetch(
            "select version, name, checksum from results_realtime.schema_migrations"
        )
        done = {r["version"]: r for r in rows}
        applied: list[str] = []
        for migration in migrations():
            if migration.version in done:
                recorded = done[migration.version]["checksum"]
                if recorded in migration.replaces:
                    await _record_rewritten(conn, migration)
                else:
                    _check_unchanged(migration, recorded)
                continue
            await _apply(conn, migration, lock_timeout_s)
            applied.append(f"{migration.version:04d}_{migration.name}")
        await _apply_triggers(conn, lock_timeout_s)
        log.info("migrate.done", applied=applied, already=len(done))
        return MigrateResult(applied=applied, already=len(done))
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _MIGRATE_LOCK_KEY)
        await conn.execute(_SET_LOCK_TIMEOUT, callers)


async def _apply_triggers(conn: asyncpg.Connection, lock_timeout_s: float) -> None:
    """The repeatable triggers file, when it changed or one of its triggers is missing."""
    state = await triggers_state(conn)
    if state.current:
        return
    try:
        async with conn.transaction():
            await conn.execute(state.text)
            await conn.execute(query("runtime_record_triggers"), TRIGGERS_FILE, state.checksum)
    except asyncpg.LockNotAvailableError as exc:
        raise _gave_up_waiting(f"sql/{TRIGGERS_FILE}", lock_timeout_s, exc) from exc
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"sql/{TRIGGERS_FILE} failed and was rolled back: {exc}") from exc
    log.info("migrate.triggers_applied", checksum=state.checksum[:12])


def _check_unchanged(migration: Migration, recorded: str) -> None:
    if recorded != migration.checksum:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} was edited after it was applied; "
            "migrations are never edited, add a new numbered file instead"
        )


async def _record_rewritten(conn: asyncpg.Connection, migration: Migration) -> None:
    """An earlier text of a rewritten file applied here: record the current one (once)."""
    await conn.execute(
        "update results_realtime.schema_migrations set checksum = $2 where version = $1",
        migration.version,
        migration.checksum,
    )
    log.info(
        "migrate.record_updated",
        migration=f"{migration.version:04d}_{migration.name}",
        note="an earlier text of this file applied here; the rewrite changes nothing where it did",
    )


async def _apply(conn: asyncpg.Connection, migration: Migration, lock_timeout_s: float) -> None:
    label = f"{migration.version:04d}_{migration.name}"
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "insert into results_realtime.schema_migrations (version, name, checksum)"
                " values ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.LockNotAvailableError as exc:
        raise _gave_up_waiting(f"migration {label}", lock_timeout_s, exc) from exc
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration {label} failed and was rolled back: {exc}") from exc
    log.info("migrate.applied", migration=label)


def _gave_up_waiting(what: str, lock_timeout_s: float, exc: Exception) -> MigrationError:
    return MigrationError(
        f"{what} waited {lock_timeout_s:g} s for a lock and gave up, so as not to hold up the "
        f"app's readers and writers queued behind it ({exc}): a long transaction holds a table "
        "it changes; nothing was applied by it; run migrate again once that transaction ended"
    )
