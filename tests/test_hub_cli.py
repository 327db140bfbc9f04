"""`results-realtime hub` as a subprocess: start-up line, a port that is taken, SIGTERM, and the
refusals to start (a short JWT secret, an unmigrated database)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from daemon.tokens import mint_token
from tests.fixtures.db import PgServer
from tests.support.process import interrupt_once_connected
from tests.support.silent_server import silent_server
from tests.support.waiting import eventually

BIN = Path(sys.executable).parent / "results-realtime"


def _env(database_url: str, jwt_secret: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "SUPABASE_JWT_SECRET": jwt_secret}


def test_port_in_use_is_a_clear_error(database_url: str, jwt_secret: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [str(BIN), "hub", "--port", str(port)],
            env=_env(database_url, jwt_secret),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 5
    assert f"127.0.0.1:{port}: the port is already in use" in proc.stderr
    assert "pass --port N" in proc.stderr


def test_a_short_jwt_secret_is_refused(database_url: str) -> None:
    proc = subprocess.run(
        [str(BIN), "hub", "--port", "0"],
        env=_env(database_url, "short"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "SUPABASE_JWT_SECRET is 5 characters long; the hub needs at least 32" in proc.stderr


@pytest.fixture
async def empty_database_url(pg_server: PgServer) -> AsyncIterator[str]:
    """A database that `migrate` never ran on."""
    name = f"rr_empty_{os.getpid()}"
    admin = await asyncpg.connect(pg_server.dsn or None)
    try:
        await admin.execute(f'drop database if exists "{name}"')
        await admin.execute(f'create database "{name}"')
        yield pg_server.database(name)
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


def test_an_unmigrated_database_is_refused(empty_database_url: str, jwt_secret: str) -> None:
    proc = subprocess.run(
        [str(BIN), "hub", "--port", "0"],
        env=_env(empty_database_url, jwt_secret),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "the database is not migrated" in proc.stderr
    assert "run `results-realtime migrate`" in proc.stderr
    assert "the hub authorizes private channels" in proc.stderr
    assert "hub.started" not in proc.stdout


async def test_a_pending_migration_is_refused(database_url: str, jwt_secret: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("delete from results_realtime.schema_migrations where version = 11")
    finally:
        await conn.close()
    proc = await asyncio.create_subprocess_exec(
        str(BIN), "hub", "--port", "0", env=_env(database_url, jwt_secret),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3, err.decode()
    assert "pending migrations 0011_flags_mirror; run `results-realtime migrate`" in err.decode()


async def test_serves_then_exits_0_on_sigterm(database_url: str, jwt_secret: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(BIN),
        "hub",
        "--port",
        "0",
        env=_env(database_url, jwt_secret),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        while True:  # JSON lines: stdout is not a TTY
            event = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
            if event["event"] == "hub.started":
                break
        token = mint_token(jwt_secret, role="anon")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{event['url']}/realtime/v1/websocket?apikey={token}") as ws,
        ):
            heartbeat = {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"}
            await ws.send_json(heartbeat)
            assert (await ws.receive_json(timeout=10))["payload"]["status"] == "ok"
            proc.send_signal(signal.SIGTERM)
            closing = await ws.receive(timeout=10)
            assert closing.data == 1001
        rest = await asyncio.wait_for(proc.stdout.read(), 30)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        events = [json.loads(line) for line in rest.decode().splitlines()]
        gone = next(e for e in events if e["event"] == "hub.socket.disconnected")
        assert gone["code"] == 1001  # what the hub sent, not the client's echo (1000)
        assert gone["closed_by"] == "hub"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _events_until(stream: asyncio.StreamReader, name: str) -> list[dict[str, Any]]:
    """The JSON lines of the hub's log up to and including the first `name` event."""
    events = []
    while True:
        line = await asyncio.wait_for(stream.readline(), 30)
        assert line, f"the hub's log ended before {name}: {events}"
        events.append(json.loads(line))
        if events[-1]["event"] == name:
            return events


async def test_a_second_signal_ends_a_stop_that_waits_on_the_database(
    database_url: str, jwt_secret: str
) -> None:
    """A join stuck behind a lock holds a database connection and its handler: the polite stop
    waits for them, and a second SIGTERM ends that wait (exit 0)."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN), "hub", "--port", "0",
        env=_env(database_url, jwt_secret), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    locker = await asyncpg.connect(database_url)
    locked = locker.transaction()
    try:
        assert proc.stdout is not None
        started = (await _events_until(proc.stdout, "hub.started"))[-1]
        await locked.start()
        await locker.execute("lock table realtime.messages in access exclusive mode")
        token = mint_token(jwt_secret, role="authenticated", sub=str(uuid.uuid4()))
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{started['url']}/realtime/v1/websocket?apikey={token}") as ws,
        ):
            await ws.send_json({
                "topic": "realtime:assignment_results:g:l", "event": "phx_join", "ref": "1",
                "join_ref": "1", "payload": {"config": {"private": True}, "access_token": token},
            })  # fmt: skip

            async def join_waits_on_the_lock() -> bool:
                return bool(await locker.fetchval(
                    "select count(*) from pg_locks where relation = 'realtime.messages'::regclass"
                    " and not granted"
                ))  # fmt: skip

            await eventually(join_waits_on_the_lock, deadline_s=30, what="a blocked join")
            proc.send_signal(signal.SIGTERM)
            await _events_until(proc.stdout, "hub.stopping")
            assert await join_waits_on_the_lock()  # so the polite stop cannot finish
            proc.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(proc.stdout.read(), 15)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        events = [json.loads(line)["event"] for line in rest.decode().splitlines()]
        assert "hub.stop_cut_short" in events
        assert "hub.stopped" not in events
    finally:
        await locked.rollback()
        await locker.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_while_the_database_does_not_answer_stops_at_once(
    jwt_secret: str, sig: signal.Signals
) -> None:
    async with silent_server() as silent:
        env = {
            **_env(silent.dsn(), jwt_secret),
            "RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S": "30",
        }
        code, out, err = await interrupt_once_connected(
            [str(BIN), "hub", "--port", "0"], env, sig, silent.accepted
        )
    assert code == 0, err
    assert "hub.start_abandoned" in out
    assert "hub.started" not in out


@pytest.mark.parametrize("host", ["999.1.1.1", "192.0.2.1", "no-such-host.invalid"])
def test_a_host_that_is_no_address_of_this_machine_is_a_usage_error(
    database_url: str, jwt_secret: str, host: str
) -> None:
    proc = subprocess.run(
        [str(BIN), "hub", "--host", host, "--port", "0"],
        env=_env(database_url, jwt_secret),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{host!r} is not an address of this machine" in proc.stderr
    assert "pass --host (hub.host) the address of one of its interfaces" in proc.stderr
    assert "port is already in use" not in proc.stderr
    assert "Traceback" not in proc.stderr
