"""Benchmark 3: what the triggers (and a running daemon) cost the app's writers.

Insert throughput of one-row autocommit transactions (synchronous_commit on), flat out for a
fixed time, at 1 and at 8 concurrent writer connections: with the triggers installed and the hub
and daemon running (publishing everything), divided by the same load on a database whose
realtime triggers were dropped (no daemon: nothing to do).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from bench.common import BenchResult, Cluster, Row, Spread, Stack, hub_and_daemon, progress, sql
from bench.pipeline_load import run_writers

NAME = "pipeline_writer_cost"
TITLE = "3. writer cost: inserts/s with triggers + daemon / without triggers"
TARGETS = {1: 0.85, 8: 0.7}


@dataclass(frozen=True)
class Options:
    duration_s: float = 6.0
    budget: float = 2500.0


@contextlib.asynccontextmanager
async def _no_pipeline(dsn: str) -> AsyncIterator[None]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql("drop_triggers"))
    finally:
        await conn.close()
    yield


async def _rate(cluster: Cluster, options: Options, *, writers: int, triggers: bool) -> float:
    school = cluster.school
    assert school is not None
    async with cluster.database() as dsn:
        arm: contextlib.AbstractAsyncContextManager[Stack | None] = (
            hub_and_daemon(dsn, budget=options.budget) if triggers else _no_pipeline(dsn)
        )
        async with arm:
            result = await run_writers(
                dsn,
                school.keys,
                connections=writers,
                processes=1 if writers == 1 else 2,
                rate=None,
                duration_s=options.duration_s,
            )
    if result.errors:
        raise RuntimeError(f"writer errors: {result.errors[:3]}")
    return result.rate


async def run(cluster: Cluster, *, runs: int, quick: bool) -> BenchResult:
    options = Options(duration_s=2.0) if quick else Options()
    result = BenchResult(TITLE)
    for i in range(runs):
        raw: dict[str, float] = {}
        for writers in TARGETS:
            for triggers in (False, True):
                arm = "triggers+daemon" if triggers else "no triggers"
                progress(f"{NAME}: run {i + 1}/{runs}: {writers} writer(s), {arm}")
                rate = await _rate(cluster, options, writers=writers, triggers=triggers)
                raw[f"{writers}_{'with' if triggers else 'without'}"] = rate
            raw[f"{writers}_ratio"] = raw[f"{writers}_with"] / raw[f"{writers}_without"]
            progress(
                f"{NAME}: {writers} writer(s): {raw[f'{writers}_without']:.0f}/s without, "
                f"{raw[f'{writers}_with']:.0f}/s with; ratio {raw[f'{writers}_ratio']:.2f}"
            )
        result.raw.append(raw)

    def spread(key: str) -> Spread:
        return Spread(tuple(float(r[key]) for r in result.raw))

    for writers, target in TARGETS.items():
        ratio = spread(f"{writers}_ratio")
        result.add(
            Row(
                f"{writers} writer(s): with / without",
                ratio,
                "",
                f">= {target}",
                ratio.median >= target,
            )
        )
        result.add(
            Row(
                f"{writers} writer(s): inserts/s without triggers",
                spread(f"{writers}_without"),
                "/s",
                digits=0,
            )
        )
        result.add(
            Row(
                f"{writers} writer(s): inserts/s with triggers + daemon",
                spread(f"{writers}_with"),
                "/s",
                digits=0,
            )
        )
    result.notes.append(
        f"flat out for {options.duration_s:.0f} s per arm, one insert per autocommit transaction, "
        "synchronous_commit on; 8 writers = 2 processes x 4 connections; with triggers the hub "
        f"and the daemon run (budget {options.budget:.0f} messages/s, no subscribers)"
    )
    return result
