"""Leader election with a session-level advisory lock on a dedicated connection.

Only the holder stages and publishes. The server frees a dead session's lock, so a standby that
retries every `leader_poll_interval_s` takes over within a few seconds; the holder probes its own
connection on the same period so that a hung or killed session is noticed and publishing stops.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from daemon.config import DaemonSettings
from daemon.db import connect
from daemon.log import get_logger
from daemon.pipeline.metrics import Metrics
from daemon.sqlfiles import query

log = get_logger(__name__)

# "RRLEAD": one leader per database (advisory locks are per database).
LEADER_LOCK_KEY = 0x5252_4C45_4144

# The server frees a dead session's lock only once it notices the death. A killed process closes
# its socket at once, but a crashed host or a cut network would go unnoticed for hours (the OS
# keepalive default), so the leader session asks the server to probe it every second.
_LEADER_KEEPALIVES = {
    "tcp_keepalives_idle": "1",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "2",
}


class LeaderElection:
    """`run()` campaigns forever; `acquired` / `lost` events tell the service what it may do."""

    def __init__(
        self,
        dsn: str | None,
        settings: DaemonSettings,
        *,
        metrics: Metrics,
        connect_timeout_s: float,
        lock_key: int = LEADER_LOCK_KEY,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._metrics = metrics
        self._connect_timeout_s = connect_timeout_s
        self._key = lock_key
        self._conn: asyncpg.Connection | None = None
        self._dead = asyncio.Event()
        self.is_leader = False
        self._standing_by = False  # leader.standby said once per stretch of standing by
        self.attempts = 0  # lock attempts made (tests use it as a progress barrier)
        self.acquired = asyncio.Event()
        self.lost = asyncio.Event()
        self.lost.set()

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def run(self) -> None:
        interval = self._settings.leader_poll_interval_s
        while True:
            try:
                await self._step()
            except Exception as exc:  # connection trouble: drop it, stand down, try again
                self._step_down(f"leader connection failed: {exc!r}")
                self._discard_connection()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._dead.wait()

    async def _step(self) -> None:
        conn = await self._connection()
        timeout = self._settings.probe_timeout_s
        if self.is_leader:
            async with asyncio.timeout(timeout):
                holds = await conn.fetchval(query("runtime_leader_holds"), self._key)
            if not holds:
                self._step_down("advisory lock no longer held")
            return
        async with asyncio.timeout(timeout):
            got = await conn.fetchval(query("runtime_leader_try_lock"), self._key)
        self.attempts += 1
        if got:
            self.is_leader = True
            self._standing_by = False
            self._metrics.leader.set(1)
            self.lost.clear()
            self.acquired.set()
            log.info("leader.acquired", pid=conn.get_server_pid())
        elif not self._standing_by:
            self._standing_by = True
            await self._say_standing_by(conn, timeout)

    async def _say_standing_by(self, conn: asyncpg.Connection, within_s: float) -> None:
        """Once per stretch of standing by: another session holds the lock (who, if seen)."""
        holder = None
        with contextlib.suppress(Exception):  # only for the log line: never a reason to fail
            async with asyncio.timeout(within_s):
                holder = await conn.fetchrow(query("runtime_leader_holder"), self._key)
        log.info(
            "leader.standby",
            holder_pid=holder["pid"] if holder else None,
            holder_application=holder["application_name"] if holder else None,
            holder_addr=holder["client_addr"] if holder else None,
            retry_every_s=self._settings.leader_poll_interval_s,
        )

    async def _connection(self) -> asyncpg.Connection:
        if self._dead.is_set():
            self._step_down("leader connection terminated")
            self._discard_connection()
        if self._conn is None or self._conn.is_closed():
            self._dead = asyncio.Event()
            conn = await connect(
                self._dsn,
                connect_timeout=self._connect_timeout_s,
                server_settings=_LEADER_KEEPALIVES,
                role="leader",
            )
            conn.add_termination_listener(self._on_terminated)
            self._conn = conn
        return self._conn

    def _on_terminated(self, conn: object) -> None:
        if conn is self._conn:
            # Stop publishing now: the server has released (or will release) our lock.
            self._step_down("leader connection terminated")
            self._dead.set()

    def _step_down(self, reason: str, *, requested: bool = False) -> None:
        """A lock lost is a warning; one given up at a requested stop is not a problem (info)."""
        self._standing_by = False
        if self.is_leader:
            self.is_leader = False
            self._metrics.leader.set(0)
            self.acquired.clear()
            self.lost.set()
            if requested:
                log.info("leader.lost", reason=reason)
            else:
                log.warning("leader.lost", reason=reason)

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Release the lock promptly on a clean shutdown so a standby need not wait.

        Bounded: a connection that does not answer within `timeout_s` is terminated (the server
        then frees the lock when it notices), and so is one whose close is cancelled.
        """
        conn, self._conn = self._conn, None
        was_leader = self.is_leader
        self._step_down("shutting down", requested=True)
        if conn is None or conn.is_closed():
            return
        try:
            async with asyncio.timeout(timeout_s):
                if was_leader:
                    await conn.fetchval(query("runtime_leader_unlock"), self._key)
                await conn.close()
        except Exception as exc:
            log.warning("leader.close_aborted", error=repr(exc))
        finally:
            if not conn.is_closed():
                conn.terminate()
