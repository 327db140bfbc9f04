"""The LISTEN connection against a real PostgreSQL, with faults injected by a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from daemon.config import DaemonSettings
from daemon.errors import ListenUnsupportedError
from daemon.pipeline.listener import Listener
from daemon.pipeline.metrics import Metrics
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

CHANNEL = "results_realtime_v1"

FAST = DaemonSettings(probe_interval_s=0.1, probe_timeout_s=0.5, reconnect_max_backoff_s=0.1)


class Running:
    """A started listener whose `run()` is supervised by a task; counts catch-up requests."""

    def __init__(self, dsn: str, settings: DaemonSettings = FAST) -> None:
        self.catch_ups = 0
        self.listener = Listener(
            dsn,
            CHANNEL,
            settings,
            metrics=Metrics(),
            connect_timeout_s=2.0,
            on_catch_up=self._count,
        )
        self._task: asyncio.Task[None] | None = None

    def _count(self) -> None:
        self.catch_ups += 1

    async def __aenter__(self) -> Listener:
        await self.listener.start()
        self._task = asyncio.create_task(self.listener.run())
        return self.listener

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.listener.close()


@contextlib.asynccontextmanager
async def logs() -> AsyncIterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def has(captured: list[dict[str, Any]], event: str, **fields: Any) -> Callable[[], bool]:
    return lambda: any(
        e["event"] == event and all(e.get(k) == v for k, v in fields.items()) for e in captured
    )


async def ring(db: asyncpg.Connection, payload: str = "") -> None:
    await db.execute("select pg_notify($1, $2)", CHANNEL, payload)


async def test_doorbell_wakes_and_probe_echoes(database_url: str, db: asyncpg.Connection) -> None:
    async with Running(database_url) as listener:
        assert listener.connected
        assert listener.last_probe_ok_at is not None
        first_probe = listener.last_probe_ok_at
        listener.wake.clear()
        await ring(db)
        await asyncio.wait_for(listener.wake.wait(), 5)
        await eventually(lambda: listener.last_probe_ok_at != first_probe, what="a later probe")


async def test_terminated_backend_reconnects_listens_again_and_requests_catch_up(
    database_url: str, db: asyncpg.Connection
) -> None:
    runner = Running(database_url)
    async with logs() as captured, runner as listener:
        old_pid = listener.backend_pid
        assert await db.fetchval("select pg_terminate_backend($1)", old_pid)
        await eventually(has(captured, "listener.lost"), what="listener.lost")
        await eventually(has(captured, "listener.recovered"), what="listener.recovered")
        assert runner.catch_ups == 1
        assert listener.backend_pid not in (None, old_pid)
        listener.wake.clear()
        await ring(db)  # LISTEN was re-issued on the new session
        await asyncio.wait_for(listener.wake.wait(), 5)


async def test_a_reconnect_is_proven_by_a_probe_before_it_counts_as_recovered(
    database_url: str, db: asyncpg.Connection
) -> None:
    # /healthz is green only while the last probe is recent: a recovery that waited for the next
    # periodic probe stayed 503 for up to a probe interval. With an interval far beyond the test,
    # only the reconnect itself can have probed.
    slow = DaemonSettings(probe_interval_s=600, probe_timeout_s=0.5, reconnect_max_backoff_s=0.1)
    async with logs() as captured, Running(database_url, slow) as listener:
        before = listener.last_probe_ok_at
        assert before is not None
        assert await db.fetchval("select pg_terminate_backend($1)", listener.backend_pid)
        await eventually(has(captured, "listener.recovered"), what="listener.recovered")
        after = listener.last_probe_ok_at
        assert after is not None
        assert after > before
        assert listener.connected


async def test_garbage_notifications_are_logged_and_harmless(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with logs() as captured, Running(database_url) as listener:
        listener.wake.clear()
        await ring(db, "\x01\x02 not a hint at all; drop table students; " + "x" * 5000)
        await asyncio.wait_for(listener.wake.wait(), 5)
        await eventually(has(captured, "listener.unexpected_payload"), what="a warning")
        probed = listener.last_probe_ok_at
        await eventually(lambda: listener.last_probe_ok_at != probed, what="probes go on")
        assert listener.connected
    warning = next(e for e in captured if e["event"] == "listener.unexpected_payload")
    assert warning["payload_bytes"] > 5000
    assert len(warning["payload"]) <= 80


async def test_listen_unsupported_is_refused_at_start(pg_proxy: TcpProxy) -> None:
    """A pooler in transaction mode accepts LISTEN but never delivers: the probe catches it."""
    pg_proxy.drop_notifications = True
    listener = Listener(
        pg_proxy.dsn(),
        CHANNEL,
        DaemonSettings(probe_timeout_s=0.5),
        metrics=Metrics(),
        connect_timeout_s=2.0,
        on_catch_up=lambda: None,
    )
    with pytest.raises(ListenUnsupportedError, match="transaction-mode pooler") as info:
        await listener.start()
    assert info.value.exit_code == 3
    assert pg_proxy.notifications_dropped >= 1
    assert not listener.connected


async def test_probe_timeout_while_running_forces_a_reconnect(
    pg_proxy: TcpProxy, db: asyncpg.Connection
) -> None:
    runner = Running(pg_proxy.dsn())
    async with logs() as captured, runner as listener:
        pg_proxy.drop_notifications = True  # from now on, new data on this session is swallowed
        await eventually(has(captured, "listener.probe_failed"), what="listener.probe_failed")
        await eventually(has(captured, "listener.lost", reason="probe timed out"), what="lost")
        pg_proxy.drop_notifications = False
        await eventually(has(captured, "listener.recovered"), what="listener.recovered")
        await eventually(lambda: runner.catch_ups >= 1, what="a catch-up request")
        listener.wake.clear()
        await ring(db)
        await asyncio.wait_for(listener.wake.wait(), 5)


async def test_network_cut_and_refused_connections_then_recovery(
    pg_proxy: TcpProxy, db: asyncpg.Connection
) -> None:
    runner = Running(pg_proxy.dsn())
    async with logs() as captured, runner as listener:
        pg_proxy.refuse()
        assert pg_proxy.cut() >= 1
        await eventually(has(captured, "listener.lost"), what="listener.lost")
        await eventually(has(captured, "listener.reconnect_failed"), what="failed reconnects")
        assert not listener.connected
        pg_proxy.restore()
        await eventually(has(captured, "listener.recovered"), what="listener.recovered")
        assert listener.connected
        assert runner.catch_ups == 1
        listener.wake.clear()
        await ring(db)
        await asyncio.wait_for(listener.wake.wait(), 5)
