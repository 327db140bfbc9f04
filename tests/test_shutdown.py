"""The bound on a clean stop: how daemon.shutdown_timeout_s is split, and the last-resort exit."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from daemon.pipeline.service import _raise_if_cancel_requested, shutdown_schedule
from daemon.pipeline.stop_watchdog import StopWatchdog


@pytest.mark.parametrize("timeout_s", [0.1, 1.0, 5.0, 10.0, 600.0])
def test_every_phase_ends_before_the_bound(timeout_s: float) -> None:
    schedule = shutdown_schedule(timeout_s)
    assert 0 < schedule.grace_s < schedule.closed_s < timeout_s
    # closing and exiting take at most 3 s of any bound; the rest goes to the batch in flight
    assert timeout_s - schedule.grace_s <= 3.0


async def test_a_stop_that_overruns_the_bound_exits_and_names_what_still_runs() -> None:
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()
    watchdog = StopWatchdog(
        0.05, exit=lambda code: loop.call_soon_threadsafe(exited.set_result, code)
    )
    stuck = asyncio.create_task(asyncio.Event().wait(), name="a-task-that-ignores-the-stop")
    try:
        with capture_logs() as logs:
            watchdog.arm(loop)
            code = await asyncio.wait_for(exited, 10)
    finally:
        watchdog.disarm()
        stuck.cancel()
    assert code == 0
    [event] = [e for e in logs if e["event"] == "daemon.stop_timeout"]
    assert any("a-task-that-ignores-the-stop" in task for task in event["tasks"])


async def test_a_failure_raised_in_place_of_a_cancellation_becomes_the_cancellation() -> None:
    """The work loop's case: cancelled (leadership lost) while its task group's child fails."""
    child_started = asyncio.Event()
    caught: list[type[BaseException]] = []

    async def connection_user() -> None:
        child_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionResetError("the connection went down with the leadership") from None

    async def work_loop() -> str:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(connection_user())
                await asyncio.Event().wait()
        except Exception as exc:
            caught.append(type(exc))
            _raise_if_cancel_requested(exc)
            return "took it for a failed cycle and went on"
        return "unreachable"

    loop = asyncio.create_task(work_loop())
    await child_started.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert caught == [ExceptionGroup]  # the child's error came instead of the CancelledError


async def test_a_failure_without_a_cancellation_is_left_alone() -> None:
    _raise_if_cancel_requested(RuntimeError("a failed cycle"))  # no cancellation: returns
