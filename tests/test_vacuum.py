"""The daemon's own vacuum of the outbox: what it does to the table, and when it runs."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from structlog.testing import capture_logs

from daemon.pipeline.store import Store
from daemon.pipeline.vacuum import OutboxVacuum
from tests.fixtures.pipeline import School

_VACUUMS = """
select coalesce(sum(vacuum_count), 0)
from pg_stat_user_tables where schemaname = 'results_realtime' and relname = 'outbox'
"""


async def _outbox_vacuums(conn: asyncpg.Connection) -> int:
    await conn.execute("select pg_stat_clear_snapshot()")
    return int(await conn.fetchval(_VACUUMS))


async def test_vacuum_outbox_vacuums_the_outbox_after_staging(school: School, store: Store) -> None:
    await school.conn.execute(
        "insert into results_realtime.outbox (activity_id, pupil_id, op, source)"
        " select 'A1', gen_random_uuid(), 'insert', 'pupil' from generate_series(1, 300)"
    )
    assert (await store.stage_batch(500)).claimed == 300
    before = await _outbox_vacuums(school.conn)
    await store.vacuum_outbox()
    assert await _outbox_vacuums(school.conn) == before + 1


class _CountingStore:
    """Stands in for Store.vacuum_outbox only: the scheduling is what is under test."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    async def vacuum_outbox(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_vacuum_starts_once_enough_rows_were_claimed_and_not_more_often_than_allowed() -> (
    None
):
    store, clock = _CountingStore(), _Clock()
    vacuum = OutboxVacuum(store, every_rows=100, min_interval_s=1.0, clock=clock)  # type: ignore[arg-type]
    clock.now += 5
    vacuum.claimed(99)
    await vacuum.idle()
    assert store.calls == 0  # not enough rows yet
    vacuum.claimed(1)
    await vacuum.idle()
    assert store.calls == 1
    vacuum.claimed(500)
    await vacuum.idle()
    assert store.calls == 1  # enough rows, but within a second of the last one
    clock.now += 1.0
    vacuum.claimed(0)
    await vacuum.idle()
    assert store.calls == 2  # the rows claimed meanwhile still count
    await vacuum.close()


async def _three_due_vacuums_failing_with(error: Exception) -> tuple[int, list[str]]:
    """Three vacuums come due, each in a fresh interval; the calls made and the events logged."""
    store, clock = _CountingStore(error), _Clock()
    vacuum = OutboxVacuum(store, every_rows=1, min_interval_s=0.0, clock=clock)  # type: ignore[arg-type]
    with capture_logs() as logs:
        for _ in range(3):
            clock.now += 10
            vacuum.claimed(10)
            await vacuum.idle()
    await vacuum.close()
    return store.calls, [e["event"] for e in logs]


async def test_a_role_that_may_not_vacuum_is_told_once_and_left_to_autovacuum() -> None:
    refused = asyncpg.InsufficientPrivilegeError("must be owner of table outbox")
    assert await _three_due_vacuums_failing_with(refused) == (1, ["outbox.vacuum_refused"])


async def test_other_failures_are_logged_and_retried_later() -> None:
    calls, events = await _three_due_vacuums_failing_with(OSError("connection lost"))
    assert (calls, events) == (3, ["outbox.vacuum_failed"] * 3)


async def test_close_passes_on_a_cancellation_of_its_caller() -> None:
    """The work loop cancelled while it closes (leadership lost) must stop, not carry on."""
    started, winding_down, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class _SlowToStopStore:
        async def vacuum_outbox(self) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                winding_down.set()
                await release.wait()  # a vacuum that takes a moment to stop
                raise

    clock = _Clock()
    vacuum = OutboxVacuum(_SlowToStopStore(), every_rows=1, min_interval_s=0, clock=clock)  # type: ignore[arg-type]
    vacuum.claimed(1)
    assert vacuum.running
    await started.wait()
    closing = asyncio.create_task(vacuum.close())
    await winding_down.wait()  # close() has cancelled the vacuum and waits for it
    closing.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert not vacuum.running
