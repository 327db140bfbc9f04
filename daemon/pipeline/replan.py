"""When the work connection should plan its statements again.

The work connection runs generic plans (planning the inlined enrichment costs more than running
it for a few keys), and a generic plan is made once, from the tables' sizes at that moment. A
daemon that starts beside a small or empty `submissions` table (a new deployment, every benchmark
and test) plans a hash join over the whole table, and keeps scanning the table as it grows until
an ANALYZE invalidates the plan: autovacuum analyzes after 10 % growth, and looks at a database
once a minute. Measured (bench/RESULTS.md, run K): a staging of 16 keys against 12,000
submissions cost 2.3 ms of backend CPU with the plan made on an empty table, 0.4 ms after
`DISCARD PLANS`.

So the plans are refreshed whenever the rows claimed on the connection have doubled (1,000,
2,000, 4,000, ... and then at least every `max_gap_rows`): a table that grows with the outbox is
planned at most a factor two off its size, at the cost of a few replannings in a connection's life.
"""

from __future__ import annotations


class PlanRefresh:
    def __init__(self, *, first_rows: int = 1_000, max_gap_rows: int = 1_000_000) -> None:
        if first_rows < 1 or max_gap_rows < first_rows:
            raise ValueError("need 1 <= first_rows <= max_gap_rows")
        self._claimed = 0
        self._next = first_rows
        self._max_gap = max_gap_rows

    def claimed(self, rows: int) -> bool:
        """Count a staging's claimed rows; True when the plans should be made again now."""
        self._claimed += rows
        if self._claimed < self._next:
            return False
        self._next = self._claimed + min(self._claimed, self._max_gap)
        return True
