"""How long the busy work loop pauses between stagings.

Every staging has a fixed cost (a transaction that locks every table the enrichment reads, the
plans' start-up, a POST, a message per channel) that competes with the app's writers for CPU.
Under a light load the pause is the busy poll period, so a change waits a few milliseconds; it
grows a little with the rows claimed, and, when `staging_pause_factor` is set, with the time the
staging took (a cap on the share of its time the loop stages). That factor is off by default: on
a VM short of CPU, where a small staging takes 2-4 ms, a pause of half that was latency at 1,000
changes/s (p50 4.46 against 3.83 ms over 5 alternated pairs) and saved the daemon no CPU, since
the rows term already backs off as stagings grow (bench/RESULTS.md, run AL).

A write storm is different: once stagings have claimed at least `_STORM_ROWS` rows each, at a
rate of at least `_STORM_ROWS_PER_MS`, for `_STORM_AFTER_S`, the pause doubles with each
staging up to `daemon.max_linger_ms`, so that each staging's fixed cost is shared by hundreds of
cells. A classroom's pace never gets there, nor does the catch-up after a stall: the backlog
claimed after a stall arrived at the usual rate (it took the stall to gather), and writers that
fell behind their schedule (bench 'latency' on a VM that stalled for up to 1.3 s) catch up within
the second. A first version that doubled the pause from the second stormy staging on did not
wait for that, and latency p50 went from 7 to 18 ms (bench/RESULTS.md, run O).

Measured (bench/RESULTS.md, runs N-P, `python -m bench.compare_trees`): 8 flat-out writers,
19-25 against 34-54 µs of daemon CPU per cell and 23-28 against 35-45 µs of its backend's, with
`daemon.batch_size` 1,000 so that a storm's pause is one claim.
"""

from __future__ import annotations

from daemon.config import DaemonSettings

_LINGER_PER_ROW_MS = 0.15  # a light load: 1,000 changes/s (4-13 rows a staging) keeps the poll
_STORM_ROWS = 32
_STORM_ROWS_PER_MS = 2.0  # 2,000 changes/s
_STORM_AFTER_S = 1.0


class Linger:
    """The pause after each staging of one work loop (it remembers the storm so far)."""

    def __init__(self, settings: DaemonSettings) -> None:
        self._poll_ms = settings.busy_poll_interval_ms
        self._max_ms = max(settings.max_linger_ms, self._poll_ms)
        self._factor = settings.staging_pause_factor
        self._last_start: float | None = None
        self._storm_since: float | None = None
        self._storm_ms = 0.0

    def pause_s(self, claimed: int, *, started: float, took_s: float) -> float:
        """The pause after a staging that began at `started` (monotonic seconds)."""
        since_last_ms = None if self._last_start is None else (started - self._last_start) * 1000
        self._last_start = started
        light_ms = max(claimed * _LINGER_PER_ROW_MS, took_s * 1000 * self._factor)
        stormy = (
            since_last_ms is not None
            and claimed >= _STORM_ROWS
            and claimed >= _STORM_ROWS_PER_MS * since_last_ms
        )
        if not stormy:
            self._storm_since, self._storm_ms = None, 0.0
        elif self._storm_since is None:
            self._storm_since = started
        elif started - self._storm_since >= _STORM_AFTER_S:
            self._storm_ms = min(self._max_ms, max(light_ms, 2 * self._storm_ms))
        return max(self._poll_ms, min(self._max_ms, max(light_ms, self._storm_ms))) / 1000

    def idle(self) -> None:
        """The loop waited for the doorbell: whatever comes next starts afresh."""
        self._last_start = self._storm_since = None
        self._storm_ms = 0.0


class UnrungWait:
    """How long the idle work loop waits for the doorbell before it looks again.

    A writer whose trigger ran while the doorbell was disarmed and that commits after the daemon
    armed it rings nothing, so while such a transaction is open (store.outbox_writers_in_flight)
    the loop looks again after the busy poll period, then twice as long each round, up to the
    idle poll interval: an app's short transaction is found within a few milliseconds of its
    commit, a transaction open for minutes costs one look per `idle_poll_interval_s`.
    """

    def __init__(self, settings: DaemonSettings) -> None:
        self._idle_s = settings.idle_poll_interval_s
        self._first_s = min(settings.busy_poll_interval_ms / 1000, self._idle_s)
        self._next_s = self._first_s

    def wait_s(self, *, writers_in_flight: bool) -> float:
        if not writers_in_flight:
            self._next_s = self._first_s
            return self._idle_s
        wait, self._next_s = self._next_s, min(self._idle_s, self._next_s * 2)
        return wait
