"""A handoff of at most one item between two tasks, in order (the stager and the publisher).

Unlike asyncio.Queue, the producer can wait for room *before* it produces (so that it stages as
late, and so as fresh, as possible), and wait until the consumer has finished everything (before
the daemon goes idle). Either side closes it when it stops; every wait then returns.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._in_progress = 0  # taken by the consumer and not yet done
        self._closed = False
        self._changed = asyncio.Condition()

    async def wait_for_room(self) -> bool:
        """Until nothing is waiting to be taken; False when closed."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or not self._items)
            return not self._closed

    async def wait_drained(self) -> bool:
        """Until the consumer has finished everything put; False when closed."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._closed or not (self._items or self._in_progress)
            )
            return not self._closed

    async def put(self, item: T) -> None:
        async with self._changed:
            if self._closed:
                raise RuntimeError("the handoff is closed")
            self._items.append(item)
            self._changed.notify_all()

    async def get(self) -> T | None:
        """The next item in put order; None once closed and empty."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or bool(self._items))
            if not self._items:
                return None
            self._in_progress += 1
            self._changed.notify_all()
            return self._items.popleft()

    async def done(self) -> None:
        async with self._changed:
            self._in_progress -= 1
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
