"""`results-realtime check`: is everything the daemon needs in place?"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from daemon.commands.args import add_setting_option, setting_options_given, settings_for
from daemon.config import CONFIG_ENV, Settings, config_path, redacted
from daemon.db import connect, reached, where
from daemon.errors import PublishError, describe
from daemon.log import configure_logging
from daemon.pipeline.credentials import ServiceRoleCredential
from daemon.pipeline.listener import Listener
from daemon.pipeline.metrics import Metrics
from daemon.pipeline.publisher import BROADCAST_PATH
from daemon.pipeline.store import NOTIFY_CHANNEL
from daemon.schema import require_migrated, require_triggers
from daemon.signals import run_interruptibly
from daemon.sqlfiles import query

HELP = "validate the configuration, the database, LISTEN and Realtime, then exit"
DESCRIPTION = """\
Checks, in order, and stops at the first failure:
  1. the configuration (config.toml + environment) is valid, and a Realtime credential is set
     (SUPABASE_SERVICE_ROLE_KEY, or SUPABASE_JWT_SECRET for local development); with
     realtime.enabled off, `run` publishes nothing, so neither it nor Realtime is checked;
  2. PostgreSQL answers at DATABASE_URL;
  3. every migration is applied (else: run `results-realtime migrate`);
  4. LISTEN works: a NOTIFY sent on the connection comes back (it does not behind a
     transaction-mode pooler);
  5. Realtime is reachable and accepts the key: an empty batch is POSTed to
     {SUPABASE_URL}/realtime/v1/api/broadcast, which broadcasts nothing. 202, or a validation
     error (400/422), means reachable and authenticated; 401/403 mean the key is refused.
The effective configuration is printed first, secrets redacted, with the config file it was
read from; --database-url, when given, is the database.url shown (and used). A "warn" line
(e.g. the database's realtime flag is off, so the triggers record nothing until `run` starts)
does not fail the check.

Exit codes: 0 all good (warnings included), 1 unexpected error, 2 configuration, 3 database
(unreachable, not migrated, no LISTEN), 4 Realtime (unreachable or key refused), 130 interrupted.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_option(
        parser,
        "--database-url",
        ("database", "url"),
        help="overrides DATABASE_URL / database.url",
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    configure_logging(level="warning")
    options = {key: override.option for key, override in setting_options_given(args).items()}
    print_config(redacted(settings), options)
    dsn = settings.database.url
    # what `run` requires: a credential only while realtime.enabled is on
    credential = ServiceRoleCredential(settings.realtime) if settings.realtime.enabled else None
    ok("config", config_source(args.config, sorted(options.values())))
    warnings = run_interruptibly(_check(settings, dsn, credential))
    print(
        f"all checks passed ({warnings} warning{'s' if warnings != 1 else ''})"
        if warnings
        else "all checks passed"
    )
    return 0


def config_source(given: Path | None, options: list[str] | None = None) -> str:
    """Which file the settings came from, and why that one; and what overrides it."""
    by = ", ".join(options or [])
    path = config_path(given)
    if path is None:
        tail = f", overridden by {by}" if by else ""
        return f"no config file (none given, no ./config.toml): defaults and environment{tail}"
    if given:
        why = "--config"
    elif os.environ.get(CONFIG_ENV):
        why = f"${CONFIG_ENV}"
    else:
        why = "found in the working directory"
    return f"{path.resolve()} ({why}), overridden by the environment" + (
        f" and by {by}" if by else ""
    )


def print_config(
    config: dict[str, dict[str, Any]], options: dict[tuple[str, str], str] | None = None
) -> None:
    """Every key's value; one a command-line option set says so (it beats file and env)."""
    options = options or {}
    print("effective configuration (secrets redacted):")
    for section, values in config.items():
        print(f"  [{section}]")
        for key, value in values.items():
            option = options.get((section, key))
            print(f"    {key} = {value!r}" + (f"  (from {option})" if option else ""))


def ok(what: str, detail: str) -> None:
    print(f"ok    {what:<11} {detail}")


def warn(what: str, detail: str) -> None:
    print(f"warn  {what:<11} {detail}")


def skip(what: str, detail: str) -> None:
    print(f"skip  {what:<11} {detail}")


async def _check(
    settings: Settings, dsn: str | None, credential: ServiceRoleCredential | None
) -> int:
    """Raises at the first failure; returns the number of warnings."""
    conn = await connect(dsn, connect_timeout=settings.database.connect_timeout_s, role="check")
    try:
        version = await conn.fetchval(query("runtime_server_version"))
        if dsn:
            ok("database", f"{where(dsn)} (PostgreSQL {version})")
        else:  # say where the PG* variables and libpq's defaults actually led
            row = await conn.fetchrow(query("runtime_server_identity"))
            assert row is not None  # a SELECT without FROM returns one row
            there = reached(row["role_name"], row["database_name"], row["host"], row["port"])
            ok("database", f"{there} (PostgreSQL {version})")
        ok("migrations", f"{await require_migrated(conn)} applied")
        ok("triggers", f"{await require_triggers(conn)} in place, as this version ships them")
        recording = bool(await conn.fetchval(query("runtime_db_flag")))
        writable = [
            r["relname"]
            for r in await conn.fetch(query("runtime_writable_reference_tables"), _APP_TABLES)
        ]
    finally:
        await conn.close()
    await _check_listen(settings, dsn)
    warnings = 0 if check_flag(settings.realtime.enabled, recording) else 1
    warnings += 0 if check_app_tables(writable) else 1
    await _check_realtime(settings, credential)
    return warnings


def check_flag(enabled: bool, recording: bool) -> bool:
    """The setting against the database's copy, which the triggers obey (`run` mirrors it)."""
    if enabled and recording:
        ok("flag", "realtime.enabled is on, and the triggers are recording changes")
    elif not enabled and not recording:
        ok("flag", "realtime.enabled is off, and the triggers record nothing (clients poll)")
    elif enabled:
        warn(
            "flag",
            "realtime.enabled is on, but the database's flag is off: the triggers record "
            "nothing, so changes made now are never published, until `results-realtime run` "
            "starts and switches it on",
        )
    else:
        warn(
            "flag",
            "realtime.enabled is off, but the database's flag is on: the triggers still record "
            "changes (kept in the outbox) until `results-realtime run` starts and switches it off",
        )
    return enabled == recording


# The app's tables that results_realtime's SECURITY DEFINER functions read to authorize.
_APP_TABLES = ["groups", "lessons", "activities", "group_members", "assignments", "submissions"]


def check_app_tables(writable: list[str]) -> bool:
    """Tables anybody with the anon key may write make the channels' authorization worthless."""
    if not writable:
        ok("app tables", "none that the authorization reads is writable by anon / authenticated")
        return True
    names = ", ".join(f"public.{name}" for name in writable)
    warn(
        "app tables",
        f"{names}: row level security is off and anon / authenticated may write them, so "
        "anybody with the anon key could make themselves a teacher of any group; enable row "
        "level security on them (with the app's own policies) or revoke those privileges",
    )
    return False


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


async def _check_realtime(settings: Settings, credential: ServiceRoleCredential | None) -> None:
    if credential is None:  # realtime.enabled is off
        skip(
            "realtime",
            "realtime.enabled is off: `run` publishes nothing, so neither Realtime nor a "
            "credential (SUPABASE_SERVICE_ROLE_KEY, SUPABASE_JWT_SECRET) is needed",
        )
        return
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
            + (
                "SUPABASE_JWT_SECRET (it must be the secret Realtime verifies tokens with: the "
                "project's JWT secret, or the one `results-realtime hub` was started with)"
                if credential.minted
                else "SUPABASE_SERVICE_ROLE_KEY (it must be the project's service_role key)"
            ),
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
