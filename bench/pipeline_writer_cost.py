"""Benchmark 3: what the triggers (and a running daemon) cost the app's writers.

Insert throughput of one-row autocommit transactions (synchronous_commit on), flat out for a
fixed time, at 1 and at 8 concurrent writer connections: with the triggers installed and the hub
and daemon running (publishing everything), divided by the same load on a database whose
realtime triggers were dropped (no daemon: nothing to do).

Each run measures every arm twice, in mirrored order (without, triggers only, with, with,
triggers only, without), and takes each arm's mean: this VM's insert rate drifts by 15-40 %
between consecutive 6 s arms of the very same load (bench/RESULTS.md, run S), and the mirror
cancels a drift that is steady over the run while the pair halves the weight of a jump.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import asyncpg

from bench.common import (
    BenchResult,
    Cluster,
    Row,
    Spread,
    Stack,
    hub_and_daemon,
    progress,
    set_doorbell,
    sql,
)
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


Arm = Literal["without", "triggers_only", "with"]
ARMS: dict[Arm, str] = {
    "without": "no triggers",
    "triggers_only": "triggers, no daemon (doorbell disarmed)",
    "with": "triggers + daemon",
}


@contextlib.asynccontextmanager
async def _triggers_only(dsn: str) -> AsyncIterator[None]:
    """Decomposes the cost: the triggers' own work, without NOTIFY and without the daemon."""
    await set_doorbell(dsn, False)
    yield


async def _rate(cluster: Cluster, options: Options, *, writers: int, arm: Arm) -> float:
    school = cluster.school
    assert school is not None
    async with cluster.database() as dsn:
        setup: contextlib.AbstractAsyncContextManager[Stack | None]
        if arm == "with":
            setup = hub_and_daemon(dsn, budget=options.budget, daemon_env=cluster.knobs.daemon_env)
        elif arm == "triggers_only":
            setup = _triggers_only(dsn)
        else:
            setup = _no_pipeline(dsn)
        async with setup:
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
            for slot, arm in enumerate((*ARMS, *reversed(ARMS))):
                half = 1 + slot // len(ARMS)
                progress(f"{NAME}: run {i + 1}/{runs}: {writers} writer(s), {ARMS[arm]} ({half}/2)")
                rate = await _rate(cluster, options, writers=writers, arm=arm)
                raw[f"{writers}_{arm}_{half}"] = rate
            for arm in ARMS:
                pair = (raw[f"{writers}_{arm}_1"], raw[f"{writers}_{arm}_2"])
                raw[f"{writers}_{arm}"] = sum(pair) / 2
            raw[f"{writers}_ratio"] = raw[f"{writers}_with"] / raw[f"{writers}_without"]
            raw[f"{writers}_triggers_ratio"] = (
                raw[f"{writers}_triggers_only"] / raw[f"{writers}_without"]
            )
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
                f"{writers} writer(s): triggers only (no daemon, no NOTIFY) / without",
                spread(f"{writers}_triggers_ratio"),
                "",
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
        f"flat out for {options.duration_s:.0f} s per arm, each arm twice per run in mirrored "
        "order (mean of the two), one insert per autocommit transaction, "
        "synchronous_commit on; 8 writers = 2 processes x 4 connections; with triggers the hub "
        f"and the daemon run (budget {options.budget:.0f} messages/s, no subscribers)"
    )
    return result
