"""`results-realtime check` as a subprocess: the happy path and every documented failure."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from daemon.localpg import free_port
from tests.fixtures.db import PgServer
from tests.fixtures.hub import RunningHub
from tests.support.capture_server import CaptureServer
from tests.support.daemon import SERVICE_KEY
from tests.support.process import cli_env, run_cli
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
