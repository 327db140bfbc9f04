"""The hub as an object: one aiohttp app on one port for websocket, REST, /metrics and /healthz.

async with run_hub(HubSettings(port=0), database_url=dsn, jwt_secret=secret) as hub:
    hub.url            # http://127.0.0.1:PORT  (SUPABASE_URL for the daemon and supabase-js)
    hub.realtime_url   # http://127.0.0.1:PORT/realtime/v1  (for AsyncRealtimeClient)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import asyncpg
from aiohttp import WSCloseCode, web
from asyncpg.pool import PoolConnectionProxy

from daemon import schema
from daemon.config import HubSettings
from daemon.db import create_pool
from daemon.errors import ConfigError, DatabaseError
from daemon.hub import rest
from daemon.hub.auth import Authorizer
from daemon.hub.socket import websocket_handler
from daemon.hub.state import HUB_STATE, HubState
from daemon.log import get_logger
from daemon.net import bind_listening_socket
from daemon.tokens import MIN_JWT_SECRET_LENGTH

log = get_logger(__name__)

_MAX_BODY_BYTES = 8_000_000

_PREFIXES = ("/realtime/v1", "")


async def require_migrated(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Every join to a private channel runs the RLS policies on realtime.messages that the
    migrations create: on a database without them each join would be refused as Unauthorized,
    with the cause only in the hub's log. So the hub does not start (DatabaseError, exit 3)."""
    try:
        await schema.require_migrated(conn)  # type: ignore[arg-type]
    except DatabaseError as exc:
        raise DatabaseError(
            f"{exc} (the hub authorizes private channels with the policies the migrations create)"
        ) from None


class Hub:
    """A Supabase-Realtime-compatible server; `start()`/`stop()` or `async with`."""

    def __init__(
        self,
        settings: HubSettings,
        *,
        database_url: str | None,
        jwt_secret: str,
        host: str | None = None,
        port: int | None = None,
        port_option: str = "--port",
        host_option: str = "--host (hub.host)",
    ) -> None:
        if len(jwt_secret) < MIN_JWT_SECRET_LENGTH:
            raise ConfigError(
                f"SUPABASE_JWT_SECRET is {len(jwt_secret)} characters long; the hub needs at "
                f"least {MIN_JWT_SECRET_LENGTH} (as Supabase does: the project's JWT secret, the "
                "same value the clients' tokens are signed with)"
            )
        self.settings = settings
        self.host = host if host is not None else settings.host
        self.port = port if port is not None else settings.port
        self._port_option = port_option  # what the command that started us calls the port
        self._host_option = host_option  # ... and the address
        self._database_url = database_url
        self._jwt_secret = jwt_secret
        self._pool: asyncpg.Pool | None = None
        self._runner: web.AppRunner | None = None
        self.state: HubState | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def realtime_url(self) -> str:
        return f"{self.url}/realtime/v1"

    async def start(self) -> None:
        sock = bind_listening_socket(
            self.host,
            self.port,
            what="hub",
            hint=f"Stop the other process (a running demo or hub?) or pass {self._port_option} "
            "N (0 picks a free port).",
            backlog=1024,
            host_option=self._host_option,
        )
        try:
            self._pool = await self._connect_pool()
            async with self._pool.acquire() as conn:
                await require_migrated(conn)
            self.state = HubState(self.settings, self._jwt_secret, Authorizer(self._pool))
            self._runner = web.AppRunner(
                self._app(self.state), handle_signals=False, access_log=None, shutdown_timeout=2.0
            )
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self._release()
            raise
        self.port = sock.getsockname()[1]
        log.info("hub.started", url=self.url, realtime_url=self.realtime_url)

    async def _connect_pool(self) -> asyncpg.Pool:
        return await create_pool(
            self._database_url,
            max_size=self.settings.db_pool_size,
            purpose="(the hub needs it to authorize private channels)",
            role="hub",
        )

    def _app(self, state: HubState) -> web.Application:
        # Realtime's body parser takes 8 MB (Plug's default): the payload limit (hub.max_payload_kb,
        # 3,000 kB by default) must be what refuses a large broadcast, with its 422, not aiohttp's
        # 1 MiB default with a plain-text 413.
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app[HUB_STATE] = state
        for prefix in _PREFIXES:
            app.router.add_get(
                f"{prefix}/websocket" if prefix else "/socket/websocket", websocket_handler
            )
            app.router.add_post(f"{prefix}/api/broadcast", rest.batch_broadcast)
            app.router.add_options(f"{prefix}/api/broadcast", rest.preflight)
            single = f"{prefix}/api/broadcast/{{topic}}/events/{{event}}"
            app.router.add_post(single, rest.single_broadcast)
            app.router.add_options(single, rest.preflight)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        del request
        assert self.state is not None
        return web.Response(body=self.state.metrics.render(), content_type="text/plain")

    async def _healthz(self, request: web.Request) -> web.Response:
        del request
        assert self.state is not None
        return web.json_response({"status": "ok", "sockets": len(self.state.connections)})

    async def stop(self, grace_s: float = 5.0) -> None:
        """Close every socket with 1001 (going away), then the listener and the pool."""
        if self.state is not None and self.state.connections:
            closing = [
                conn.close(WSCloseCode.GOING_AWAY, b"server shutting down")
                for conn in list(self.state.connections)
            ]
            try:
                await asyncio.wait_for(
                    asyncio.gather(*closing, return_exceptions=True), timeout=grace_s
                )
            except TimeoutError:
                log.warning("hub.stop.timeout", sockets=len(self.state.connections))
        await self._release()
        log.info("hub.stopped", url=self.url)

    async def _release(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


@asynccontextmanager
async def run_hub(
    settings: HubSettings | None = None,
    *,
    database_url: str | None,
    jwt_secret: str,
    host: str | None = None,
    port: int | None = None,
    port_option: str = "--port",
) -> AsyncIterator[Hub]:
    """Start a hub for the duration of the block (port 0 picks a free port: read `hub.port`)."""
    hub = Hub(
        settings or HubSettings(),
        database_url=database_url,
        jwt_secret=jwt_secret,
        host=host,
        port=port,
        port_option=port_option,
    )
    async with hub:
        yield hub
