"""The token bucket (pure: a fake clock drives it)."""

from __future__ import annotations

import pytest

from daemon.pipeline.ratelimit import TokenBucket, bucket_capacity


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_never_more_than_capacity_plus_rate_times_elapsed() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)
    taken = 0
    for _ in range(1000):  # 10 simulated seconds in 10 ms steps, greedy taker
        while bucket.try_take(1):
            taken += 1
        clock.now += 0.01
    assert taken <= 10 + 10 * 10
    assert taken >= 10 * 10


def test_idle_time_does_not_accumulate_beyond_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=5, capacity=5, clock=clock)
    clock.now += 3600
    assert bucket.available() == 5
    assert bucket.try_take(5)
    assert not bucket.try_take(1)
    assert bucket.delay_for(1) == pytest.approx(0.2)
    assert bucket.delay_for(5) == pytest.approx(1.0)


async def test_acquire_refuses_more_than_capacity() -> None:
    bucket = TokenBucket(rate=5, capacity=5)
    with pytest.raises(ValueError, match="capacity"):
        await bucket.acquire(6)


@pytest.mark.parametrize(
    ("rate", "per_request", "expected"),
    [(40, 50, 40), (100, 50, 50), (0.5, 50, 1), (1000, 1, 1), (2.7, 10, 2)],
)
def test_capacity_is_at_most_one_second_and_one_request(
    rate: float, per_request: int, expected: float
) -> None:
    assert bucket_capacity(rate, per_request) == expected
