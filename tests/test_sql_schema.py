"""The schema is a pure function of the SQL files: however they are applied, the result is the same.

Like procrastinate's migration test: the migrated template the other tests use is compared, object
by object (tables, columns, constraints, indexes, functions with their bodies and privileges,
policies, triggers), with databases built other ways: each file applied by hand in order, and
`migrate` run twice (the repeatable triggers file must converge, not pile up).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from daemon.migrate import migrate
from daemon.sqlfiles import migrations, triggers_sql
from tests.fixtures.db import PgServer

SCHEMAS = ["public", "auth", "storage", "realtime", "results_realtime"]

SNAPSHOT_QUERIES = {
    "columns": """
        select table_schema, table_name, column_name, data_type, is_nullable, column_default
        from information_schema.columns
        where table_schema = any($1)
          and table_name not in ('schema_migrations', 'repeatable_files')
    """,
    "tables": """
        select n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relacl::text,
               c.reloptions::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'S')
          and c.relname not like 'schema_migrations%' and c.relname not like 'repeatable_files%'
    """,
    "constraints": """
        select n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        from pg_constraint c join pg_namespace n on n.oid = c.connamespace
        where n.nspname = any($1) and c.conrelid::regclass::text not like '%schema_migrations'
          and c.conrelid::regclass::text not like '%repeatable_files'
    """,
    "indexes": """
        select schemaname, tablename, indexname, indexdef from pg_indexes
        where schemaname = any($1)
          and tablename not in ('schema_migrations', 'repeatable_files')
    """,
    "functions": """
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
               pg_get_function_result(p.oid), md5(p.prosrc), p.prosecdef, p.provolatile,
               p.proconfig::text, p.proacl::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any($1)
    """,
    "policies": """
        select schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check
        from pg_policies where schemaname = any($1)
    """,
    "triggers": """
        select t.tgrelid::regclass::text, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)
        from pg_trigger t
        join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where not t.tgisinternal and n.nspname = any($1)
    """,
}

Snapshot = dict[str, list[tuple[object, ...]]]


async def snapshot(dsn: str) -> Snapshot:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: sorted(tuple(r) for r in await conn.fetch(sql, SCHEMAS))
            for name, sql in SNAPSHOT_QUERIES.items()
        }
    finally:
        await conn.close()


@pytest.fixture
async def scratch_database(pg_server: PgServer) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Empty databases on the test server, dropped afterwards."""
    admin = await asyncpg.connect(pg_server.dsn or None)
    created: list[str] = []

    async def make() -> str:
        name = f"rr_schema_{os.getpid()}_{len(created)}"
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.execute(f"create database {name}")
        created.append(name)
        return pg_server.database(name)

    try:
        yield make
    finally:
        for name in created:
            await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()


async def test_the_snapshot_sees_the_pipeline_objects(database_url: str) -> None:
    """Guards the comparison below against comparing two empty lists."""
    snap = await snapshot(database_url)
    names = {row[1] for row in snap["functions"]}
    assert {"cells_for_keys_v1", "cell_state_v2", "object_cell_v1"} <= names
    assert {"read_assignment_results", "record_submission_changes_v1"} <= names
    triggers = {(row[0], row[1]) for row in snap["triggers"]}
    for table in ("submissions", "storage.objects"):
        for op in ("insert", "update", "delete", "truncate"):
            assert (table, f"results_realtime_{op}_v1") in triggers, (table, op, triggers)
    assert ("results_realtime", "outbox") in {(r[0], r[1]) for r in snap["tables"]}
    assert any(row[2] == "results_realtime_teachers_read_v1" for row in snap["policies"])


async def test_files_applied_by_hand_in_order_give_the_template_schema(
    database_url: str, scratch_database: Callable[[], Awaitable[str]]
) -> None:
    dsn = await scratch_database()
    conn = await asyncpg.connect(dsn)
    try:
        for migration in migrations():
            async with conn.transaction():
                await conn.execute(migration.sql)
        async with conn.transaction():
            await conn.execute(triggers_sql())
    finally:
        await conn.close()
    assert await snapshot(dsn) == await snapshot(database_url)


async def test_migrate_twice_converges_to_the_template_schema(
    database_url: str, scratch_database: Callable[[], Awaitable[str]]
) -> None:
    dsn = await scratch_database()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        second = await migrate(conn)
    finally:
        await conn.close()
    assert second.applied == []
    assert await snapshot(dsn) == await snapshot(database_url)


# Every function in our schemas that reads one of the application's tables (the reference schema's
# public tables, and Storage's objects) or is a trigger on one of them.
APP_SCHEMA_READERS = r"""
    with app_tables as (
        select schemaname, tablename, schemaname = 'public' as owned_by_app
        from pg_tables
        where schemaname = 'public' or (schemaname, tablename) = ('storage', 'objects')
    )
    select n.nspname || '.' || p.proname as name, p.prorettype = 'trigger'::regtype as is_trigger,
           bool_or(a.owned_by_app) as app_table
    from pg_proc as p
    join pg_namespace as n on n.oid = p.pronamespace
    join app_tables as a
      on p.prosrc ~* ('\m' || a.schemaname || '\.' || a.tablename || '\M')
      or exists (select from pg_trigger as t
                 where t.tgfoid = p.oid and t.tgrelid = format('%I.%I', a.schemaname,
                                                               a.tablename)::regclass)
    where n.nspname in ('public', 'results_realtime')
    group by 1, 2
"""


def _adapting_section() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("## Adapting the SQL to another schema")
    return readme[start : readme.index("\n## ", start + 1)]


async def test_the_adapting_guide_names_every_function_that_knows_the_apps_tables(
    db: asyncpg.Connection,
) -> None:
    section = _adapting_section()
    listed = set(re.findall(r"^\| `([a-z_]+\.[a-z0-9_]+)\(", section, flags=re.MULTILINE))
    readers = await db.fetch(APP_SCHEMA_READERS)
    functions = {r["name"] for r in readers if not r["is_trigger"]}
    # Triggers on Storage's own table stay as they are; those on the app's tables are named.
    triggers = {r["name"] for r in readers if r["is_trigger"] and r["app_table"]}
    assert {"results_realtime.cell_state_v2", "public.read_assignment_results"} <= functions
    assert "results_realtime.record_submission_insert_v1" in triggers

    assert functions <= listed, f"not in the README's adapter table: {functions - listed}"
    missing = {name for name in triggers if name.split(".")[1] not in section}
    assert not missing, f"the README's adapting section does not name: {missing}"
    existing = {r["name"] for r in await db.fetch(ALL_FUNCTIONS)}
    assert listed <= existing, f"the README names functions that do not exist: {listed - existing}"


ALL_FUNCTIONS = """
    select n.nspname || '.' || p.proname as name
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname in ('public', 'results_realtime')
"""
