"""Unit tests of the busy loop's pause between stagings (PipelineService._linger_s)."""

from __future__ import annotations

import pytest

from daemon.config import DaemonSettings, Settings
from daemon.pipeline.service import PipelineService


def service(**daemon: float) -> PipelineService:
    return PipelineService(Settings(daemon=DaemonSettings(**daemon)), dsn="postgresql:///unused")


@pytest.mark.parametrize("claimed", [0, 1, 6, 13])
def test_a_light_load_keeps_the_busy_poll_period(claimed: int) -> None:
    assert service(busy_poll_interval_ms=2.0)._linger_s(claimed) == pytest.approx(0.002)


def test_the_pause_grows_with_the_rows_claimed_up_to_the_cap() -> None:
    s = service(busy_poll_interval_ms=2.0, max_linger_ms=50.0)
    pauses = [s._linger_s(n) for n in (20, 100, 200, 400, 5_000)]
    assert pauses == sorted(pauses)
    assert 0.002 < pauses[0] < pauses[1] < pauses[2]
    assert pauses[-2:] == [pytest.approx(0.05)] * 2


def test_max_linger_zero_turns_the_growth_off() -> None:
    s = service(busy_poll_interval_ms=2.0, max_linger_ms=0.0)
    assert s._linger_s(5_000) == pytest.approx(0.002)


def test_the_pause_is_at_least_the_last_staging_times_the_factor() -> None:
    s = service(busy_poll_interval_ms=2.0, max_linger_ms=50.0, staging_pause_factor=1.5)
    assert s._linger_s(1, took_s=0.001) == pytest.approx(0.002)  # fast: the busy poll period
    assert s._linger_s(1, took_s=0.010) == pytest.approx(0.015)  # slow: it backs off
    assert s._linger_s(1, took_s=0.200) == pytest.approx(0.05)  # never beyond the cap
    assert s._linger_s(300, took_s=0.010) == pytest.approx(0.045)  # the larger of the two


def test_a_zero_pause_factor_ignores_how_long_staging_took() -> None:
    s = service(busy_poll_interval_ms=2.0, staging_pause_factor=0.0)
    assert s._linger_s(1, took_s=0.040) == pytest.approx(0.002)
