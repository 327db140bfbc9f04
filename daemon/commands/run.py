"""`results-realtime run`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import signal

from daemon.commands.args import (
    add_setting_option,
    port_number,
    setting_options_given,
    settings_for,
)
from daemon.config import Settings
from daemon.db import connect
from daemon.errors import ResultsRealtimeError, describe
from daemon.heap import freeze_startup_heap
from daemon.log import configure_logging, get_logger
from daemon.pipeline.credentials import require_credential
from daemon.pipeline.service import PipelineService
from daemon.pipeline.stop_watchdog import StopWatchdog
from daemon.schema import require_migrated, require_triggers

log = get_logger(__name__)

HELP = "run the daemon: outbox -> Supabase Realtime broadcasts"
DESCRIPTION = """\
Runs the daemon. It LISTENs for the triggers' doorbell (with a periodic self-probe and
reconnects), claims outbox rows in batches, builds one message per channel with gap-free
per-channel seq numbers, and publishes them with Realtime's REST batch broadcast
(POST {SUPABASE_URL}/realtime/v1/api/broadcast), acknowledging rows only once Realtime accepted
them. When several daemons share a database, one (the holder of an advisory lock) publishes; the
others stand by and take over within about a second when its process dies, within 5 s when its
host or network vanishes.

The feature flag realtime.enabled (RESULTS_REALTIME_ENABLED) is mirrored into the database once
the daemon is up (a start that fails leaves it alone): when false the triggers record nothing and
the daemon publishes nothing but stays healthy.

Before it starts, it checks the configuration, the credential and that every migration is
applied (exit 2 or 3 with the fix, e.g. "run `results-realtime migrate`").

Credentials: SUPABASE_SERVICE_ROLE_KEY; for local development SUPABASE_JWT_SECRET alone is enough
(a service_role token is minted).

HTTP endpoint (daemon.health_host:health_port): GET /healthz (200 ok or disabled; 200 degraded
while Realtime refuses or cannot be reached, once a publish's retries ran out; 503 when the
LISTEN connection or the database is down) and GET /metrics (Prometheus).

Signals: SIGTERM or SIGINT stop claiming, let the batch in flight finish (or leave it staged,
which is durable), close the connections and exit 0 within daemon.shutdown_timeout_s; a second
signal stops at once. A stop that would overrun the bound is cut short (daemon.stop_timeout).
A signal during start-up (e.g. while the first connection is pending) stops it at once, exit 0.

Log events (JSON lines; README.md, "Logs", lists all of them with their fields): the main ones
are daemon.started, daemon.stopping, daemon.stopped, listener.connected, listener.lost,
listener.recovered, leader.acquired, leader.standby, leader.lost, pipeline.catch_up,
pipeline.cycle_failed, batch.published, publish.retry_scheduled, publish.stalled, publish.rejected,
publish.dead_lettered.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_option(
        parser,
        "--database-url",
        ("database", "url"),
        help="overrides DATABASE_URL / database.url",
    )
    add_setting_option(
        parser,
        "--health-port",
        ("daemon", "health_port"),
        type=port_number,
        metavar="N",
        help="port of /healthz and /metrics (env RESULTS_REALTIME_DAEMON_HEALTH_PORT; "
        "0 turns the endpoint off)",
    )


def options_used(args: argparse.Namespace) -> dict[str, str]:
    """The keys set by a command-line option (daemon.started names them: no other source)."""
    return {
        f"{section}.{key}": override.option
        for (section, key), override in setting_options_given(args).items()
    }


def run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    dsn = settings.database.url
    if settings.realtime.enabled:  # a configuration error fails before the first log line
        require_credential(settings.realtime)
    configure_logging(level=settings.daemon.log_level)
    watchdog = StopWatchdog(settings.daemon.shutdown_timeout_s)
    try:
        asyncio.run(serve(settings, dsn, watchdog, options=options_used(args)))
    finally:
        watchdog.disarm()  # only now: the event loop's own teardown is covered too
    return 0


async def serve(
    settings: Settings,
    dsn: str | None,
    watchdog: StopWatchdog,
    *,
    options: dict[str, str] | None = None,
) -> None:
    service = PipelineService(settings, dsn=dsn, options=options)
    loop = asyncio.get_running_loop()
    work = asyncio.create_task(_start_and_run(settings, dsn, service), name="daemon")
    stopped_starting = False

    def stop() -> None:
        nonlocal stopped_starting
        watchdog.arm(loop)
        if not service.started.is_set():
            # Still starting (a connect may hang for database.connect_timeout_s): nothing is
            # claimed or staged yet, so the start-up is abandoned at once.
            stopped_starting = True
            work.cancel()
        service.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    settle = asyncio.create_task(_freeze_once_started(service), name="freeze-heap")
    try:
        await work
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if not stopped_starting or (me is not None and me.cancelling()):
            raise
        if not service.stopped.is_set():  # stopped before the service began: it logged nothing
            log.info("daemon.start_abandoned", reason="stop requested")
    finally:
        settle.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _start_and_run(settings: Settings, dsn: str | None, service: PipelineService) -> None:
    try:
        await require_schema(settings, dsn)
    except ResultsRealtimeError as failure:  # as the service logs its own failed starts
        log.warning("daemon.start_abandoned", reason=describe(failure))
        raise
    await service.run()


async def require_schema(settings: Settings, dsn: str | None) -> None:
    """Refuse to start on a database that lacks migrations or triggers (exit 3), naming them."""
    timeout = settings.database.connect_timeout_s
    conn = await connect(dsn, connect_timeout=timeout, role="start-up")
    try:
        await require_migrated(conn)
        await require_triggers(conn)
    finally:
        await conn.close(timeout=timeout)


async def _freeze_once_started(service: PipelineService) -> None:
    await service.started.wait()
    freeze_startup_heap()
