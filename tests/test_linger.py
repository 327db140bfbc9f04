"""Unit tests of the busy loop's pause between stagings (daemon/pipeline/linger.py)."""

from __future__ import annotations

import pytest

from daemon.config import DaemonSettings
from daemon.pipeline.linger import Linger, UnrungWait


def linger(**daemon: float) -> Linger:
    return Linger(DaemonSettings(**daemon))


def paced(lg: Linger, claims: list[int], *, every_ms: float, took_s: float = 0.0) -> list[float]:
    """The pauses after stagings that begin every `every_ms` and claim `claims` rows each."""
    return [lg.pause_s(n, started=i * every_ms / 1000, took_s=took_s) for i, n in enumerate(claims)]


@pytest.mark.parametrize("claimed", [0, 1, 6, 13])
def test_a_light_load_keeps_the_busy_poll_period(claimed: int) -> None:
    pauses = paced(linger(busy_poll_interval_ms=2.0), [claimed] * 20, every_ms=4.0)
    assert pauses == [pytest.approx(0.002)] * 20


def test_a_storm_that_lasts_a_second_doubles_the_pause_up_to_the_cap() -> None:
    lg = linger(busy_poll_interval_ms=2.0, max_linger_ms=100.0, staging_pause_factor=0.0)
    pauses = paced(lg, [200] * 26, every_ms=50.0)  # 4,000 rows/s
    assert pauses[:22] == [pytest.approx(0.03)] * 22  # 0.15 ms per row until it has lasted 1 s
    assert pauses[22:] == [pytest.approx(x) for x in (0.06, 0.1, 0.1, 0.1)]


def test_a_backlog_gathered_at_the_usual_rate_is_no_storm() -> None:
    """The rows claimed after a 200 ms stall at 1,000 rows/s: stage them and go on polling."""
    lg = linger(busy_poll_interval_ms=2.0, max_linger_ms=100.0, staging_pause_factor=0.0)
    lg.pause_s(4, started=0.0, took_s=0.0)
    assert lg.pause_s(200, started=0.2, took_s=0.0) == pytest.approx(0.03)  # 0.15 ms/row
    assert lg.pause_s(4, started=0.235, took_s=0.0) == pytest.approx(0.002)


def test_writers_catching_up_for_less_than_a_second_are_no_storm() -> None:
    """6,000 rows/s for 0.9 s, in stagings of 60 rows: the light rule only."""
    lg = linger(busy_poll_interval_ms=2.0, max_linger_ms=100.0, staging_pause_factor=0.0)
    assert paced(lg, [60] * 90 + [5], every_ms=10.0) == [pytest.approx(0.009)] * 90 + [
        pytest.approx(0.002)
    ]


def test_a_break_in_the_storm_starts_the_second_again() -> None:
    lg = linger(busy_poll_interval_ms=2.0, max_linger_ms=100.0, staging_pause_factor=0.0)
    claims = [200] * 15 + [10] + [200] * 15
    assert paced(lg, claims, every_ms=50.0)[-1] == pytest.approx(0.03)


def test_waiting_for_the_doorbell_forgets_the_storm() -> None:
    lg = linger(busy_poll_interval_ms=2.0, max_linger_ms=100.0, staging_pause_factor=0.0)
    paced(lg, [200] * 30, every_ms=50.0)
    lg.idle()
    assert lg.pause_s(200, started=5.0, took_s=0.0) == pytest.approx(0.03)
    assert lg.pause_s(200, started=5.05, took_s=0.0) == pytest.approx(0.03)


def test_max_linger_zero_turns_the_growth_off() -> None:
    pauses = paced(linger(busy_poll_interval_ms=2.0, max_linger_ms=0.0), [5_000] * 5, every_ms=1.0)
    assert pauses == [pytest.approx(0.002)] * 5


def test_the_pause_is_at_least_the_last_staging_times_the_factor() -> None:
    lg = linger(busy_poll_interval_ms=2.0, max_linger_ms=50.0, staging_pause_factor=1.5)
    assert lg.pause_s(1, started=0.0, took_s=0.001) == pytest.approx(0.002)  # fast: the poll
    assert lg.pause_s(1, started=1.0, took_s=0.010) == pytest.approx(0.015)  # slow: backs off
    assert lg.pause_s(1, started=2.0, took_s=0.200) == pytest.approx(0.05)  # never beyond the cap
    assert lg.pause_s(200, started=3.0, took_s=0.010) == pytest.approx(0.03)  # the larger of two


def test_a_zero_pause_factor_ignores_how_long_staging_took() -> None:
    lg = linger(busy_poll_interval_ms=2.0, staging_pause_factor=0.0)
    assert lg.pause_s(1, started=0.0, took_s=0.040) == pytest.approx(0.002)


def test_an_open_writer_shortens_the_idle_wait_then_backs_off_to_the_idle_poll() -> None:
    wait = UnrungWait(DaemonSettings(busy_poll_interval_ms=2.0, idle_poll_interval_s=0.02))
    assert wait.wait_s(writers_in_flight=False) == pytest.approx(0.02)
    waits = [wait.wait_s(writers_in_flight=True) for _ in range(6)]
    assert waits == [pytest.approx(x) for x in (0.002, 0.004, 0.008, 0.016, 0.02, 0.02)]
    assert wait.wait_s(writers_in_flight=False) == pytest.approx(0.02)
    assert wait.wait_s(writers_in_flight=True) == pytest.approx(0.002)  # started afresh
