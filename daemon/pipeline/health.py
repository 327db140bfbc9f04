"""The daemon's HTTP endpoint: GET /healthz (JSON) and GET /metrics (Prometheus text).

/healthz answers 200 when the daemon does its job (or is switched off on purpose) and 503 when it
cannot: the LISTEN connection is down, its probe is stale, or the database does not answer. When
Realtime refuses or cannot be reached, or the leader's oldest waiting change is older than
daemon.max_lag_s (its work is stuck behind a lock, say), the status is "degraded" with 200: the
changes wait, and restarting the daemon would not make them move.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daemon.log import get_logger
from daemon.net import bind_listening_socket
from daemon.pipeline.metrics import Metrics

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxState:
    depth: int | None
    pending: int | None
    lag_s: float | None


@dataclass(frozen=True, slots=True)
class ListenerState:
    connected: bool
    last_probe_ok_at: str | None


@dataclass(frozen=True, slots=True)
class PublishingState:
    stalled_since: str | None  # ISO-8601 UTC of the first stalled publish, None while delivering
    reason: str | None  # why the last publish stalled


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # "ok" | "degraded" | "disabled" | "unhealthy"
    enabled: bool
    leader: bool
    listener: ListenerState | None
    outbox: OutboxState
    publishing: PublishingState = PublishingState(stalled_since=None, reason=None)
    problems: tuple[str, ...] = ()  # why it is unhealthy
    behind: tuple[str, ...] = ()  # why it is degraded: changes wait longer than they should

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unhealthy" else 200

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["problems"] = list(self.problems)
        body["behind"] = list(self.behind)
        return body


class HealthServer:
    """Serves snapshots produced by the service; refreshes gauges before /metrics."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: Metrics,
        snapshot: Callable[[], Awaitable[Health]],
    ) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._snapshot = snapshot
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_text)
        sock = bind_listening_socket(
            self._host,
            self._port,
            what="health endpoint",
            hint="Pass --health-port N (RESULTS_REALTIME_DAEMON_HEALTH_PORT), or 0 to turn the "
            "endpoint off.",
            host_option="RESULTS_REALTIME_DAEMON_HEALTH_HOST (daemon.health_host)",
        )
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("health.listening", host=self._host, port=self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        health = await self._snapshot()
        return web.json_response(health.as_json(), status=health.http_status)

    async def _metrics_text(self, request: web.Request) -> web.Response:
        await self._snapshot()  # refreshes the depth gauges
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
