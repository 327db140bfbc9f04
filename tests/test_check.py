"""`results-realtime check` as a subprocess: the happy path and every documented failure."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from daemon.config import redact_dsn
from daemon.localpg import free_port
from tests.fixtures.db import PgServer
from tests.fixtures.hub import RunningHub
from tests.support.capture_server import CaptureServer
from tests.support.daemon import SERVICE_KEY
from tests.support.no_ssl_server import no_ssl_server
from tests.support.process import cli_env, run_cli
from tests.support.silent_server import silent_server
from tests.support.tcp_proxy import TcpProxy


async def test_happy_path_prints_redacted_config_and_passes(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    code, out, err = await run_cli(["check"], cli_env(database_url, capture_server.url), tmp_path)
    assert code == 0, err
    assert "all checks passed" in out
    for line in ("ok    database", "ok    migrations", "ok    listen", "ok    realtime"):
        assert line in out
    assert "service_role_key = '***'" in out
    assert SERVICE_KEY not in out
    # the probe POST broadcast nothing: an empty batch, answered with a validation error
    assert capture_server.accepted == []
    assert capture_server.requests[0].body == {"messages": []}
    assert capture_server.requests[0].headers["Authorization"] == f"Bearer {SERVICE_KEY}"


async def test_against_the_local_hub_with_only_the_jwt_secret(
    hub: RunningHub, tmp_path: Path
) -> None:
    env = cli_env(hub.database_url, None, SUPABASE_URL=hub.url, SUPABASE_JWT_SECRET=hub.jwt_secret)
    code, out, err = await run_cli(["check"], env, tmp_path)
    assert code == 0, err
    assert "minted from SUPABASE_JWT_SECRET" in out
    assert "jwt_secret = '***'" in out
    assert hub.jwt_secret not in out


async def test_unreachable_database_exits_3(capture_server: CaptureServer, tmp_path: Path) -> None:
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nowhere"
    code, out, err = await run_cli(["check"], cli_env(dsn, capture_server.url), tmp_path)
    assert code == 3
    assert "cannot connect to PostgreSQL" in err
    assert "hunter2" not in out + err


async def test_unmigrated_database_exits_3_and_says_migrate(
    pg_server: PgServer, capture_server: CaptureServer, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(pg_server.dsn or None)
    name = "rr_check_unmigrated"
    try:
        await admin.execute(f"drop database if exists {name}")
        await admin.execute(f"create database {name}")
        env = cli_env(pg_server.database(name), capture_server.url)
        code, _, err = await run_cli(["check"], env, tmp_path)
    finally:
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()
    assert code == 3
    assert "results-realtime migrate" in err


async def test_triggers_of_another_version_exit_3_until_migrate_applies_these(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    await db.execute(
        "update results_realtime.repeatable_files set checksum = 'older'"
        " where name = 'triggers.sql'"
    )
    env = cli_env(database_url, capture_server.url)
    code, out, err = await run_cli(["check"], env, tmp_path)
    assert code == 3, out
    assert "ok    migrations" in out
    assert "the realtime triggers are not the ones this version ships" in err
    assert "run `results-realtime migrate`" in err

    code, _, err = await run_cli(["migrate"], env, tmp_path)
    assert code == 0, err
    code, out, err = await run_cli(["check"], env, tmp_path)
    assert code == 0, err
    assert "ok    triggers" in out


async def test_listen_unsupported_exits_3(
    pg_proxy: TcpProxy, capture_server: CaptureServer, tmp_path: Path
) -> None:
    pg_proxy.drop_notifications = True  # what a transaction-mode pooler looks like
    code, _, err = await run_cli(["check"], cli_env(pg_proxy.dsn(), capture_server.url), tmp_path)
    assert code == 3
    assert "transaction-mode pooler" in err
    assert pg_proxy.notifications_dropped >= 1


async def test_refused_key_exits_4(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    capture_server.token = "the-projects-real-key"
    code, _, err = await run_cli(["check"], cli_env(database_url, capture_server.url), tmp_path)
    assert code == 4
    assert "refused the key" in err
    assert "SUPABASE_SERVICE_ROLE_KEY" in err


async def test_wrong_url_exits_4(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    env = cli_env(database_url, capture_server.url + "/realtime/v1")
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 4
    assert "no broadcast endpoint" in err


async def test_unreachable_realtime_exits_4(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url, f"http://127.0.0.1:{free_port()}")
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 4
    assert "not reachable" in err
    assert "ClientConnectorError: Cannot connect to host 127.0.0.1" in err
    assert "ConnectionKey(" not in err  # the class and its text, not a nested repr


async def test_missing_credentials_exit_2_naming_both(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url, None, SUPABASE_URL="http://127.0.0.1:9")
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 2
    assert "SUPABASE_SERVICE_ROLE_KEY" in err
    assert "SUPABASE_JWT_SECRET" in err


async def test_invalid_config_exits_2_naming_the_key(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url, None, RESULTS_REALTIME_PUBLISH_MAX_MESSAGES_PER_SECOND="fast")
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 2
    assert "publish.max_messages_per_second" in err


async def test_a_query_password_is_redacted_everywhere(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    dsn = f"{database_url}?password=hunter2q"  # the test server trusts; the password is unused
    code, out, err = await run_cli(["check"], cli_env(dsn, capture_server.url), tmp_path)
    assert code == 0, err
    assert "hunter2q" not in out + err
    assert "password=***" in out
    assert "ok    database    postgresql://" in out


async def test_a_keyword_dsn_is_refused_as_configuration_without_echoing_it(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    dsn = "host=127.0.0.1 port=5432 dbname=x user=postgres password=hunter2kv"
    code, out, err = await run_cli(["check"], cli_env(dsn, capture_server.url), tmp_path)
    assert code == 2
    assert "keyword/value string (host=... dbname=...) is not supported" in err
    assert "postgresql://user:password@host:5432/dbname" in err  # the form it expects
    assert "hunter2kv" not in out + err


async def test_an_out_of_range_port_is_a_configuration_error(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    dsn = "postgresql://postgres@127.0.0.1:99999/x"
    for args in (["check"], ["check", "--database-url", dsn]):
        code, _, err = await run_cli(args, cli_env(dsn, capture_server.url), tmp_path)
        assert code == 2, err
        assert "port '99999' is not a number from 1 to 65535" in err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["run"],
        ["check"],
        ["hub"],
        ["watch", "--group", "g", "--lesson", "l", "--teacher", str(uuid.UUID(int=1))],
    ],
    ids=lambda command: command[0],
)
async def test_every_command_validates_its_database_url_option_before_connecting(
    command: list[str], tmp_path: Path
) -> None:
    env = cli_env(None, "http://127.0.0.1:9", SUPABASE_JWT_SECRET="s" * 40)
    bad = "host=db dbname=app password=hunter2opt"
    code, out, err = await run_cli([*command, "--database-url", bad], env, tmp_path)
    assert code == 2, err
    assert "database.url (from --database-url): a libpq keyword/value string" in err
    assert "hunter2opt" not in out + err


async def test_a_realtime_url_that_is_no_url_is_a_configuration_error(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url, "ftp://example.com")
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 2
    assert "realtime.url (from environment variable SUPABASE_URL)" in err


async def test_a_directory_as_config_is_a_configuration_error(tmp_path: Path) -> None:
    code, _, err = await run_cli(
        ["check", "--config", str(tmp_path)], cli_env(None, None), tmp_path
    )
    assert code == 2
    assert "is a directory" in err
    assert "Traceback" not in err


async def test_a_secret_in_the_config_file_is_refused_and_not_sent(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[realtime]\nservice_role_key = "eyJsecretinfile"\n')
    env = cli_env(database_url, None, SUPABASE_URL=capture_server.url)
    code, out, err = await run_cli(["check", "--config", str(config)], env, tmp_path)
    assert code == 2
    assert "set environment variable SUPABASE_SERVICE_ROLE_KEY instead" in err
    assert "eyJsecretinfile" not in out + err
    assert capture_server.requests == []


async def test_an_unknown_variable_is_a_configuration_error(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url, None, RESULTS_REALTIME_DAEMON_BATCHSIZE="5")
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 2
    assert "did you mean RESULTS_REALTIME_DAEMON_BATCH_SIZE?" in err


async def test_a_connect_timeout_says_so(capture_server: CaptureServer, tmp_path: Path) -> None:
    async with silent_server() as silent:
        env = cli_env(
            silent.dsn("hunter2"),
            capture_server.url,
            RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S="0.5",
        )
        code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 3
    assert "timed out after 0.5 s (database.connect_timeout_s)" in err
    assert ": ." not in err
    assert "hunter2" not in err


async def test_an_unknown_database_advises_creating_it(
    pg_server: PgServer, capture_server: CaptureServer, tmp_path: Path
) -> None:
    env = cli_env(pg_server.database("rr_no_such_database"), capture_server.url)
    code, _, err = await run_cli(["check"], env, tmp_path)
    assert code == 3
    assert 'database "rr_no_such_database" does not exist' in err
    assert "Create that database, or fix the database name" in err
    assert "reachable server" not in err


async def test_the_database_flag_off_is_a_warning_not_ok(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    """After `RESULTS_REALTIME_ENABLED=false run`, the triggers record nothing: say so."""
    await db.execute("update results_realtime.runtime_state set enabled = false")
    code, out, err = await run_cli(["check"], cli_env(database_url, capture_server.url), tmp_path)
    assert code == 0, err  # a warning does not fail the check
    assert "warn  flag        realtime.enabled is on, but the database's flag is off" in out
    assert "ok    flag" not in out
    assert "all checks passed (1 warning)" in out


async def test_the_flag_on_in_both_places_is_ok(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    code, out, _ = await run_cli(["check"], cli_env(database_url, capture_server.url), tmp_path)
    assert code == 0
    assert "ok    flag        realtime.enabled is on, and the triggers are recording" in out
    assert "warn" not in out


async def test_app_tables_anybody_may_write_without_rls_are_a_warning(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    """What migrate created on Supabase projects before 0002 turned RLS on, with Supabase's
    default grants: group_members writable with the anon key."""
    await db.execute(
        "alter table public.group_members disable row level security;"
        "grant insert on public.group_members to anon"
    )
    code, out, err = await run_cli(["check"], cli_env(database_url, capture_server.url), tmp_path)
    assert code == 0, err
    assert "warn  app tables  public.group_members: row level security is off" in out
    assert "all checks passed (1 warning)" in out


async def test_a_short_jwt_secret_gives_one_clear_message(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(
        database_url, None, SUPABASE_URL="http://127.0.0.1:9", SUPABASE_JWT_SECRET="short"
    )
    code, out, err = await run_cli(["check"], env, tmp_path)
    assert code == 2
    assert "SUPABASE_JWT_SECRET is 5 characters long; a JWT secret has at least 32" in err
    assert "Warning" not in out + err  # no raw InsecureKeyLengthWarning
    assert "service_role key)" not in err


async def test_says_which_config_file_it_read(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    config = tmp_path / "mine.toml"
    config.write_text("[daemon]\nbatch_size = 7\n")
    env = cli_env(database_url, capture_server.url)
    code, out, _ = await run_cli(["check", "--config", str(config)], env, tmp_path)
    assert code == 0
    assert f"ok    config      {config.resolve()} (--config)" in out
    code, out, _ = await run_cli(["check"], env, tmp_path)  # no ./config.toml there
    assert "ok    config      no config file" in out


async def test_a_bad_option_prints_the_subcommands_usage(tmp_path: Path) -> None:
    code, _, err = await run_cli(["check", "--bogus"], cli_env(None, None), tmp_path)
    assert code == 2
    assert "usage: results-realtime check" in err
    assert "unrecognized arguments: --bogus" in err


async def test_the_database_url_option_is_the_url_shown_with_its_source(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    config = tmp_path / "m.toml"
    config.write_text('[database]\nurl = "postgresql://postgres@127.0.0.1:5432/rr_not_this_one"\n')
    used = database_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2o@")
    env = cli_env(None, capture_server.url)
    args = ["check", "--config", str(config), "--database-url", used]
    code, out, err = await run_cli(args, env, tmp_path)
    assert code == 0, err
    assert f"    url = {redact_dsn(used)!r}  (from --database-url)" in out
    assert "rr_not_this_one" not in out
    assert f"ok    config      {config.resolve()} (--config), overridden by the environment " in out
    assert "and by --database-url" in out
    assert "hunter2o" not in out + err


async def test_sslmode_require_against_a_server_without_ssl_says_so(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    async with no_ssl_server() as port:
        dsn = f"postgresql://postgres:hunter2@127.0.0.1:{port}/app?sslmode=require"
        code, _, err = await run_cli(["check"], cli_env(dsn, capture_server.url), tmp_path)
    assert code == 3, err
    assert "the server does not accept SSL, and sslmode requires it" in err
    assert "use sslmode=prefer or sslmode=disable" in err
    assert "hunter2" not in err


async def test_a_port_that_is_not_postgresql_is_blamed_on_the_address(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    """An HTTP server answers the SSL request with text; asyncpg calls that a rejected upgrade."""
    dsn = f"postgresql://postgres@127.0.0.1:{urlsplit(capture_server.url).port}/app"
    code, _, err = await run_cli(["check"], cli_env(dsn, capture_server.url), tmp_path)
    assert code == 3, err
    assert "did not answer like PostgreSQL: check the host and port" in err
    assert "sslmode" not in err.split("rejected SSL upgrade", 1)[-1]


async def test_with_pg_variables_it_names_the_server_it_reached(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    parts = urlsplit(database_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    user, database = parts.username or "postgres", parts.path.lstrip("/")
    pg = {"PGHOST": host, "PGPORT": str(port), "PGUSER": user, "PGDATABASE": database}
    if parts.password:
        pg["PGPASSWORD"] = parts.password
    code, out, err = await run_cli(["check"], cli_env(None, capture_server.url, **pg), tmp_path)
    assert code == 0, err
    assert f"ok    database    {user}@{host}:{port}/{database} (from PG* variables)" in out
    assert "(or localhost:5432)" not in out


@pytest.mark.parametrize(
    "secrets",
    [{}, {"SUPABASE_JWT_SECRET": "short"}],
    ids=["no credential", "a short jwt secret"],
)
async def test_with_realtime_off_the_realtime_check_is_skipped_as_run_needs_no_credential(
    database_url: str, tmp_path: Path, secrets: dict[str, str]
) -> None:
    """`RESULTS_REALTIME_ENABLED=false run` starts without a Realtime credential: check too."""
    env = cli_env(
        database_url,
        None,
        SUPABASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing there: no request is made
        RESULTS_REALTIME_ENABLED="false",
        **secrets,
    )
    code, out, err = await run_cli(["check"], env, tmp_path)
    assert code == 0, err
    assert "skip  realtime    realtime.enabled is off: `run` publishes nothing" in out
    assert "ok    realtime" not in out
    assert "all checks passed" in out
    assert "Realtime credential" not in err


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            {"RESULTS_REALTIME_DAEMON_SHUTDOWN_TIMEOUT_S": "inf"},
            "daemon.shutdown_timeout_s (from environment variable "
            "RESULTS_REALTIME_DAEMON_SHUTDOWN_TIMEOUT_S): expected a finite number",
        ),
        (
            {"SUPABASE_URL": "http://127.0.0.1:54400?x=1"},
            "realtime.url (from environment variable SUPABASE_URL): it has a query string",
        ),
        ({"config": "[daemon]\nhealth_port = true\n"}, "expected an integer, not a boolean"),
    ],
    ids=["inf", "url query", "toml boolean"],
)
async def test_a_value_validation_used_to_let_through_is_a_configuration_error(
    capture_server: CaptureServer, tmp_path: Path, setting: dict[str, str], expected: str
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"  # never reached
    config = tmp_path / "c.toml"
    config.write_text(setting.get("config", ""))
    env = cli_env(dsn, capture_server.url, **{k: v for k, v in setting.items() if k != "config"})
    code, _, err = await run_cli(["check", "--config", str(config)], env, tmp_path)
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
    assert capture_server.requests == []
