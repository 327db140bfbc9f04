"""`results-realtime demo` with DATABASE_URL or PG* set: it uses that server, but a database of
its own (results_realtime_demo), never the one they name, which may be a production one."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daemon.demo.owndb import DEMO_DATABASE
from daemon.sqlfiles import query
from tests.fixtures.db import PgServer
from tests.support.process import CliProcess, cli_env, run_cli
from tests.support.waiting import eventually

FAST = ["--plain", "--no-simulate", "--web-port", "0", "--hub-port", "0"]


@pytest.fixture
async def admin(pg_server: PgServer) -> AsyncIterator[asyncpg.Connection]:
    """The test server, with no demo database before or after the test."""
    conn = await asyncpg.connect(pg_server.dsn or None)
    drop = f"drop database if exists {DEMO_DATABASE} with (force)"
    await conn.execute(drop)
    yield conn
    await conn.execute(drop)
    await conn.close()


async def _demo_database_exists(admin: asyncpg.Connection) -> bool:
    return bool(await admin.fetchval(query("demo_database_exists"), DEMO_DATABASE))


async def _groups(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from public.groups"))
    finally:
        await conn.close()


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def _watch_command(lines: list[str]) -> str | None:
    return next((line for line in lines if " watch --group grp-7a " in line), None)


def test_the_sql_names_the_database_the_code_does() -> None:
    assert query("demo_create_database").strip().endswith(f"create database {DEMO_DATABASE}")
    assert query("demo_drop_database").strip().endswith(f"drop database if exists {DEMO_DATABASE}")


async def test_the_configured_database_is_never_seeded_and_its_own_is_dropped(
    tmp_path: Path, database_url: str, admin: asyncpg.Connection
) -> None:
    code, out, err = await run_cli(
        ["demo", *FAST, "--duration", "1", "--ready-json"], cli_env(database_url, None), tmp_path
    )
    assert code == 0, err[-2000:]
    events = _events(out)
    ready = next(e for e in events if e.get("event") == "demo.ready" and "databaseUrl" in e)
    assert ready["databaseUrl"].endswith(f"/{DEMO_DATABASE}")
    assert ready["databaseUrl"].rpartition("/")[0] == database_url.rpartition("/")[0]
    assert await _groups(database_url) == 0  # the named database got no fake school
    assert next(e for e in events if e["event"] == "demo.database")["created"] is True
    assert any(e["event"] == "demo.database_dropped" for e in events)
    assert not await _demo_database_exists(admin)
    assert f"dropped the demo database {DEMO_DATABASE}" in out


async def test_keep_leaves_the_demo_database_and_says_how_to_drop_it(
    tmp_path: Path, database_url: str, admin: asyncpg.Connection
) -> None:
    code, out, err = await run_cli(
        ["demo", *FAST, "--duration", "1", "--keep"], cli_env(database_url, None), tmp_path
    )
    assert code == 0, err[-2000:]
    assert await _demo_database_exists(admin)
    own = urlunsplit(urlsplit(database_url)._replace(path=f"/{DEMO_DATABASE}"))
    assert await _groups(own) == 2  # the seeded school is there
    assert await _groups(database_url) == 0
    assert f"drop it with: DROP DATABASE {DEMO_DATABASE};" in out


async def test_a_second_demo_on_the_same_server_refuses_and_leaves_the_first_alone(
    tmp_path: Path, database_url: str, admin: asyncpg.Connection
) -> None:
    env = cli_env(database_url, None)
    async with await CliProcess.start(["demo", *FAST, "--ready-json"], env, tmp_path) as first:
        await first.wait_event("demo.ready", deadline_s=60)
        code, out, err = await run_cli(["demo", *FAST, "--duration", "1"], env, tmp_path)
        assert code == 3, err[-2000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"another demo is running on {database_url}" in lines[0]
        assert "Stop the other demo first" in lines[0]
        assert "demo.database_dropped" not in out
        own = urlunsplit(urlsplit(database_url)._replace(path=f"/{DEMO_DATABASE}"))
        assert await _groups(own) == 2  # the first demo's database is still there, seeded once
        first.signal(signal.SIGTERM)
        await first.wait(deadline_s=30)
    assert not await _demo_database_exists(admin)  # dropped by the first demo at its exit


async def test_a_role_that_may_not_create_databases_is_told_what_to_do(
    tmp_path: Path, database_url: str, admin: asyncpg.Connection
) -> None:
    role = f"rr_demo_nocreatedb_{os.getpid()}"
    await admin.execute(f"drop role if exists {role}")
    await admin.execute(f"create role {role} login nocreatedb")
    try:
        url = urlsplit(database_url)
        as_role = urlunsplit(url._replace(netloc=f"{role}@{url.hostname}:{url.port}"))
        code, _, err = await run_cli(["demo", *FAST], cli_env(as_role, None), tmp_path)
    finally:
        await admin.execute(f"drop role if exists {role}")
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"cannot create its own database {DEMO_DATABASE}" in lines[0]
    assert "permission denied to create database" in lines[0]
    assert "CREATEDB" in lines[0]
    assert "unset DATABASE_URL and PG* for a throwaway local PostgreSQL" in lines[0]
    assert await _groups(database_url) == 0
    assert not await _demo_database_exists(admin)


async def test_with_pg_variables_the_watch_command_names_the_demo_database(
    tmp_path: Path, pg_server: PgServer, admin: asyncpg.Connection
) -> None:
    """The printed `watch` command is one line, with the DSN the demo uses and a token file."""
    if pg_server.dsn:
        url = urlsplit(pg_server.dsn)
        pg = {"PGHOST": url.hostname or "", "PGPORT": str(url.port or 5432)}
        pg["PGUSER"] = url.username or ""
    else:
        pg = {k: v for k, v in os.environ.items() if k.startswith("PG")}
    env = cli_env(None, None, **pg)
    async with await CliProcess.start(["demo", *FAST, "--ready-json"], env, tmp_path) as demo:
        ready = await demo.wait_event("demo.ready", deadline_s=60)
        assert ready["databaseUrl"] == f"postgresql:///{DEMO_DATABASE}"
        await eventually(lambda: _watch_command(demo.text) is not None, what="the watch command")
        command = _watch_command(demo.text)
        assert command is not None
        assert "DATABASE_URL=" not in command
        assert command.startswith('RESULTS_REALTIME_TEACHER_TOKEN="$(cat ')
        assert command.endswith(f"--database-url postgresql:///{DEMO_DATABASE}")
        assert f"--url {ready['hubUrl']}" in command
        token_file = Path(command.split("$(cat ", 1)[1].split(")", 1)[0])
        group = next(g for g in ready["groups"] if g["id"] == "grp-7a")
        assert _read(token_file) == group["teacherToken"]
        assert await _demo_database_exists(admin)
        demo.signal(signal.SIGINT)
        assert await demo.wait(deadline_s=30) == 0
    assert not await _demo_database_exists(admin)
