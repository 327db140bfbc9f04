"""Migrations: idempotent, recorded, and harmless to an existing app's tables."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from bench.common import sql as bench_sql
from daemon.errors import MigrationError
from daemon.migrate import migrate
from daemon.sqlfiles import Migration, migrations, triggers_defined, triggers_sql
from tests.fixtures.db import PgServer
from tests.support.process import cli_env, interrupt_once_connected, run_cli
from tests.support.silent_server import silent_server

_REFERENCE_TABLES = [
    "groups",
    "lessons",
    "activities",
    "group_members",
    "assignments",
    "submissions",
]
_ROW_SECURITY = """
    select relname from pg_class
    where relnamespace = 'public'::regnamespace and relrowsecurity and relname = any($1::text[])
    order by relname
"""


async def test_reference_tables_it_creates_are_closed_to_api_roles(db: asyncpg.Connection) -> None:
    """On Supabase, anon and authenticated get every privilege on new tables in public: a table
    created for the reference schema has RLS on, so none of its rows is theirs without a policy."""
    closed = [r["relname"] for r in await db.fetch(_ROW_SECURITY, _REFERENCE_TABLES)]
    assert closed == sorted(_REFERENCE_TABLES)


async def test_second_run_applies_nothing(db: asyncpg.Connection) -> None:
    result = await migrate(db)
    assert result.applied == []
    assert result.already == len(migrations())


async def test_every_migration_is_recorded_in_order(db: asyncpg.Connection) -> None:
    rows = await db.fetch("select version from results_realtime.schema_migrations order by 1")
    assert [r["version"] for r in rows] == [m.version for m in migrations()]


async def test_edited_migration_is_refused(db: asyncpg.Connection) -> None:
    first = migrations()[0]
    await db.execute(
        "update results_realtime.schema_migrations set checksum = 'x' where version = $1",
        first.version,
    )
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrate(db)


async def test_existing_app_tables_are_neither_created_nor_altered(pg_server: PgServer) -> None:
    """A real app's database already has submissions and storage.objects with its own shape."""
    admin = await asyncpg.connect(pg_server.dsn or None)
    name = "rr_existing_app"
    await admin.execute(f"drop database if exists {name} with (force)")
    await admin.execute(f"create database {name}")
    conn = await asyncpg.connect(pg_server.database(name))
    try:
        await conn.execute(
            """
            create table public.groups (id text primary key, name text not null, extra int);
            create table public.lessons (id text primary key, title text not null);
            create table public.activities (id text primary key, lesson_id text not null
                references lessons, title text not null, kind text not null,
                position int not null default 0, app_only text);
            create table public.group_members (group_id text, user_id uuid not null,
                role text not null, primary key (group_id, user_id));
            create table public.assignments (group_id text, lesson_id text,
                primary key (group_id, lesson_id));
            create table public.submissions (id uuid primary key default gen_random_uuid(),
                activity_id text not null, user_id uuid not null, body jsonb not null default '{}',
                submitted_at timestamptz not null default now(), ai_score numeric, ai_model text,
                ai_feedback text, ai_marked_at timestamptz, teacher_score numeric,
                teacher_feedback text, teacher_marked_at timestamptz,
                updated_at timestamptz not null default now(), app_column text,
                unique (activity_id, user_id));
            create schema storage;
            create table storage.objects (id uuid primary key, bucket_id text, name text,
                owner uuid, metadata jsonb, created_at timestamptz, updated_at timestamptz,
                path_tokens text[]);
            """
        )
        shape_sql = """
            select table_schema, table_name, column_name, data_type, is_nullable, column_default
            from information_schema.columns
            where (table_schema = 'public' and table_name in
                   ('groups','lessons','activities','group_members','assignments','submissions'))
               or (table_schema = 'storage' and table_name = 'objects')
            order by 1, 2, column_name
        """
        before = [tuple(r) for r in await conn.fetch(shape_sql)]
        await migrate(conn)
        after = [tuple(r) for r in await conn.fetch(shape_sql)]
        assert after == before
        assert await conn.fetch(_ROW_SECURITY, _REFERENCE_TABLES) == []  # left as they were
        assert ("public", "submissions", "app_column") in [r[:3] for r in after]
    finally:
        await conn.close()
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()


async def test_a_database_that_recorded_an_earlier_text_of_a_rewritten_file_is_up_to_date(
    db: asyncpg.Connection,
) -> None:
    rewritten = next(m for m in migrations() if m.replaces)
    (earlier,) = rewritten.replaces
    recorded = "select checksum from results_realtime.schema_migrations where version = $1"
    await db.execute(
        "update results_realtime.schema_migrations set checksum = $2 where version = $1",
        rewritten.version,
        earlier,
    )
    with capture_logs() as logs:
        result = await migrate(db)
    assert result.applied == []
    assert await db.fetchval(recorded, rewritten.version) == rewritten.checksum
    assert [e["migration"] for e in logs if e["event"] == "migrate.record_updated"] == [
        f"{rewritten.version:04d}_{rewritten.name}"
    ]
    await migrate(db)  # recorded now: nothing more to say
    assert await db.fetchval(recorded, rewritten.version) == rewritten.checksum


async def test_migrate_as_a_platform_role_that_may_not_create_in_supabase_schemas(
    pg_server: PgServer,
) -> None:
    """A Supabase project: auth, storage and realtime belong to the platform's own roles, and
    the postgres role may use them but not create in them (nor in the database's other schemas
    it does not own). Migrating must neither need that nor grant anything on them."""
    suffix = os.getpid()
    name = f"rr_platform_{suffix}"
    migrator, platform, realtime_admin = (
        f"rr_sb_postgres_{suffix}",
        f"rr_sb_admin_{suffix}",
        f"rr_sb_realtime_admin_{suffix}",
    )
    admin = await asyncpg.connect(pg_server.dsn or None)
    await admin.execute(f"drop database if exists {name} with (force)")
    for role in (migrator, platform, realtime_admin):
        await admin.execute(f"drop role if exists {role}")
        await admin.execute(f"create role {role} nologin")
    await admin.execute(f"grant {realtime_admin} to {migrator}")  # as postgres may own policies
    await admin.execute(f"create database {name} owner {migrator}")
    conn = await asyncpg.connect(pg_server.database(name))
    try:
        # the objects Supabase creates, owned by its roles; migration 0001 creates the API roles
        # where missing, as on any local server
        await conn.execute(migrations()[0].sql)
        await conn.execute(
            f"""
            drop schema auth, storage, realtime cascade;
            create schema auth authorization {platform};
            create schema storage authorization {platform};
            create schema realtime authorization {platform};
            grant usage on schema auth, storage, realtime to {migrator};
            set role {platform};
            create function auth.uid() returns uuid language sql stable
                as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
            create function auth.jwt() returns jsonb language sql stable
                as $$ select '{{}}'::jsonb $$;
            create function auth.role() returns text language sql stable
                as $$ select null::text $$;
            create function realtime.topic() returns text language sql stable
                as $$ select nullif(current_setting('realtime.topic', true), '') $$;
            create table storage.objects (id uuid primary key default gen_random_uuid(),
                bucket_id text, name text, owner uuid, metadata jsonb,
                created_at timestamptz default now(), updated_at timestamptz default now());
            grant all on storage.objects to {migrator};
            reset role;
            create table realtime.messages (topic text not null, extension text not null,
                payload jsonb, event text, private boolean default false,
                inserted_at timestamp not null default now(),
                id uuid not null default gen_random_uuid());
            alter table realtime.messages owner to {realtime_admin};
            alter table realtime.messages enable row level security;
            """
        )
        acl_sql = (
            "select nspname, nspacl::text from pg_namespace"
            " where nspname in ('auth', 'storage', 'realtime') order by 1"
        )
        before = [tuple(r) for r in await conn.fetch(acl_sql)]
        await conn.execute(f"set role {migrator}")
        await migrate(conn)
        await conn.execute("reset role")
        # a trigger lost on the platform's table: the next migrate replaces the set, as a role
        # that may add triggers to storage.objects but does not own it
        await conn.execute("drop trigger results_realtime_update_v1 on storage.objects")
        await conn.execute(f"set role {migrator}")
        await migrate(conn)
        await conn.execute("reset role")
        assert [tuple(r) for r in await conn.fetch(acl_sql)] == before
        triggers = await conn.fetchval(
            "select count(*) from pg_trigger"
            " where tgname like 'results_realtime_%' and tgrelid = 'storage.objects'::regclass"
        )
        assert triggers == 4
        assert await conn.fetchval(
            "select count(*) from pg_policies where schemaname = 'realtime'"
            " and policyname = 'results_realtime_teachers_read_v1'"
        )
    finally:
        await conn.close()
        await admin.execute(f"drop database if exists {name} with (force)")
        for role in (migrator, platform, realtime_admin):
            await admin.execute(f"drop role if exists {role}")
        await admin.close()


async def _open_writer(database_url: str) -> asyncpg.Connection:
    """A transaction that wrote to both tables the triggers are on, left open."""
    writer = await asyncpg.connect(database_url)
    await writer.execute(
        "begin;"
        "insert into public.lessons (id, title) values ('L9', 'l');"
        "insert into public.activities (id, lesson_id, title, kind)"
        " values ('A9', 'L9', 'a', 'text');"
        "insert into public.submissions (activity_id, user_id) values ('A9', gen_random_uuid());"
        "insert into storage.objects (bucket_id, name) values ('submissions', 'x')"
    )
    return writer


async def test_a_second_run_locks_none_of_the_apps_tables(
    db: asyncpg.Connection, database_url: str
) -> None:
    """It used to drop and create every trigger: an ACCESS EXCLUSIVE lock on submissions and
    storage.objects that waited for every open writer and queued every later one behind it."""
    writer = await _open_writer(database_url)
    try:
        with capture_logs() as logs:
            async with asyncio.timeout(5):
                result = await migrate(db)
    finally:
        await writer.close()
    assert result.applied == []
    assert "migrate.triggers_applied" not in [e["event"] for e in logs]


async def test_a_missing_trigger_is_restored(db: asyncpg.Connection) -> None:
    present = (
        "select count(*) from pg_trigger where tgname like 'results_realtime_%_v1'"
        " and tgrelid in ('public.submissions'::regclass, 'storage.objects'::regclass)"
    )
    expected = await db.fetchval(present)
    await db.execute(bench_sql("drop_triggers"))
    assert await db.fetchval(present) == 0
    with capture_logs() as logs:
        await migrate(db)
    assert await db.fetchval(present) == expected == 8
    assert "migrate.triggers_applied" in [e["event"] for e in logs]


async def test_a_migration_that_meets_a_long_transaction_gives_up_instead_of_stalling_the_app(
    db: asyncpg.Connection, database_url: str
) -> None:
    await db.execute("drop trigger results_realtime_update_v1 on storage.objects")  # to apply
    writer = await _open_writer(database_url)
    try:
        with pytest.raises(MigrationError, match=r"triggers.sql waited 0.2 s for a lock"):
            async with asyncio.timeout(5):
                await migrate(db, lock_timeout_s=0.2)
        await writer.execute("commit")  # the app's transaction went on unharmed
    finally:
        await writer.close()
    await migrate(db)  # and once it ended, migrate goes through
    assert (
        await db.fetchval(
            "select count(*) from pg_trigger where tgname = 'results_realtime_update_v1'"
        )
        == 2
    )


async def test_the_callers_lock_timeout_is_kept(db: asyncpg.Connection) -> None:
    await db.execute("set lock_timeout = '1234ms'")
    await migrate(db)
    assert await db.fetchval("show lock_timeout") == "1234ms"


def test_a_trigger_migrate_could_not_check_is_an_error() -> None:
    unreadable = triggers_sql().replace(
        "after update on public.submissions", "after update or delete on public.submissions"
    )
    with pytest.raises(RuntimeError, match="write every trigger"):
        triggers_defined(unreadable)


def test_migration_files_are_numbered_without_gaps() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(isinstance(m, Migration) and m.sql.strip() for m in found)


async def test_an_upgrade_keeps_the_flag_it_finds(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0011 copies runtime_state's flags for the triggers: a database switched off stays off."""
    admin = await asyncpg.connect(pg_server.dsn or None)
    name = "rr_upgrade_flag"
    await admin.execute(f"drop database if exists {name} with (force)")
    await admin.execute(f"create database {name}")
    conn = await asyncpg.connect(pg_server.database(name))
    before_copy = [m for m in migrations() if m.version < 11]
    try:
        with monkeypatch.context() as patch:
            patch.setattr("daemon.migrate.migrations", lambda: before_copy)
            await migrate(conn)
        await conn.execute("update results_realtime.runtime_state set enabled = false")
        assert (await migrate(conn)).applied[0] == "0011_flags_mirror"
        await conn.execute(
            "insert into public.lessons (id, title) values ('L1', 'L');"
            "insert into public.activities (id, lesson_id, title, kind) values"
            " ('A1', 'L1', 'A', 'text')"
        )
        submit = (
            "insert into public.submissions (activity_id, user_id, body)"
            " values ('A1', gen_random_uuid(), '{\"text\": \"x\"}')"
        )
        await conn.execute(submit)
        outbox = "select count(*) from results_realtime.outbox"
        assert await conn.fetchval(outbox) == 0
        await conn.execute("update results_realtime.runtime_state set enabled = true")
        await conn.execute(submit)
        assert await conn.fetchval(outbox) == 1
    finally:
        await conn.close()
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()


def _as_a_background_job() -> None:
    """A script's `cmd &` starts with SIGINT ignored: Python then installs no Ctrl-C handler."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_an_interrupt_while_connecting_exits_130_at_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A server that accepts TCP and never answers: the connect alone would wait 30 s."""
    async with silent_server() as silent:
        env = cli_env(silent.dsn(), None, RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S="30")
        code, _, err = await interrupt_once_connected(
            [sys.executable, "-m", "daemon", "migrate"],
            env, sig, silent.accepted, cwd=tmp_path, preexec_fn=_as_a_background_job,
        )  # fmt: skip
    assert code == 130
    assert "Traceback" not in err


async def test_a_password_that_needs_percent_encoding_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    for password in ("p@ss", "p#ss/w"):
        dsn = f"postgresql://postgres:{password}@127.0.0.1:5432/rr_nowhere"
        code, out, err = await run_cli(["migrate"], cli_env(dsn, None), tmp_path)
        assert code == 2, err
        assert "contains '@', '#', '/' or '?', which must be percent-encoded" in err
        assert "Name or service not known" not in err
        assert "port 'p'" not in err
        assert "postgresql://postgres:***@127.0.0.1:5432/rr_nowhere" in err
        assert password not in out + err
        assert "Traceback" not in err
