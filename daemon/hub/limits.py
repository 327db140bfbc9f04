"""Tenant limits as Realtime applies them: rolling averages over a window, sizes, counts.

Realtime keeps events/s and joins/s as a rolling average over 60 s (12 buckets of 5 s) and trips
when the average reaches the limit; here the window is configurable (`hub.rate_window_s`) so tests
can trip a limit without sending a minute's worth of traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from daemon.config import HubSettings

_BUCKETS = 12


class RollingRate:
    """Events per second averaged over the last `window_s` seconds (bucketed)."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._width = window_s / _BUCKETS
        self._clock = clock
        self._counts = [0] * _BUCKETS
        self._current = int(clock() / self._width)

    def _advance(self) -> int:
        index = int(self._clock() / self._width)
        gap = index - self._current
        if gap > 0:
            for step in range(1, min(gap, _BUCKETS) + 1):
                self._counts[(self._current + step) % _BUCKETS] = 0
            self._current = index
        return index % _BUCKETS

    def add(self, count: int = 1) -> None:
        self._counts[self._advance()] += count

    def average(self) -> float:
        self._advance()
        return sum(self._counts) / self._window


class Limits:
    """The hub's tenant limits; 0 turns a rate limit off."""

    def __init__(self, settings: HubSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.events = RollingRate(settings.rate_window_s, clock)
        self.joins = RollingRate(settings.rate_window_s, clock)
        self.max_payload_bytes = settings.max_payload_kb * 1000 + 500

    @property
    def max_events(self) -> float:
        return self.settings.max_events_per_second

    def events_tripped(self) -> bool:
        return self.max_events > 0 and self.events.average() >= self.max_events

    def joins_tripped(self) -> bool:
        limit = self.settings.max_joins_per_second
        return limit > 0 and self.joins.average() >= limit

    def too_many_users(self, users: int) -> bool:
        limit = self.settings.max_concurrent_users
        return limit > 0 and users >= limit

    def payload_too_large(self, size: int) -> bool:
        """Realtime compares the payload's term size with kb*1000+500; JSON size stands in."""
        return size > self.max_payload_bytes
