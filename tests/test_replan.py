"""The work connection's plan refresh: when it is due, and what it does to a cached plan."""

from __future__ import annotations

import asyncpg
import pytest

from daemon.pipeline.replan import PlanRefresh
from daemon.pipeline.store import Store
from tests.fixtures.pipeline import School

_PROBE = """
prepare probe (text[], uuid[]) as
select s.state::text from results_realtime.cell_state_v2($1, $2) as s
"""
_EXPLAIN = "explain (costs off) execute probe ('{A1}', '{00000000-0000-0000-0000-000000000000}')"
_GROW = """
insert into public.submissions (activity_id, user_id, body)
select 'A1', gen_random_uuid(), '{"text": "x"}' from generate_series(1, 20000)
"""


def test_refresh_is_due_each_time_the_claimed_rows_have_doubled() -> None:
    refresh = PlanRefresh(first_rows=100, max_gap_rows=1_000)
    due = [n for n in range(1, 3_001) if refresh.claimed(1)]
    assert due == [100, 200, 400, 800, 1_600, 2_600]
    big = PlanRefresh(first_rows=100)
    assert big.claimed(5_000) is True  # one huge claim: due at once
    assert big.claimed(4_999) is False
    assert big.claimed(1) is True


def test_refresh_refuses_a_nonsense_schedule() -> None:
    with pytest.raises(ValueError, match="first_rows"):
        PlanRefresh(first_rows=0)
    with pytest.raises(ValueError, match="max_gap_rows"):
        PlanRefresh(first_rows=10, max_gap_rows=5)


async def test_a_refresh_replans_a_generic_plan_made_on_an_empty_table(
    school: School, store: Store, database_url: str
) -> None:
    work = await asyncpg.connect(
        database_url, server_settings={"plan_cache_mode": "force_generic_plan"}
    )
    try:
        await school.conn.execute("vacuum analyze public.submissions")  # known to be empty
        await work.execute(_PROBE)
        assert "Seq Scan on submissions" in _plan(await work.fetch(_EXPLAIN))
        await school.conn.execute(_GROW)  # another session: the cached plan is not invalidated
        assert "Seq Scan on submissions" in _plan(await work.fetch(_EXPLAIN))
        await store.refresh_plans(work)
        replanned = _plan(await work.fetch(_EXPLAIN))
        assert "Seq Scan on submissions" not in replanned
        assert "Index Scan using submissions_activity_id_user_id_key" in replanned
    finally:
        await work.close()


def _plan(rows: list[asyncpg.Record]) -> str:
    return "\n".join(row[0] for row in rows)
