"""Applies the numbered migrations once each, in order, then the repeatable triggers file."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from daemon.errors import MigrationError
from daemon.log import get_logger
from daemon.sqlfiles import Migration, migrations, triggers_sql

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
"""


@dataclass(frozen=True, slots=True)
class MigrateResult:
    applied: list[str]
    already: int


async def migrate(conn: asyncpg.Connection) -> MigrateResult:
    """Idempotent: a second run applies nothing. A changed, already-applied file is an error."""
    await conn.execute("select pg_advisory_lock($1)", _MIGRATE_LOCK_KEY)
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
            await _apply(conn, migration)
            applied.append(f"{migration.version:04d}_{migration.name}")
        async with conn.transaction():
            await conn.execute(triggers_sql())
        log.info("migrate.done", applied=applied, already=len(done))
        return MigrateResult(applied=applied, already=len(done))
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _MIGRATE_LOCK_KEY)


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


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
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
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration {label} failed and was rolled back: {exc}") from exc
    log.info("migrate.applied", migration=label)
