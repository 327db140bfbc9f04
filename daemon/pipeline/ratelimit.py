"""The daemon-wide messages-per-second budget towards Realtime, as a rolling window.

Supabase counts every element of a batch as one event, so a permit is one message. A token bucket
lets `capacity + rate` messages into some rolling second (a full bucket, then a second of refill);
the budget promises never to exceed the rate in *any* window, so the limiter counts what it
admitted during the last window instead. A request's messages reach subscribers while it is in
flight, so a request counts from its admission until it completed (`settle`): a large POST that
took 300 ms must not let the next window's messages land within the same second as its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable


class RollingWindowLimiter:
    """Admits at most `capacity` messages in any `window_s` seconds; `acquire` waits for room."""

    def __init__(
        self,
        rate: float,
        *,
        max_per_request: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or max_per_request < 1:
            raise ValueError("rate must be > 0 and max_per_request >= 1")
        self.rate = rate
        # A rate below 1/s needs a longer window to admit one whole message.
        self.window_s = max(1.0, 1.0 / rate)
        self.capacity = max(1, math.floor(rate * self.window_s + 1e-9))
        self.per_request = min(self.capacity, max_per_request)
        self._clock = clock
        self._admitted: deque[list[float]] = deque()  # [time, count]: settle() moves the time
        self._in_window = 0
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        while self._admitted and self._admitted[0][0] <= now - self.window_s:
            self._in_window -= int(self._admitted.popleft()[1])

    def available(self) -> int:
        self._expire(self._clock())
        return self.capacity - self._in_window

    def delay_for(self, n: int) -> float:
        """Seconds until `n` more messages fit in the window (0 when they already do)."""
        now = self._clock()
        self._expire(now)
        excess = self._in_window + n - self.capacity
        if excess <= 0:
            return 0.0
        freed = 0
        latest = now - self.window_s
        for stamp, count in self._admitted:  # settled stamps may be out of order: take the max
            freed += int(count)
            latest = max(latest, stamp)
            if freed >= excess:
                return latest + self.window_s - now
        return self.window_s  # n > capacity: never fits (acquire refuses it)

    def try_take(self, n: int) -> Admission | None:
        now = self._clock()
        self._expire(now)
        if self._in_window + n > self.capacity:
            return None
        entry = [now, float(n)]
        self._admitted.append(entry)
        self._in_window += n
        return Admission(entry)

    def settle(self, admission: Admission) -> None:
        """The request is over: its messages count from now on (never earlier than admitted)."""
        admission.entry[0] = max(admission.entry[0], self._clock())

    async def acquire(self, n: int, *, until: asyncio.Event | None = None) -> Admission | None:
        """Admit `n` messages, waiting for room (callers are served one at a time); None when
        `until` is set first (nothing admitted)."""
        if n > self.capacity:
            raise ValueError(f"cannot admit {n} messages: the window holds {self.capacity}")
        until = until or asyncio.Event()
        async with self._lock:
            while not until.is_set():
                if (admission := self.try_take(n)) is not None:
                    return admission
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(self.delay_for(n), 0.001)):
                        await until.wait()
            return None


class Admission:
    """One admitted request's entry in the window (`RollingWindowLimiter.settle` moves it)."""

    __slots__ = ("entry",)

    def __init__(self, entry: list[float]) -> None:
        self.entry = entry
