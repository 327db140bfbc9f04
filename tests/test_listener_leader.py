"""Leader election over a real PostgreSQL advisory lock: one leader, failover, clean step-down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from structlog.testing import capture_logs

from daemon.config import DaemonSettings
from daemon.pipeline.leader import LeaderElection
from daemon.pipeline.metrics import Metrics
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

FAST = DaemonSettings(leader_poll_interval_s=0.1, probe_timeout_s=0.5)


@contextlib.asynccontextmanager
async def campaigning(dsn: str) -> AsyncIterator[LeaderElection]:
    election = LeaderElection(dsn, FAST, metrics=Metrics(), connect_timeout_s=2.0)
    task = asyncio.create_task(election.run())
    try:
        yield election
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await election.close()


async def test_exactly_one_leader_and_failover_when_it_dies(
    database_url: str, db: asyncpg.Connection
) -> None:
    first = LeaderElection(database_url, FAST, metrics=Metrics(), connect_timeout_s=2.0)
    second = LeaderElection(database_url, FAST, metrics=Metrics(), connect_timeout_s=2.0)
    tasks = {first: asyncio.create_task(first.run()), second: asyncio.create_task(second.run())}
    try:
        with capture_logs() as logs:
            await eventually(lambda: first.is_leader or second.is_leader, what="a leader")
            leader, standby = (first, second) if first.is_leader else (second, first)
            # The standby keeps trying and keeps failing while the leader lives.
            tried = standby.attempts
            await eventually(lambda: standby.attempts >= tried + 5, what="standby retries")
            assert not standby.is_leader
            # The leader's process dies: its campaign stops and the server ends its session.
            tasks[leader].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tasks[leader]
            assert await db.fetchval("select pg_terminate_backend($1)", leader.backend_pid)
            await asyncio.wait_for(standby.acquired.wait(), 5)
            await asyncio.wait_for(leader.lost.wait(), 5)
            assert not leader.is_leader
        events = [e["event"] for e in logs]
        assert events.count("leader.acquired") == 2  # the first leader, then the standby
        assert "leader.lost" in events
    finally:
        for task in tasks.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await first.close()
        await second.close()


async def test_a_leader_whose_session_is_killed_stands_down(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with campaigning(database_url) as election:
        await asyncio.wait_for(election.acquired.wait(), 5)
        pid = election.backend_pid
        assert await db.fetchval("select pg_terminate_backend($1)", pid)
        await asyncio.wait_for(election.lost.wait(), 5)
        # it campaigns again on a new session and wins, since nobody else wants the lock
        await asyncio.wait_for(election.acquired.wait(), 5)
        assert election.backend_pid != pid


async def test_clean_close_hands_over_at_once(database_url: str) -> None:
    async with campaigning(database_url) as first:
        await asyncio.wait_for(first.acquired.wait(), 5)
        async with campaigning(database_url) as second:
            await first.close()
            await asyncio.wait_for(second.acquired.wait(), 5)
            assert second.is_leader


async def test_leader_stops_at_once_when_its_connection_is_cut(pg_proxy: TcpProxy) -> None:
    async with campaigning(pg_proxy.dsn()) as election:
        await asyncio.wait_for(election.acquired.wait(), 5)
        pg_proxy.refuse()
        pg_proxy.cut()
        await asyncio.wait_for(election.lost.wait(), 5)
        assert not election.is_leader
        pg_proxy.restore()
        await asyncio.wait_for(election.acquired.wait(), 5)


async def test_leader_session_asks_the_server_to_detect_a_dead_peer(database_url: str) -> None:
    """A crashed host must not keep the lock for hours: the server probes the session itself."""
    async with campaigning(database_url) as election:
        await asyncio.wait_for(election.acquired.wait(), 5)
        conn = election._conn  # white-box: the setting lives on the leader's own session
        assert conn is not None
        assert await conn.fetchval("show tcp_keepalives_idle") == "1"
        assert await conn.fetchval("show tcp_keepalives_count") == "2"
