"""Keeps the head of the outbox clean while the daemon is busy.

Every staging deletes the oldest outbox rows, and every claim scans the outbox's id index from
its oldest end, so until the deleted rows are vacuumed each claim steps over all of their dead
index entries again. Autovacuum visits a database about once a minute (`autovacuum_naptime`);
at 1,000 changes/s a claim would step over up to 60,000 dead entries. Vacuuming the outbox, a
table of a few live rows, takes milliseconds, so the daemon does it itself: in the background,
on a pool connection, once enough rows were claimed since the last time and at most once per
interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg

from daemon.log import get_logger
from daemon.pipeline.store import Store

log = get_logger(__name__)


class OutboxVacuum:
    def __init__(
        self,
        store: Store,
        *,
        every_rows: int = 2_000,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._every_rows = every_rows
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._rows = 0
        self._last = clock()
        self._task: asyncio.Task[None] | None = None
        self._refused = False  # the daemon's role may not vacuum: leave it to autovacuum

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def claimed(self, rows: int) -> None:
        """After each staging: start a vacuum in the background when one is due."""
        self._rows += rows
        if self._refused or self.running or self._rows < self._every_rows:
            return
        if self._clock() - self._last < self._min_interval_s:
            return
        self._rows, self._last = 0, self._clock()
        self._task = asyncio.create_task(self._vacuum(), name="outbox-vacuum")

    async def _vacuum(self) -> None:
        started = time.monotonic()
        try:
            await self._store.vacuum_outbox()
        except asyncpg.InsufficientPrivilegeError as exc:
            self._refused = True
            log.warning(
                "outbox.vacuum_refused",
                error=str(exc),
                action="leaving the outbox to autovacuum; grant the daemon's role ownership of "
                "results_realtime.outbox to let it vacuum (claims slow down between autovacuums)",
            )
        except Exception as exc:  # a lost connection, a cancelled statement: try again later
            log.warning("outbox.vacuum_failed", error=repr(exc))
        else:
            log.debug("outbox.vacuumed", elapsed_ms=round((time.monotonic() - started) * 1000, 2))

    async def idle(self) -> None:
        """Until the vacuum in flight, if any, is over."""
        if self._task is not None:
            await asyncio.wait([self._task])

    async def close(self) -> None:
        """Cancel the vacuum in flight and wait for it to end.

        `asyncio.wait`, not `await task` under a suppressed CancelledError: that would also
        swallow a cancellation of the caller itself (the work loop losing its leadership while
        it closes), and the loop would go on publishing without the lock.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
