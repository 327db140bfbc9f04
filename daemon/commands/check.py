"""`results-realtime check`: is everything the daemon needs in place?"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from daemon.config import Settings, load_settings, redact_dsn, redacted
from daemon.db import connect
from daemon.errors import DatabaseError, PublishError, describe
from daemon.log import configure_logging
from daemon.pipeline.credentials import ServiceRoleCredential
from daemon.pipeline.listener import Listener
from daemon.pipeline.metrics import Metrics
from daemon.pipeline.publisher import BROADCAST_PATH
from daemon.pipeline.store import NOTIFY_CHANNEL
from daemon.sqlfiles import migrations, query

HELP = "validate the configuration, the database, LISTEN and Realtime, then exit"
DESCRIPTION = """\
Checks, in order, and stops at the first failure:
  1. the configuration (config.toml + environment) is valid, and a Realtime credential is set
     (SUPABASE_SERVICE_ROLE_KEY, or SUPABASE_JWT_SECRET for local development);
  2. PostgreSQL answers at DATABASE_URL;
  3. every migration is applied (else: run `results-realtime migrate`);
  4. LISTEN works: a NOTIFY sent on the connection comes back (it does not behind a
     transaction-mode pooler);
  5. Realtime is reachable and accepts the key: an empty batch is POSTed to
     {SUPABASE_URL}/realtime/v1/api/broadcast, which broadcasts nothing. 202, or a validation
     error (400/422), means reachable and authenticated; 401/403 mean the key is refused.
The effective configuration is printed first, secrets redacted.

Exit codes: 0 all good, 2 configuration, 3 database (unreachable, not migrated, no LISTEN),
4 Realtime (unreachable or key refused).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="overrides DATABASE_URL / database.url")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(level="warning")
    print_config(redacted(settings))
    credential = ServiceRoleCredential(settings.realtime)
    dsn = args.database_url or settings.database.url
    asyncio.run(_check(settings, dsn, credential))
    print("all checks passed")
    return 0


def print_config(config: dict[str, dict[str, Any]]) -> None:
    print("effective configuration (secrets redacted):")
    for section, values in config.items():
        print(f"  [{section}]")
        for key, value in values.items():
            print(f"    {key} = {value!r}")


def ok(what: str, detail: str) -> None:
    print(f"ok    {what:<11} {detail}")


async def _check(settings: Settings, dsn: str | None, credential: ServiceRoleCredential) -> None:
    where = redact_dsn(dsn) if dsn else "the server named by PG* variables"
    conn = await connect(dsn, connect_timeout=settings.database.connect_timeout_s, role="check")
    try:
        version = await conn.fetchval(query("runtime_server_version"))
        ok("database", f"{where} (PostgreSQL {version})")
        await _check_migrations(conn)
        enabled = await conn.fetchval(query("runtime_db_flag"))
    finally:
        await conn.close()
    await _check_listen(settings, dsn)
    flag = "on" if settings.realtime.enabled else "off"
    ok(
        "flag",
        f"realtime.enabled is {flag} (the database has it {'on' if enabled else 'off'} "
        "until the daemon starts and mirrors it)",
    )
    await _check_realtime(settings, credential)


async def _check_migrations(conn: Any) -> None:
    expected = migrations()
    if not await conn.fetchval(query("runtime_migrations_table_exists")):
        raise DatabaseError(
            "the database has none of our migrations: run `results-realtime migrate`"
        )
    applied = {r["version"] for r in await conn.fetch(query("runtime_applied_migrations"))}
    missing = [f"{m.version:04d}_{m.name}" for m in expected if m.version not in applied]
    if missing:
        raise DatabaseError(
            f"migrations not applied: {', '.join(missing)}; run `results-realtime migrate`"
        )
    ok("migrations", f"{len(expected)} applied")


async def _check_listen(settings: Settings, dsn: str | None) -> None:
    listener = Listener(
        dsn,
        NOTIFY_CHANNEL,
        settings.daemon,
        metrics=Metrics(),
        connect_timeout_s=settings.database.connect_timeout_s,
        on_catch_up=lambda: None,
    )
    started = time.monotonic()
    try:
        await listener.start()
    finally:
        await listener.close()
    ok("listen", f"NOTIFY round trip in {(time.monotonic() - started) * 1000:.0f} ms")


async def _check_realtime(settings: Settings, credential: ServiceRoleCredential) -> None:
    url = settings.realtime.url.rstrip("/") + BROADCAST_PATH
    token = credential.token()
    headers = {"apikey": token, "Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=settings.publish.request_timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json={"messages": []}, headers=headers) as response,
        ):
            status = response.status
            body = (await response.text(errors="replace"))[:300]
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PublishError(
            f"Realtime is not reachable at {url} ({describe(exc)}). Check SUPABASE_URL "
            "(realtime.url); for local development start `results-realtime hub`."
        ) from exc
    which = "minted from SUPABASE_JWT_SECRET" if credential.minted else "SUPABASE_SERVICE_ROLE_KEY"
    if 200 <= status < 300 or status in (400, 422):
        ok("realtime", f"{url} answered {status}: reachable, key accepted ({which})")
        return
    if status == 429:
        ok("realtime", f"{url} answered 429: reachable, key accepted, but rate-limited now")
        return
    if status in (401, 403):
        raise PublishError(
            f"Realtime at {url} refused the key ({status} {body!r}): check "
            f"{'SUPABASE_JWT_SECRET' if credential.minted else 'SUPABASE_SERVICE_ROLE_KEY'} "
            "(it must be the project's service_role key)",
            status=status,
            body=body,
        )
    if status == 404:
        raise PublishError(
            f"no broadcast endpoint at {url} (404): SUPABASE_URL must be the project URL, "
            "e.g. https://<ref>.supabase.co, without /realtime/v1",
            status=status,
            body=body,
        )
    raise PublishError(f"Realtime at {url} answered {status}: {body!r}", status=status, body=body)
