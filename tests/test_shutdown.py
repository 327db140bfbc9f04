"""The bound on a clean stop: how daemon.shutdown_timeout_s is split, and the last-resort exit."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from daemon.pipeline.service import shutdown_schedule
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
