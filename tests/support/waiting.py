"""Waiting on conditions with a deadline (never a bare sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    deadline_s: float = 10.0,
    interval_s: float = 0.01,
    what: str = "condition",
) -> None:
    """Poll `predicate` until it holds; fail the test with `what` when the deadline passes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= end:
            raise AssertionError(f"{what} did not happen within {deadline_s}s")
        await asyncio.sleep(interval_s)
