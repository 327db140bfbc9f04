"""The rolling-window limiter (pure: a fake clock drives it)."""

from __future__ import annotations

import asyncio

import pytest

from daemon.pipeline.ratelimit import RollingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _greedy(
    limiter: RollingWindowLimiter, clock: Clock, seconds: float, step: float
) -> list[float]:
    """Take one message whenever allowed; return the admission times."""
    times: list[float] = []
    end = clock.now + seconds
    while clock.now < end:
        while limiter.try_take(1):
            times.append(clock.now)
        clock.now += step
    return times


@pytest.mark.parametrize("rate", [1, 7, 40, 100])
def test_no_rolling_second_ever_exceeds_the_rate(rate: int) -> None:
    clock = Clock()
    limiter = RollingWindowLimiter(rate, max_per_request=50, clock=clock)
    times = _greedy(limiter, clock, seconds=10, step=0.003)
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= rate
    assert len(times) >= rate * 9  # and it does use the budget


def test_a_burst_after_idle_time_gets_one_window_not_more() -> None:
    clock = Clock()
    limiter = RollingWindowLimiter(40, max_per_request=50, clock=clock)
    clock.now += 3600
    assert limiter.available() == 40
    assert limiter.try_take(40)
    assert not limiter.try_take(1)
    assert limiter.delay_for(1) == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.delay_for(1) == pytest.approx(0.5)


def test_room_frees_in_admission_order() -> None:
    clock = Clock()
    limiter = RollingWindowLimiter(10, max_per_request=10, clock=clock)
    assert limiter.try_take(4)
    clock.now += 0.25
    assert limiter.try_take(6)
    assert limiter.delay_for(3) == pytest.approx(0.75)  # the first 4 leave the window at +1.0
    assert limiter.delay_for(5) == pytest.approx(1.0)  # needs the second admission too


def test_slow_rates_use_a_longer_window() -> None:
    clock = Clock()
    limiter = RollingWindowLimiter(0.5, max_per_request=50, clock=clock)
    assert (limiter.window_s, limiter.capacity, limiter.per_request) == (2.0, 1, 1)
    assert limiter.try_take(1)
    clock.now += 1.5
    assert not limiter.try_take(1)
    clock.now += 0.5
    assert limiter.try_take(1)


@pytest.mark.parametrize(
    ("rate", "per_request", "expected"),
    [(40, 50, 40), (100, 50, 50), (1000, 1, 1), (2.7, 10, 2)],
)
def test_a_request_never_carries_more_than_one_window(
    rate: float, per_request: int, expected: int
) -> None:
    assert RollingWindowLimiter(rate, max_per_request=per_request).per_request == expected


async def test_acquire_refuses_more_than_the_window_holds() -> None:
    limiter = RollingWindowLimiter(5, max_per_request=5)
    with pytest.raises(ValueError, match="window holds 5"):
        await limiter.acquire(6)


async def test_acquire_waits_for_room() -> None:
    limiter = RollingWindowLimiter(1000, max_per_request=1000)
    await limiter.acquire(1000)
    assert limiter.available() == 0
    await limiter.acquire(1)  # returns once the first admission leaves the window
    assert limiter.available() < 1000


async def test_a_wait_for_room_ends_when_the_event_is_set() -> None:
    limiter = RollingWindowLimiter(1, max_per_request=1)  # the next room: a second from now
    assert await limiter.acquire(1) is not None
    until = asyncio.Event()
    waiting = asyncio.create_task(limiter.acquire(1, until=until))
    until.set()
    async with asyncio.timeout(0.5):
        assert await waiting is None
    assert limiter.available() == 0  # nothing more admitted


def test_a_request_counts_until_it_completed() -> None:
    clock = Clock()
    limiter = RollingWindowLimiter(10, max_per_request=10, clock=clock)
    admission = limiter.try_take(10)
    assert admission is not None
    clock.now += 0.3  # the POST took 300 ms: its messages reached subscribers until now
    limiter.settle(admission)
    clock.now += 0.8  # 1.1 s after the admission, but only 0.8 s after the request completed
    assert limiter.try_take(1) is None
    assert limiter.delay_for(1) == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.try_take(10) is not None
