"""A token bucket: the daemon-wide messages-per-second budget towards Realtime.

Supabase counts every element of a batch as one event, so a token is one message. The bucket's
capacity is small (at most one second's worth) so that even a burst after a quiet minute never
exceeds the rate by much more than one second of budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class TokenBucket:
    """Refills continuously at `rate` tokens/s up to `capacity`; `acquire` waits for tokens."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> float:
        self._refill()
        return self._tokens

    def delay_for(self, n: int) -> float:
        """Seconds until `n` tokens are available (0 when they already are)."""
        self._refill()
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def try_take(self, n: int) -> bool:
        self._refill()
        if n <= self._tokens:
            self._tokens -= n
            return True
        return False

    async def acquire(self, n: int) -> None:
        """Take `n` tokens, waiting for them; callers are served one at a time (no starvation)."""
        if n > self.capacity:
            raise ValueError(f"cannot take {n} tokens from a bucket of capacity {self.capacity}")
        async with self._lock:
            while not self.try_take(n):  # noqa: ASYNC110 - the wait is computed, not polled
                await asyncio.sleep(self.delay_for(n))


def bucket_capacity(rate: float, max_per_request: int) -> float:
    """One second's worth of budget, but never below one message nor above one request."""
    return float(max(1, min(math.floor(rate) or 1, max_per_request)))
