"""The daemon: wires listener, leader election, store and publisher, and runs the work loop.

Work loop of the leader (the doorbell protocol agreed with the triggers):
- idle: clear the wake flag, arm the doorbell, look once more for work (a change committed before
  the arm rang no bell), then wait for a notification or `idle_poll_interval_s` (much less while
  a transaction that wrote outbox rows before the arm is still open: its commit rings no bell
  either, see linger.UnrungWait). A wait that ends with nobody ringing is followed by one look
  at the outbox with the doorbell left armed, so an idle daemon writes nothing to the database;
  the same quiet poll checks that the triggers still read the flags the state row holds;
- busy: disarm (writers stop NOTIFYing, so they do not serialize on the NOTIFY lock), then
  publish what is staged, stage more when the rate budget has room, and poll every
  `busy_poll_interval_ms` until both the outbox and the stage are empty.
Staging waits for the budget, so under a rate limit changes pile up in the outbox, where they
coalesce (latest state wins), instead of as many small staged messages.

Stopping runs on one clock started by the first `stop()` (see `shutdown_schedule`): the batch in
flight gets a grace period, then it is cancelled (it stays staged, which is durable) and every
connection is closed at once, each close bounded by what is left and falling back to an abort.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from daemon import __version__
from daemon.config import Settings, redacted
from daemon.db import connect, create_pool
from daemon.errors import describe
from daemon.log import get_logger
from daemon.pipeline.credentials import ServiceRoleCredential
from daemon.pipeline.handoff import Handoff
from daemon.pipeline.health import (
    Health,
    HealthServer,
    ListenerState,
    OutboxState,
    PublishingState,
)
from daemon.pipeline.leader import LeaderElection
from daemon.pipeline.linger import Linger, UnrungWait
from daemon.pipeline.listener import Listener
from daemon.pipeline.metrics import Metrics
from daemon.pipeline.publisher import Publishable, Publisher
from daemon.pipeline.replan import PlanRefresh
from daemon.pipeline.store import NOTIFY_CHANNEL, OutgoingMessage, StageResult, Store
from daemon.pipeline.vacuum import OutboxVacuum

log = get_logger(__name__)

_STALL_BACKOFF_MIN_S = 0.05
_STALL_BACKOFF_MAX_S = 30.0
_HEALTH_QUERY_TIMEOUT_S = 2.0
_POOL_MAX_SIZE = 4
# The enrichment is an inlined SQL function over arrays: planning it costs ~2 ms per call, more than
# running it for a few keys. The work connection's statements are prepared once and reuse a generic
# plan (the keys are looked up by index either way; bench 'burst' checks the 5,000-key case).
_WORK_SESSION = {"plan_cache_mode": "force_generic_plan"}
_SILENT_CONNECTION_MARGIN_S = 5.0
# Outbox rows per claim in a burst. Bench 'burst': 10,000 peaked at 112 MiB RSS, 5,000 at 94.
_MAX_CLAIM = 5_000
# Of daemon.shutdown_timeout_s: closing the connections gets this share (at most _CLOSE_MAX_S),
# the process's own exit this share (at most _EXIT_MAX_S); the batch in flight has the rest.
_CLOSE_SHARE, _CLOSE_MAX_S = 0.3, 2.0
_EXIT_SHARE, _EXIT_MAX_S = 0.1, 1.0


@dataclass(frozen=True, slots=True)
class ShutdownSchedule:
    """Seconds after the stop request by which each phase of a clean stop must be over."""

    grace_s: float  # the batch in flight may finish until then; then it is cancelled
    closed_s: float  # every connection is closed (aborted if need be); the process may exit


def shutdown_schedule(timeout_s: float) -> ShutdownSchedule:
    """Split daemon.shutdown_timeout_s, leaving the process time to exit within it."""
    closing = min(_CLOSE_MAX_S, timeout_s * _CLOSE_SHARE)
    exiting = min(_EXIT_MAX_S, timeout_s * _EXIT_SHARE)
    grace = timeout_s - closing - exiting
    return ShutdownSchedule(grace_s=grace, closed_s=grace + closing)


class _LeadershipLost(Exception):
    """Raised inside a leadership term to cancel the work in flight at once."""


class PipelineService:
    """`await run()` until `stop()`; exceptions at start-up carry the CLI's exit codes."""

    def __init__(
        self, settings: Settings, *, dsn: str | None = None, options: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self._options = dict(options or {})  # key -> the command-line option that set it
        self.dsn = dsn if dsn is not None else settings.database.url
        self.metrics = Metrics()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stop_requests = 0
        self.shutdown = shutdown_schedule(settings.daemon.shutdown_timeout_s)
        self._stop_requested_at: float | None = None
        self._enabled = settings.realtime.enabled
        self._random = random.Random()
        self._pool: asyncpg.Pool | None = None
        self._store: Store | None = None
        self.listener: Listener | None = None
        self.leader: LeaderElection | None = None
        self.publisher: Publisher | None = None
        self.health: HealthServer | None = None
        self._lead_task: asyncio.Task[None] | None = None
        self._stalls = 0
        self._stalled_since: datetime | None = None  # first publish of the current stall
        self._stall_reason: str | None = None
        self._failures = 0
        self._terms = 0
        self._cycles = 0
        self._acks: list[int] = []  # accepted by Realtime, deleted with the next staging
        self._staged_while_publishing = False  # a dead letter's refresh awaits a catch-up
        self._sink = _Sink(self)

    # ---- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """First call: drain politely. Second call: stop the work in flight at once."""
        self._stop_requests += 1
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self._stopping.set()
        if self._stop_requests > 1 and self._lead_task is not None:
            self._lead_task.cancel()

    @property
    def store(self) -> Store:
        assert self._store is not None, "the service has not started"
        return self._store

    async def run(self) -> None:
        failure: BaseException | None = None
        try:
            await self._run()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await self._close()
            self.stopped.set()
            if self.started.is_set():
                log.info("daemon.stopped")
            elif self._stopping.is_set() or failure is None:  # asked to: no problem
                log.info("daemon.start_abandoned", reason="stop requested")
            else:  # no daemon.started to pair with: say the start never completed, and why
                log.warning("daemon.start_abandoned", reason=describe(failure))

    async def _run(self) -> None:
        s = self.settings
        credential = ServiceRoleCredential(s.realtime) if self._enabled else None
        self._pool = await self._create_pool()
        self._store = Store(self._pool, max_payload_bytes=s.publish.max_payload_bytes)
        self.metrics.enabled.set(1 if self._enabled else 0)
        if self._enabled:
            assert credential is not None
            self.listener = Listener(
                self.dsn,
                NOTIFY_CHANNEL,
                s.daemon,
                metrics=self.metrics,
                connect_timeout_s=s.database.connect_timeout_s,
                on_catch_up=self._on_catch_up,
            )
            await self.listener.start()
            self.leader = LeaderElection(
                self.dsn,
                s.daemon,
                metrics=self.metrics,
                connect_timeout_s=s.database.connect_timeout_s,
            )
            self.publisher = Publisher(
                s.publish,
                realtime_url=s.realtime.url,
                credential=credential,
                metrics=self.metrics,
                stopping=self._stopping,
            )
        if s.daemon.health_port:
            self.health = HealthServer(
                s.daemon.health_host,
                s.daemon.health_port,
                metrics=self.metrics,
                snapshot=self.snapshot,
            )
            await self.health.start()
        # Only now, with everything it needs to run: a start that fails (or is stopped) leaves
        # the database-wide flag, and with it a running leader, alone.
        if self._stopping.is_set():
            return
        await self.store.set_enabled(self._enabled)
        log.info(
            "daemon.started",
            version=__version__,
            pid=os.getpid(),
            enabled=self._enabled,
            health_port=self.health.port if self.health else None,
            config=redacted(s),
            options=self._options,
        )
        self.started.set()
        if not self._enabled:
            log.warning(
                "daemon.disabled",
                note="realtime.enabled is false (RESULTS_REALTIME_ENABLED): the triggers record "
                "nothing and the daemon publishes nothing; /healthz stays 200",
            )
            await self._stop_requested()
            return
        await self._supervise()

    async def _stop_requested(self) -> float:
        """Wait for `stop()`, log it, and return the grace left for the batch in flight.

        Shared by the disabled and the enabled daemon, so both log the same stop events.
        """
        await self._stopping.wait()
        grace = self._left(self.shutdown.grace_s)
        log.info("daemon.stopping", grace_s=round(grace, 3))
        return grace

    async def _supervise(self) -> None:
        assert self.listener is not None
        assert self.leader is not None
        async with asyncio.TaskGroup() as tg:
            background = [
                tg.create_task(self.listener.run(), name="listener"),
                tg.create_task(self.leader.run(), name="leader"),
            ]
            self._lead_task = tg.create_task(self._lead(), name="lead")
            grace = await self._stop_requested()
            done, _ = await asyncio.wait({self._lead_task}, timeout=grace)
            if not done:
                log.warning("daemon.stop_forced", note="the batch in flight stays staged")
                self._lead_task.cancel()
            for task in background:
                task.cancel()
            tasks = {self._lead_task, *background}
            _, stuck = await asyncio.wait(tasks, timeout=self._left(self.shutdown.closed_s))
            if stuck:  # a cancellation was swallowed somewhere: say where, for the bug report
                me = asyncio.current_task()
                log.error(
                    "daemon.stop_stuck",
                    tasks=sorted(repr(t) for t in asyncio.all_tasks() if t is not me),
                    note="tasks still running after their cancellation",
                )

    async def _create_pool(self) -> asyncpg.Pool:
        return await create_pool(
            self.dsn,
            max_size=_POOL_MAX_SIZE,
            connect_timeout=self.settings.database.connect_timeout_s,
            command_timeout=60.0,
        )

    def _left(self, phase_end_s: float) -> float:
        """Seconds until this point of the shutdown schedule (counted from the stop request)."""
        if self._stop_requested_at is None:  # start-up failed or run() was cancelled: no grace
            return max(0.0, phase_end_s - self.shutdown.grace_s)
        return max(0.0, self._stop_requested_at + phase_end_s - time.monotonic())

    async def _close(self) -> None:
        """Close everything at once; a step that overruns the schedule is aborted instead."""
        timeout = self._left(self.shutdown.closed_s)
        steps: list[Awaitable[None]] = []
        if self.health is not None:
            steps.append(_bounded("health", self.health.close(), timeout))
        if self.publisher is not None:
            steps.append(_bounded("publisher", self.publisher.close(), timeout))
        if self.leader is not None:
            steps.append(_bounded("leader", self.leader.close(timeout), timeout))
        if self.listener is not None:
            steps.append(_bounded("listener", self.listener.close(timeout), timeout))
        if self._pool is not None:
            steps.append(_bounded("pool", self._pool.close(), timeout, self._pool.terminate))
        await asyncio.gather(*steps)

    # ---- leadership -----------------------------------------------------------------------

    async def _lead(self) -> None:
        """Work while leader; a lost lock cancels the work in flight."""
        assert self.leader is not None
        while not self._stopping.is_set():
            await _first_of(self.leader.acquired, self._stopping)
            if self._stopping.is_set():
                return
            self._terms += 1
            try:
                with structlog.contextvars.bound_contextvars(term=self._terms):
                    async with asyncio.TaskGroup() as term:
                        term.create_task(self._work(), name="work")
                        term.create_task(self._watch_leadership(), name="watch-leadership")
            except* _LeadershipLost:
                log.warning("pipeline.paused", reason="leadership lost; publishing stopped")
            finally:
                self._stalled_since = self._stall_reason = None  # a standby publishes nothing

    async def _watch_leadership(self) -> None:
        assert self.leader is not None
        await _first_of(self.leader.lost, self._stopping)
        if not self._stopping.is_set():
            raise _LeadershipLost

    # ---- the work loop ----------------------------------------------------------------------

    async def _work(self) -> None:
        log.info("pipeline.catch_up", reason="leadership acquired")
        self._failures = 0
        while not self._stopping.is_set():
            if self.leader is not None and not self.leader.is_leader:
                return  # lost meanwhile: _watch_leadership ends the term (never work without it)
            try:
                await self._pipeline()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away, a bug in one batch, ...
                _raise_if_cancel_requested(exc)
                self._failures += 1
                delay = self._backoff(self._failures)
                log.error(
                    "pipeline.cycle_failed", error=repr(_unwrap(exc)), retry_in_s=round(delay, 3)
                )
                await self._pause(delay)

    async def _pipeline(self) -> None:
        """One run of the pipeline on its own connection, until stopped (or until it fails).

        A dedicated connection, not the pool: no reset round trips after every call, and its
        prepared statements stay warm. Staging and publishing overlap: the stager prepares batch
        N+1 while the POST of batch N is in flight; a handoff of one batch keeps them in step,
        and the publisher sends strictly in staging order (seqs are assigned at staging).
        """
        max_lag_s = self.settings.daemon.max_lag_s
        conn = await connect(
            self.dsn,
            connect_timeout=self.settings.database.connect_timeout_s,
            # A statement stuck for max_lag_s (behind a lock someone else holds) is cancelled by
            # the server and the cycle retried, logged as pipeline.cycle_failed; the client's own
            # timeout, a little later, is for a connection gone silent.
            server_settings={**_WORK_SESSION, "statement_timeout": f"{max_lag_s * 1000:.0f}"},
            purpose="for the work loop",
            role="work",
            command_timeout=max_lag_s + _SILENT_CONNECTION_MARGIN_S,
        )
        try:
            await self.store.check_server_restart(conn=conn)
            await self._flush_acks(conn)
            published_through = await self._catch_up(0)
            self._failures = 0
            handoff: Handoff[_Batch] = Handoff()
            vacuum = OutboxVacuum(self.store)
            try:
                # The group runs in a task of its own, so that its failure cannot pass for this
                # task's cancellation (see _raise_if_cancel_requested).
                await asyncio.create_task(
                    self._stage_and_publish(conn, handoff, vacuum, published_through),
                    name="stage-and-publish",
                )
            finally:
                await vacuum.close()
            try:  # a clean stop: forget what Realtime accepted (else it is redelivered)
                await self._flush_acks(conn)
            except Exception as exc:
                log.warning("pipeline.ack_flush_failed", error=repr(exc), note="redelivered later")
        except BaseException:
            conn.terminate()
            raise
        await _bounded("work connection", conn.close(), 1.0, conn.terminate)

    async def _stage_and_publish(
        self,
        conn: asyncpg.Connection,
        handoff: Handoff[_Batch],
        vacuum: OutboxVacuum,
        published_through: int,
    ) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._stage_loop(conn, handoff, vacuum), name="stage")
            tg.create_task(self._publish_loop(handoff, published_through), name="publish")

    async def _flush_acks(self, conn: asyncpg.Connection | None = None) -> None:
        ids, self._acks = self._acks, []
        try:
            await self.store.ack(ids, conn=conn)
        except BaseException:
            self._acks = ids + self._acks
            raise

    async def _catch_up(self, published_through: int) -> int:
        """Publish whatever is staged (a previous term, a stalled batch), oldest first."""
        assert self.publisher is not None
        while not self._stopping.is_set():
            self._staged_while_publishing = False  # this round's read includes it
            await self._flush_acks()
            # Acks the stager has taken but not yet applied leave published messages in place:
            # the bound is part of the query, so they cannot fill the page and hide the rest.
            batch = await self.store.pending(
                self.publisher.request_size * 4, after_id=published_through
            )
            if not batch:
                break
            self._cycles += 1
            # A stall leaves published_through as it was: the next round re-reads what is staged.
            published_through, _ = await self._send(
                _Batch(self._cycles, tuple(batch)), published_through
            )
        return published_through

    async def _publish(self, batch: _Batch, published_through: int) -> int:
        """Publish one batch, retrying after stalls; the highest id now dealt with."""
        published_through, stalled = await self._send(batch, published_through)
        # The durable truth after a stall: what is still staged, the stalled remainder first.
        # After a dead letter: its refresh, numbered after what the stager staged meanwhile,
        # goes out after that, in id (so seq) order.
        if stalled or self._staged_while_publishing:
            return await self._catch_up(published_through)
        return published_through

    async def _send(self, batch: _Batch, published_through: int) -> tuple[int, bool]:
        """One attempt at a batch: the highest id dealt with, and whether it stalled.

        After a stall it waits out the backoff; the caller re-reads the staged messages (a loop,
        never a recursion: a Realtime outage of hours is thousands of stalls).
        """
        assert self.publisher is not None
        with structlog.contextvars.bound_contextvars(cycle=batch.cycle):
            report = await self.publisher.publish(batch.messages, self._sink)
        if not report.stalled:
            self._stalls = 0
            self._stalled_since = self._stall_reason = None
            return max(published_through, batch.messages[-1].id), False
        self._stalls += 1
        self._stalled_since = self._stalled_since or datetime.now(UTC)
        self._stall_reason = report.stall_reason
        await self._pause(self._backoff(self._stalls))
        return published_through, True

    async def _publish_loop(self, handoff: Handoff[_Batch], published_through: int) -> None:
        try:
            while (batch := await handoff.get()) is not None:
                fresh = tuple(m for m in batch.messages if m.id > published_through)
                if fresh and not self._stopping.is_set():  # (else a catch-up sent them)
                    published_through = await self._publish(
                        _Batch(batch.cycle, fresh), published_through
                    )
                await handoff.done()
        finally:
            await handoff.close()

    async def _stage_loop(
        self, conn: asyncpg.Connection, handoff: Handoff[_Batch], vacuum: OutboxVacuum
    ) -> None:
        """Stage while there is work and budget; arm the doorbell and wait when there is none."""
        assert self.publisher is not None
        d = self.settings.daemon
        limit = d.batch_size
        armed = True  # the doorbell may be armed (at start: whatever an earlier daemon left)
        quiet = False  # the last idle wait ended with nobody ringing
        replan = PlanRefresh()
        linger, unrung = Linger(d), UnrungWait(d)
        try:
            while not self._stopping.is_set():
                if not await handoff.wait_for_room() or self._stopping.is_set():
                    return
                budget_wait = self.publisher.budget_delay()
                if budget_wait > 0:
                    await self._pause(budget_wait)  # the outbox keeps coalescing meanwhile
                    continue
                self._cycles += 1
                started = time.monotonic()
                disarm = armed and not quiet  # a quiet poll only looks: no write while idle
                with structlog.contextvars.bound_contextvars(cycle=self._cycles):
                    result = await self._stage(conn, limit, disarm)
                took_s = time.monotonic() - started
                armed = armed and not disarm
                if result.claimed and armed:  # a quiet poll found work: busy from now on
                    await self.store.disarm_doorbell(conn=conn)
                    armed = False
                vacuum.claimed(result.claimed)
                if replan.claimed(result.claimed):
                    await self.store.refresh_plans(conn)
                if result.messages:
                    await handoff.put(_Batch(self._cycles, result.messages))
                if result.claimed == 0:
                    quiet = not await self._idle(conn, handoff, unrung)
                    armed = True
                    linger.idle()
                    continue
                pause_s = linger.pause_s(result.claimed, started=started, took_s=took_s)
                limit = await self._next_limit(conn, limit, result)
                if result.claimed < limit:
                    await self._pause(pause_s)
        finally:
            await handoff.close()

    async def _stage(self, conn: asyncpg.Connection, limit: int, disarm: bool) -> StageResult:
        ack, self._acks = self._acks, []
        started = time.monotonic()
        try:
            result = await self.store.stage_batch(limit, conn=conn, ack=ack, disarm=disarm)
        except BaseException:
            self._acks = ack + self._acks
            raise
        if result.claimed:
            self.metrics.events_received.labels(kind="outbox_row").inc(result.claimed)
            self.metrics.refreshes.inc(result.refreshes)
            log.debug(
                "stage.batch",
                claimed=result.claimed,
                staged=result.staged,
                cells=result.cells,
                refreshes=result.refreshes,
                elapsed_ms=round((time.monotonic() - started) * 1000, 2),
            )
        if result.skipped:
            log.warning("stage.skipped", keys=result.skipped, note="unmappable or unenrichable")
        return result

    async def _next_limit(self, conn: asyncpg.Connection, limit: int, result: StageResult) -> int:
        """A burst under a tight budget: claim the backlog in fewer, fuller messages.

        When a full claim left a backlog that, at this claim size, would need more messages than
        the budget has room for, the next claim takes (up to `_MAX_CLAIM`) all of it: each channel
        then gets one or a few `result_cells` instead of one per `batch_size` rows.
        """
        assert self.publisher is not None
        batch_size = self.settings.daemon.batch_size
        if result.claimed < limit:
            return batch_size
        backlog = await self.store.outbox_depth(conn=conn)
        claims_left = -(-backlog // limit)
        if claims_left * max(1, result.staged) <= self.publisher.limiter.available():
            return batch_size
        grown = min(_MAX_CLAIM, max(batch_size, backlog))
        log.info("stage.claim_grown", backlog=backlog, claim=grown, reason="rate budget")
        return grown

    async def _idle(
        self, conn: asyncpg.Connection, handoff: Handoff[_Batch], unrung: UnrungWait
    ) -> bool:
        """Nothing to stage: once the publisher is done, arm the doorbell and wait for it.

        Returns whether work may be waiting: the bell rang, rows were found right after the arm,
        or a stop interrupted the wait. False: the wait ran out with nobody ringing.
        """
        assert self.listener is not None
        if not await handoff.wait_drained():
            return True
        self.listener.wake.clear()
        ack, self._acks = self._acks, []
        try:
            await self.store.arm_doorbell(conn=conn, ack=ack)
        except BaseException:
            self._acks = ack + self._acks
            raise
        in_flight = await self.store.outbox_writers_in_flight(conn=conn)
        if await self.store.outbox_depth(conn=conn):
            return True  # committed before the bell was armed: no notification will come
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(unrung.wait_s(writers_in_flight=in_flight)):
                await _first_of(self.listener.wake, self._stopping)
        if self.listener.wake.is_set() or self._stopping.is_set():
            return True
        await self._check_flags(conn)
        return False

    async def _check_flags(self, conn: asyncpg.Connection) -> None:
        """Notice someone else flipping the flag, and a copy of the flags the triggers misread.

        The triggers read a copy of the state row's flags (migration 0011) kept in a sequence,
        which anyone allowed to can `setval`, and which a rolled-back TRUNCATE of the row's table
        left at 0 before 0014 refused the truncate: every change would go unrecorded. Rewriting
        the row rewrites the copy.
        """
        flags = await self.store.flags_state(conn=conn)
        if not flags.copy_in_line:
            log.warning(
                "daemon.flags_repaired",
                copy=flags.copy_bits,
                row=flags.row_bits,
                note="the triggers' copy of the flags differed from runtime_state; rewritten",
            )
            await self.store.rewrite_flags(conn=conn)
        enabled = flags.enabled
        if enabled != self._enabled:
            log.warning(
                "daemon.flag_changed",
                enabled=enabled,
                configured=self.settings.realtime.enabled,
                note="the database flag changed under a running daemon; the triggers follow "
                "the database, a restart re-applies the configured value",
            )
            self._enabled = enabled
            self.metrics.enabled.set(1 if enabled else 0)

    def _on_catch_up(self) -> None:
        log.info("pipeline.catch_up", reason="listener reconnected")

    def _backoff(self, failures: int) -> float:
        base = max(self.settings.publish.retry_max_wait_s, _STALL_BACKOFF_MIN_S)
        delay = min(_STALL_BACKOFF_MAX_S, base * 2 ** min(failures - 1, 10))
        return self._random.uniform(delay / 2, delay)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    # ---- health ---------------------------------------------------------------------------

    async def snapshot(self) -> Health:
        problems: list[str] = []
        outbox = OutboxState(depth=None, pending=None, lag_s=None)
        if self._store is not None:
            try:
                async with asyncio.timeout(_HEALTH_QUERY_TIMEOUT_S):
                    depth = await self.store.outbox_depth()
                    pending = await self.store.pending_depth()
                    lag = await self.store.oldest_waiting_age_s()
                outbox = OutboxState(depth=depth, pending=pending, lag_s=lag)
                self.metrics.outbox_depth.set(depth)
                self.metrics.pending_depth.set(pending)
            except Exception as exc:
                problems.append(f"database: {exc!r}")
        listener_state: ListenerState | None = None
        if self.listener is not None:
            last = self.listener.last_probe_ok_at
            listener_state = ListenerState(
                connected=self.listener.connected,
                last_probe_ok_at=last.isoformat() if last else None,
            )
            if not self.listener.connected:
                problems.append("listener: not connected")
            stale = timedelta(
                seconds=3 * self.settings.daemon.probe_interval_s
                + self.settings.daemon.probe_timeout_s
            )
            if last is None or datetime.now(UTC) - last > stale:
                problems.append("listener: probe is stale")
        stalled_since = self._stalled_since
        behind: list[str] = []
        if stalled_since:
            behind.append(f"publishing: stalled ({self._stall_reason})")
        max_lag_s = self.settings.daemon.max_lag_s
        leading = bool(self.leader and self.leader.is_leader)
        if leading and outbox.lag_s is not None and outbox.lag_s > max_lag_s:
            # Only the leader judges its own work: a standby's restart would change nothing.
            behind.append(
                f"work: the oldest change waiting is {outbox.lag_s:.0f} s old (daemon.max_lag_s "
                f"{max_lag_s:g}); the log says why (pipeline.cycle_failed)"
            )
        if problems:
            status = "unhealthy"
        elif not self._enabled:
            status = "disabled"
        else:
            status = "degraded" if behind else "ok"
        return Health(
            status=status,
            enabled=self._enabled,
            leader=bool(self.leader and self.leader.is_leader),
            listener=listener_state,
            outbox=outbox,
            publishing=PublishingState(
                stalled_since=stalled_since.isoformat() if stalled_since else None,
                reason=self._stall_reason if stalled_since else None,
            ),
            problems=tuple(problems),
            behind=tuple(behind),
        )


async def _bounded(
    step: str, closing: Awaitable[None], timeout_s: float, abort: Callable[[], None] | None = None
) -> None:
    """One close step of the shutdown: at most `timeout_s`, then `abort`; never raises."""
    try:
        async with asyncio.timeout(timeout_s):
            await closing
    except TimeoutError:
        log.warning("daemon.close_timeout", step=step, timeout_s=round(timeout_s, 3))
        if abort is not None:
            abort()
    except Exception as exc:
        log.warning("daemon.close_failed", step=step, error=repr(exc))
        if abort is not None:
            abort()


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of the events is set."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@dataclass(frozen=True, slots=True)
class _Batch:
    cycle: int  # the staging cycle, bound to the publish logs
    messages: tuple[OutgoingMessage, ...]


class _Sink:
    """The publisher's outcomes: acks wait for the next staging transaction (or the idle arm)."""

    def __init__(self, service: PipelineService) -> None:
        self._service = service

    async def ack(self, ids: Sequence[int]) -> None:
        self._service._acks.extend(ids)

    async def dead_letter(
        self, messages: Sequence[Publishable], *, status: int | None, body: str
    ) -> None:
        if await self._service.store.dead_letter(messages, status=status, body=body):
            self._service._staged_while_publishing = True

    async def mark_attempt(self, ids: Sequence[int]) -> None:
        await self._service.store.mark_attempt(ids)


def _raise_if_cancel_requested(exc: BaseException) -> None:
    """Turn a failure that hid this task's own cancellation back into the cancellation.

    A TaskGroup whose child fails while the task around it is being cancelled raises the child's
    error, not the CancelledError (by design, CPython gh-95704); the cancellation stays requested
    (`Task.cancelling()`). A database outage does both at once: the work loop's connection fails
    as its leadership is lost, and the loop took the error for a failed cycle and went on
    publishing without the lock.

    Only sound in a task that is never a TaskGroup's parent: before Python 3.13 a group whose child
    fails while the parent waits in the group's exit leaves the parent with a cancel request that
    nobody made (CPython gh-116720), and every failed cycle passed for a cancellation: the work
    loop ended silently and kept the lock. Hence the group's own task in `_pipeline`.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def _unwrap(exc: BaseException) -> BaseException:
    """The one failure inside a task group's ExceptionGroup (the common case), for the log."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
