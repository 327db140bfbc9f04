"""Running the daemon in-process for integration tests, with fast timings and zero retry waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from daemon.config import (
    DaemonSettings,
    DatabaseSettings,
    PublishSettings,
    RealtimeSettings,
    Settings,
)
from daemon.pipeline.service import PipelineService

SERVICE_KEY = "service-role-key-for-tests"


def fast_settings(realtime_url: str, **sections: dict[str, Any]) -> Settings:
    daemon = {
        "busy_poll_interval_ms": 2.0,
        "idle_poll_interval_s": 0.5,
        "probe_interval_s": 0.2,
        "probe_timeout_s": 1.0,
        "leader_poll_interval_s": 0.1,
        "reconnect_max_backoff_s": 0.1,
        "shutdown_timeout_s": 5.0,
        "health_port": 0,
    }
    publish = {
        "max_messages_per_second": 10_000,
        "request_timeout_s": 0.5,
        "retry_initial_wait_s": 0,
        "retry_max_wait_s": 0,
        "retry_max_attempts": 3,
    }
    realtime: dict[str, Any] = {"url": realtime_url, "service_role_key": SERVICE_KEY}
    return Settings(
        database=DatabaseSettings(connect_timeout_s=5),
        realtime=RealtimeSettings(**{**realtime, **sections.get("realtime", {})}),
        daemon=DaemonSettings(**{**daemon, **sections.get("daemon", {})}),
        publish=PublishSettings(**{**publish, **sections.get("publish", {})}),
    )


@contextlib.asynccontextmanager
async def running(
    dsn: str, settings: Settings, *, wait_for_leader: bool = True
) -> AsyncIterator[PipelineService]:
    """Start a daemon, wait until it is up (and leading), stop it cleanly afterwards."""
    service = PipelineService(settings, dsn=dsn)
    task = asyncio.create_task(service.run(), name="daemon-under-test")
    try:
        started = asyncio.ensure_future(service.started.wait())
        await asyncio.wait({started, task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()  # raises the start-up error
        assert service.started.is_set(), "the daemon did not start within 15 s"
        if wait_for_leader and service.leader is not None:
            await asyncio.wait_for(service.leader.acquired.wait(), 10)
        yield service
    finally:
        service.stop()
        if not task.done():
            await asyncio.wait_for(task, 15)
