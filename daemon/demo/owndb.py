"""The demo's own database on a server the user named (DATABASE_URL / PG*).

The demo migrates and seeds fake groups and pupils, so it never writes into the database the
URL names (it may be a production one): it creates `results_realtime_demo` beside it on the
same server and drops it at exit, unless --keep. With nothing configured there is nothing to do
here: `demo_stack` starts a throwaway server instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg

from daemon.config import Settings
from daemon.db import connect, dsn_for_database, where
from daemon.errors import DatabaseError
from daemon.localpg import configured_dsn
from daemon.log import get_logger
from daemon.sqlfiles import query

log = get_logger(__name__)

DEMO_DATABASE = "results_realtime_demo"  # also spelled in sql/queries/demo_*_database.sql
_CLAIM_LOCK_KEY = 0x5252_4445_4D4F  # "RRDEMO": one demo at a time in DEMO_DATABASE
_MAINTENANCE_DATABASE = "postgres"
_THROWAWAY = "unset DATABASE_URL and PG* for a throwaway local PostgreSQL"


@contextlib.asynccontextmanager
async def own_database(
    settings: Settings, *, keep: bool, report: Callable[[str], None]
) -> AsyncIterator[Settings]:
    """Settings whose database is the demo's own one on the configured server (created if
    missing; dropped at exit unless `keep`), or `settings` unchanged when none is configured."""
    server = settings.database.url or configured_dsn()
    if server is None:
        yield settings
        return
    timeout_s = settings.database.connect_timeout_s
    created = await _create(server, timeout_s)
    dsn = dsn_for_database(server, DEMO_DATABASE)
    claim = await _claim(dsn, server, timeout_s)
    log.info("demo.database", database=DEMO_DATABASE, server=where(server), created=created)
    report(
        f"demo database: {DEMO_DATABASE} on {where(server)} "
        f"({'created' if created else 'already there, reused'}; "
        f"{'kept at exit (--keep)' if keep else 'dropped at exit; --keep keeps it'}); "
        "the database DATABASE_URL / PG* name is not touched"
    )
    database = settings.database.model_copy(update={"url": dsn})
    try:
        yield settings.model_copy(update={"database": database})
    finally:
        await claim.close(timeout=timeout_s)
        if keep:
            log.info("demo.database_kept", database=DEMO_DATABASE, server=where(server))
            report(
                f"kept the demo database {DEMO_DATABASE} on {where(server)}; "
                f"drop it with: DROP DATABASE {DEMO_DATABASE};"
            )
        else:
            await _drop(server, timeout_s, report)


async def _admin(server: str, timeout_s: float) -> asyncpg.Connection:
    """A connection to the server for CREATE / DROP DATABASE. The database the URL names is
    only connected to (never written); when it does not exist, the maintenance database is."""
    try:
        return await connect(server, connect_timeout=timeout_s, role="demo", purpose="for the demo")
    except DatabaseError as exc:
        if isinstance(exc.__cause__, asyncpg.InvalidCatalogNameError):
            fallback = dsn_for_database(server, _MAINTENANCE_DATABASE)
            return await connect(fallback, connect_timeout=timeout_s, role="demo", purpose="")
        raise DatabaseError(f"{exc} Or {_THROWAWAY}.") from exc.__cause__


async def _create(server: str, timeout_s: float) -> bool:
    """True when this run created the database, False when it was there (a --keep run)."""
    conn = await _admin(server, timeout_s)
    try:
        if await conn.fetchval(query("demo_database_exists"), DEMO_DATABASE):
            return False
        try:
            await conn.execute(query("demo_create_database"))
        except asyncpg.DuplicateDatabaseError:
            return False  # another demo created it in the meantime
        except asyncpg.PostgresError as exc:
            raise DatabaseError(
                f"the demo cannot create its own database {DEMO_DATABASE} on {where(server)}: "
                f"{exc}. It never seeds the database DATABASE_URL / PG* name; let this role "
                "create databases (CREATEDB), point DATABASE_URL at a server where it may, "
                f"or {_THROWAWAY}."
            ) from exc
        return True
    finally:
        await conn.close(timeout=timeout_s)


async def _claim(dsn: str, server: str, timeout_s: float) -> asyncpg.Connection:
    """A session holding the demo database for this run. A second demo on the same server would
    otherwise seed the same school again, and the first one's exit would pull the database out
    from under it."""
    conn = await connect(dsn, connect_timeout=timeout_s, role="demo", purpose="for the demo")
    try:
        claimed = await conn.fetchval(query("demo_claim_database"), _CLAIM_LOCK_KEY)
    except BaseException:
        conn.terminate()
        raise
    if not claimed:
        await conn.close(timeout=timeout_s)
        raise DatabaseError(
            f"another demo is running on {where(server)}: it uses the demo database "
            f"{DEMO_DATABASE}, and two demos cannot share it. Stop the other demo first, "
            f"or {_THROWAWAY}."
        )
    return conn


async def _drop(server: str, timeout_s: float, report: Callable[[str], None]) -> None:
    """Drop the demo's database; a failure is reported with the way to do it by hand."""
    try:
        conn = await _admin(server, timeout_s)
        try:
            await conn.execute(query("demo_drop_database"))
        finally:
            await conn.close(timeout=timeout_s)
    except (DatabaseError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
        log.warning("demo.database_not_dropped", database=DEMO_DATABASE, reason=str(exc))
        report(
            f"could not drop the demo database {DEMO_DATABASE} on {where(server)} ({exc}); "
            f"drop it with: DROP DATABASE {DEMO_DATABASE};"
        )
        return
    log.info("demo.database_dropped", database=DEMO_DATABASE, server=where(server))
    report(f"dropped the demo database {DEMO_DATABASE}")
