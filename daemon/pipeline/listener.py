"""The LISTEN connection: the doorbell that wakes the service, kept alive by a self-probe.

NOTIFY is at most once: asyncpg drops every listener when its connection dies, and whatever was
notified before a new LISTEN is gone (measurements.md 4.1). So on every (re)connect the order is
LISTEN first, then ask the service to catch up from the outbox. A hung connection is invisible
without traffic, so the listener NOTIFYs itself periodically and expects the echo in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from daemon.config import DaemonSettings
from daemon.db import connect, where
from daemon.errors import DatabaseError, ListenUnsupportedError
from daemon.log import get_logger
from daemon.pipeline.metrics import Metrics
from daemon.sqlfiles import query

log = get_logger(__name__)

# A hint is optional; anything else on the channel is logged (then still treated as a doorbell).
_EXPECTED_PAYLOAD = re.compile(r"^[\w.:,{}\"\[\] -]{0,200}$")
_UNEXPECTED_LOG_EVERY_S = 60.0
_RECONNECT_INITIAL_S = 0.05


def probe_channel(channel: str) -> str:
    return f"{channel}_probe"


class Listener:
    """`start()` connects and proves LISTEN works; `run()` supervises until cancelled."""

    def __init__(
        self,
        dsn: str | None,
        channel: str,
        settings: DaemonSettings,
        *,
        metrics: Metrics,
        connect_timeout_s: float,
        on_catch_up: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self.channel = channel
        self._probe_channel = probe_channel(channel)
        self._settings = settings
        self._metrics = metrics
        self._connect_timeout_s = connect_timeout_s
        self._on_catch_up = on_catch_up
        self.wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._probes: dict[str, asyncio.Future[None]] = {}
        self._probe_prefix = secrets.token_hex(6)
        self._probe_counter = 0
        self._random = random.Random()
        self._unexpected = 0
        self._unexpected_logged_at = 0.0
        self.connected = False
        self.last_probe_ok_at: datetime | None = None
        self.recoveries = 0

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN session (tests terminate it)."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def start(self) -> None:
        """First connection: a failure here is fatal (exit 3) rather than retried."""
        await self._connect()
        try:
            await self.probe()
        except TimeoutError:
            await self._drop()
            raise ListenUnsupportedError(
                f"LISTEN/NOTIFY does not work on {where(self._dsn)}: a NOTIFY sent on this "
                f"connection did not come back within {self._settings.probe_timeout_s}s. "
                "This happens behind a transaction-mode pooler (PgBouncer/Supavisor in "
                "transaction mode, Supabase port 6543). Point DATABASE_URL at a direct or "
                "session-mode connection (Supabase port 5432)."
            ) from None
        log.info("listener.connected", channel=self.channel, pid=self.backend_pid)

    async def run(self) -> None:
        """Probe periodically; on any loss reconnect with backoff, then request a catch-up."""
        while True:
            reason = await self._supervise()
            lost_at = time.monotonic()
            self._mark_lost(reason)
            attempts = await self._reconnect()
            self.recoveries += 1
            self._metrics.listener_reconnects.inc()
            log.info(
                "listener.recovered",
                attempts=attempts,
                downtime_ms=round((time.monotonic() - lost_at) * 1000, 1),
                pid=self.backend_pid,
            )
            self._request_catch_up()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Bounded: a connection that does not close within `timeout_s` is terminated."""
        await self._drop(timeout_s)

    async def probe(self) -> None:
        """NOTIFY ourselves and wait for the echo; TimeoutError when it does not come back."""
        conn = self._conn
        if conn is None or conn.is_closed():
            raise ConnectionError("listener connection is closed")
        self._probe_counter += 1
        token = f"{self._probe_prefix}:{self._probe_counter}"
        echo: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[token] = echo
        timeout_s = self._settings.probe_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await conn.execute(query("runtime_notify"), self._probe_channel, token)
                await echo
        except TimeoutError:  # with a message: a failed reconnect logs it
            raise TimeoutError(f"the probe's echo did not come back within {timeout_s}s") from None
        finally:
            self._probes.pop(token, None)
        self.last_probe_ok_at = datetime.now(UTC)

    async def _supervise(self) -> str:
        """Return why the connection is considered lost."""
        interval = self._settings.probe_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._lost.wait()
            if self._lost.is_set():
                return "connection terminated"
            try:
                await self.probe()
            except TimeoutError:
                log.warning("listener.probe_failed", timeout_s=self._settings.probe_timeout_s)
                return "probe timed out"
            except Exception as exc:  # asyncpg raises many kinds on a dying connection
                log.warning("listener.probe_failed", error=repr(exc))
                return f"probe failed: {exc!r}"

    def _mark_lost(self, reason: str) -> None:
        log.warning("listener.lost", reason=reason)
        self._discard()

    def _discard(self) -> None:
        """Forget the connection at once: a hung socket will not close politely."""
        self.connected = False
        self._metrics.listener_connected.set(0)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _reconnect(self) -> int:
        attempt = 0
        while True:
            attempt += 1
            delay = min(
                self._settings.reconnect_max_backoff_s,
                _RECONNECT_INITIAL_S * 2 ** (attempt - 1),
            )
            await asyncio.sleep(self._random.uniform(delay / 2, delay))
            try:
                await self._connect()
                await self.probe()  # a real round trip proves the session (and makes health green)
                return attempt
            except Exception as exc:
                self._discard()
                log.info("listener.reconnect_failed", attempt=attempt, error=str(exc))

    async def _connect(self) -> None:
        self._lost = asyncio.Event()
        conn = await connect(self._dsn, connect_timeout=self._connect_timeout_s, role="listener")
        try:
            conn.add_termination_listener(self._on_terminated)
            # LISTEN first: whatever happens after this is either heard or in the outbox.
            await conn.add_listener(self.channel, self._on_doorbell)
            await conn.add_listener(self._probe_channel, self._on_probe_echo)
        except Exception as exc:
            conn.terminate()
            raise DatabaseError(f"LISTEN failed on {where(self._dsn)}: {exc}") from exc
        self._conn = conn
        self.connected = True
        self._metrics.listener_connected.set(1)

    async def _drop(self, timeout_s: float = 2.0) -> None:
        conn, self._conn = self._conn, None
        self.connected = False
        self._metrics.listener_connected.set(0)
        if conn is None or conn.is_closed():
            return
        try:
            async with asyncio.timeout(timeout_s):
                await conn.close()
        except Exception as exc:
            log.warning("listener.close_aborted", error=repr(exc))
        finally:
            if not conn.is_closed():
                conn.terminate()

    def _on_terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._lost.set()

    def _on_doorbell(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._metrics.events_received.labels(kind="notification").inc()
        text = str(payload)
        if not _EXPECTED_PAYLOAD.match(text):
            self._log_unexpected(pid, text)
        self.wake.set()

    def _on_probe_echo(self, conn: object, pid: int, channel: str, payload: object) -> None:
        echo = self._probes.get(str(payload))  # other daemons' probes are heard too: ignore them
        if echo is not None and not echo.done():
            echo.set_result(None)

    def _log_unexpected(self, pid: int, payload: str) -> None:
        self._unexpected += 1
        now = time.monotonic()
        if now - self._unexpected_logged_at >= _UNEXPECTED_LOG_EVERY_S:
            self._unexpected_logged_at = now
            log.warning(
                "listener.unexpected_payload",
                sender_pid=pid,
                payload=payload[:80],
                payload_bytes=len(payload),
                count=self._unexpected,
                note="payloads are ignored; the notification only wakes the daemon",
            )

    def _request_catch_up(self) -> None:
        self.wake.set()
        self._on_catch_up()
