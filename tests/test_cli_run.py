"""`results-realtime run` as a subprocess: signals, crash recovery, failover (acceptance)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from daemon.localpg import free_port
from tests.fixtures.db import PgServer
from tests.support.capture_server import CaptureServer
from tests.support.cells import assert_gapless, cell_is
from tests.support.process import CliProcess, cli_env, run_cli
from tests.support.school import School, seed_school, submit_text
from tests.support.silent_server import silent_server
from tests.support.waiting import eventually


async def start_daemon(
    database_url: str, server: CaptureServer, cwd: Path, health_port: int = 0, **env: str
) -> CliProcess:
    process = await CliProcess.start(
        ["run", "--health-port", str(health_port)], cli_env(database_url, server.url, **env), cwd
    )
    await process.wait_event("daemon.started")
    return process


async def final_states(db: asyncpg.Connection) -> dict[tuple[str, str], str]:
    rows = await db.fetch(
        "select activity_id, user_id::text as pupil,"
        " results_realtime.iso_utc_v1(submitted_at) as at from submissions"
    )
    return {(r["activity_id"], r["pupil"]): r["at"] for r in rows}


async def test_help_explains_the_daemon(tmp_path: Path) -> None:
    code, out, _ = await run_cli(["run", "--help"], cli_env(None, None), tmp_path)
    assert code == 0
    for words in ("--health-port", "SIGTERM", "RESULTS_REALTIME_ENABLED", "/healthz"):
        assert words in out


async def test_unreachable_database_exits_3(tmp_path: Path, capture_server: CaptureServer) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    code, _, err = await run_cli(["run"], cli_env(dsn, capture_server.url), tmp_path)
    assert code == 3
    assert "cannot connect to PostgreSQL" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_exits_zero_within_the_bound_even_mid_publish(
    database_url: str,
    db: asyncpg.Connection,
    capture_server: CaptureServer,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    school = await seed_school(db)
    async with await start_daemon(
        database_url,
        capture_server,
        tmp_path,
        RESULTS_REALTIME_PUBLISH_RETRY_MAX_ATTEMPTS="1000",
        RESULTS_REALTIME_DAEMON_SHUTDOWN_TIMEOUT_S="5",
    ) as daemon:
        await daemon.wait_event("leader.acquired")
        capture_server.fail_next(1000, "timeout")  # Realtime hangs: a publish is in flight
        await submit_text(db, "a-text", school.pupils[0], "in flight")
        await capture_server.wait_for_requests(1)
        daemon.signal(sig)
        code = await daemon.wait(deadline_s=10)
    assert code == 0
    assert daemon.seen("daemon.stopped")
    # the message stayed staged: nothing was lost
    assert await db.fetchval("select count(*) from results_realtime.outbox_messages") == 1


async def test_a_stop_while_realtime_is_down_releases_the_retry_at_once(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    school = await seed_school(db)
    async with await start_daemon(
        database_url,
        capture_server,
        tmp_path,
        RESULTS_REALTIME_PUBLISH_RETRY_INITIAL_WAIT_S="60",
        RESULTS_REALTIME_PUBLISH_RETRY_MAX_WAIT_S="60",  # a backoff far beyond the stop's grace
    ) as daemon:
        await daemon.wait_event("leader.acquired")
        capture_server.fail_next(1000, 503)
        await submit_text(db, "a-text", school.pupils[0], "while Realtime is down")
        await daemon.wait_event("publish.retry_scheduled")
        daemon.signal(signal.SIGTERM)
        code = await daemon.wait(deadline_s=10)
    assert code == 0
    assert daemon.seen("publish.released")
    assert not daemon.seen("daemon.stop_forced")  # released, not cut off at the end of the grace
    assert len(capture_server.requests) == 1  # the retry was not sent
    assert await db.fetchval("select count(*) from results_realtime.outbox_messages") == 1


async def test_sigkill_mid_burst_then_restart_delivers_every_final_state(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    school = await seed_school(db)
    cells = [(a, p) for a in ("a-text", "a-choice") for p in school.pupils]
    writer_db = await asyncpg.connect(database_url)

    async def burst(rounds: range) -> None:
        for n in rounds:
            for activity, pupil in cells:
                await submit_text(writer_db, activity, pupil, f"v{n}")

    try:
        async with await start_daemon(database_url, capture_server, tmp_path) as first:
            await first.wait_event("leader.acquired")
            writing = asyncio.create_task(burst(range(30)))
            await capture_server.wait_until(lambda s: len(s.accepted) >= 5)
            first.proc.kill()  # SIGKILL in the middle of the burst
            assert await first.wait() == -signal.SIGKILL
            await writing
        await burst(range(30, 35))  # more changes while no daemon runs
        expected = await final_states(db)
        async with await start_daemon(database_url, capture_server, tmp_path) as second:
            for (activity, pupil), at in expected.items():
                await capture_server.wait_until(
                    cell_is(school.channel(), activity, pupil, submittedAt=at), deadline_s=30
                )
            second.signal(signal.SIGTERM)
            assert await second.wait() == 0
    finally:
        await writer_db.close()
    assert_gapless(capture_server)


async def test_standby_takes_over_when_the_leader_is_killed(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    school: School = await seed_school(db)
    ports = (free_port(), free_port())
    daemons = [await start_daemon(database_url, capture_server, tmp_path, p) for p in ports]
    try:
        await asyncio.wait(
            [asyncio.ensure_future(d.wait_event("leader.acquired")) for d in daemons],
            return_when=asyncio.FIRST_COMPLETED,
            timeout=15,
        )
        async with aiohttp.ClientSession() as http:
            roles = []
            for port in ports:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    roles.append((await response.json())["leader"])
        assert sorted(roles) == [False, True]
        leader, standby = (daemons[0], daemons[1]) if roles[0] else (daemons[1], daemons[0])
        await submit_text(db, "a-text", school.pupils[0], "before")
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
        # acknowledged: killing the leader now must not cause a redelivery
        await eventually(
            lambda: db.fetchval("select count(*) = 0 from results_realtime.outbox_messages"),
            what="the ack",
        )
        leader.proc.kill()
        await leader.wait()
        await submit_text(db, "a-text", school.pupils[1], "after the leader died")
        await standby.wait_event("leader.acquired", deadline_s=5)
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[1]))
    finally:
        for daemon in daemons:
            await daemon.kill()
    keys = capture_server.received()
    assert len(keys) == len(set(keys))
    assert_gapless(capture_server)


async def test_taken_health_port_exits_5(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = cli_env(database_url, capture_server.url)
        code, out, err = await run_cli(["run", "--health-port", str(port)], env, tmp_path)
    assert code == 5
    assert "--health-port" in err
    # It never started, so it does not say it stopped: it says the start was abandoned, and why.
    assert "daemon.started" not in out
    assert "daemon.stopped" not in out
    assert "daemon.start_abandoned" in out


async def test_an_unmigrated_database_exits_3_and_says_migrate(
    pg_server: PgServer, capture_server: CaptureServer, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(pg_server.dsn or None)
    name = "rr_run_unmigrated"
    try:
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.execute(f"create database {name}")
        env = cli_env(pg_server.database(name), capture_server.url)
        code, out, err = await run_cli(["run", "--health-port", "0"], env, tmp_path)
    finally:
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()
    assert code == 3, err
    assert "not migrated" in err
    assert "run `results-realtime migrate`" in err
    assert "Traceback" not in err
    # refused before it started: neither started nor stopped, and the JSON log says why
    assert "daemon.started" not in out
    assert "daemon.stopped" not in out
    abandoned = [json.loads(line) for line in out.splitlines() if "daemon.start_abandoned" in line]
    assert [(e["level"], "not migrated" in e["reason"]) for e in abandoned] == [("warning", True)]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (
            "delete from results_realtime.schema_migrations where version = 11",
            "pending migrations 0011_flags_mirror",
        ),
        (  # without its triggers a daemon would run healthy and publish nothing
            "drop trigger results_realtime_insert_v1 on public.submissions",
            "the realtime triggers are missing (public.submissions: results_realtime_insert_v1)",
        ),
    ],
    ids=["pending migration", "missing trigger"],
)
async def test_a_schema_that_is_not_this_versions_is_refused_by_name(
    database_url: str,
    db: asyncpg.Connection,
    capture_server: CaptureServer,
    tmp_path: Path,
    damage: str,
    named: str,
) -> None:
    await db.execute(damage)
    env = cli_env(database_url, capture_server.url)
    code, out, err = await run_cli(["run", "--health-port", "0"], env, tmp_path)
    assert code == 3, out
    assert named in err
    assert "run `results-realtime migrate`" in err
    assert "leader.acquired" not in out


async def test_a_configuration_error_logs_no_start_or_stop(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url, None, SUPABASE_URL="http://127.0.0.1:9")  # no credential
    code, out, err = await run_cli(["run", "--health-port", "0"], env, tmp_path)
    assert code == 2
    assert "no Realtime credential" in err
    assert "daemon.stopped" not in out
    assert "daemon.started" not in out


async def test_the_started_log_line_redacts_a_query_password(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    dsn = f"{database_url}?password=hunter2q"  # the test server trusts; the password is unused
    async with await start_daemon(dsn, capture_server, tmp_path) as daemon:
        started = await daemon.wait_event("daemon.started")
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert started["config"]["database"]["url"].endswith("?password=***")
    assert "hunter2q" not in "\n".join(daemon.text) + daemon.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_the_first_connect_stops_at_once(
    capture_server: CaptureServer, tmp_path: Path, sig: signal.Signals
) -> None:
    """A server that accepts TCP and never answers: the connect would wait 30 s."""
    async with silent_server() as silent:
        env = cli_env(
            silent.dsn(),
            capture_server.url,
            RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S="30",
            RESULTS_REALTIME_DAEMON_SHUTDOWN_TIMEOUT_S="20",  # far beyond the deadline below
        )
        daemon = await CliProcess.start(["run", "--health-port", "0"], env, tmp_path)
        async with daemon:
            await asyncio.wait_for(silent.accepted.wait(), 15)
            daemon.signal(sig)
            code = await daemon.wait(deadline_s=5)
    assert code == 0, daemon.stderr
    assert not daemon.seen("daemon.stop_timeout")
    assert daemon.stderr == ""


async def test_the_container_healthcheck_probes_the_configured_port(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    port = free_port()

    async def healthcheck(**env: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon.healthcheck",
            env=cli_env(None, None, **env),
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(proc.wait(), 15)

    assert await healthcheck(RESULTS_REALTIME_DAEMON_HEALTH_PORT=str(port)) == 1  # nothing there
    async with await start_daemon(database_url, capture_server, tmp_path, port) as daemon:
        await daemon.wait_event("leader.acquired")
        assert await healthcheck(RESULTS_REALTIME_DAEMON_HEALTH_PORT=str(port)) == 0
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0


async def test_the_started_log_line_shows_the_database_of_the_option_and_says_so(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    config = tmp_path / "m.toml"
    config.write_text('[database]\nurl = "postgresql://postgres@127.0.0.1:5432/rr_not_this_one"\n')
    args = ["run", "--config", str(config), "--database-url", database_url, "--health-port", "0"]
    async with await CliProcess.start(args, cli_env(None, capture_server.url), tmp_path) as daemon:
        started = await daemon.wait_event("daemon.started")
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert started["config"]["database"]["url"] == database_url
    assert started["options"] == {
        "database.url": "--database-url",
        "daemon.health_port": "--health-port",
    }


async def test_a_clean_stop_gives_up_the_lock_at_info_level(
    database_url: str, capture_server: CaptureServer, tmp_path: Path
) -> None:
    async with await start_daemon(database_url, capture_server, tmp_path) as daemon:
        await daemon.wait_event("leader.acquired")
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    lost = [e for e in daemon.events if e.get("event") == "leader.lost"]
    assert [(e["level"], e["reason"]) for e in lost] == [("info", "shutting down")]
    assert [e["event"] for e in daemon.events if e.get("level") == "warning"] == []


async def test_a_second_daemon_says_it_stands_by_and_who_holds_the_lock(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, tmp_path: Path
) -> None:
    async with await start_daemon(database_url, capture_server, tmp_path) as leader:
        acquired = await leader.wait_event("leader.acquired")
        async with await start_daemon(database_url, capture_server, tmp_path) as standby:
            standing = await standby.wait_event("leader.standby")
            assert standing["level"] == "info"
            assert standing["holder_pid"] == acquired["pid"]
            assert standing["holder_application"] == "results-realtime leader"
            tries: set[object] = set()  # the standby's lock attempts, seen by the server

            async def retried() -> bool:
                tries.update(
                    await db.fetchval(
                        "select array_agg(query_start) from pg_stat_activity"
                        " where application_name = 'results-realtime leader' and pid <> $1",
                        acquired["pid"],
                    )
                    or []
                )
                return len(tries) >= 3

            await eventually(retried, what="three more lock attempts of the standby")
            assert not standby.seen("leader.acquired")
            assert [e["event"] for e in standby.events].count("leader.standby") == 1  # once


async def test_a_signal_during_start_up_logs_the_abandoned_start(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    async with silent_server() as silent:
        env = cli_env(
            silent.dsn(), capture_server.url, RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S="30"
        )
        daemon = await CliProcess.start(["run", "--health-port", "0"], env, tmp_path)
        async with daemon:
            await asyncio.wait_for(silent.accepted.wait(), 15)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(deadline_s=5) == 0
    abandoned = await daemon.wait_event("daemon.start_abandoned", deadline_s=1)
    assert (abandoned["level"], abandoned["reason"]) == ("info", "stop requested")
    assert not daemon.seen("daemon.started")
