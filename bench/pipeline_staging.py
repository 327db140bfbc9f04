"""Diagnostic (no target): what one staging costs, by itself, at several batch sizes.

The daemon's `Store.stage_batch` on its own connection (the work loop's session settings and plan
refreshes), against a fresh clone of the seeded school: insert `keys` submissions, stage them,
and repeat.
Reported per staging and per key: wall time, and CPU time of the PostgreSQL backend that stages
(read from /proc) and of this process (the daemon's Python side of staging, plus the inserts).
CPU time is steadier than throughput on a shared machine, so this is the benchmark to compare
two versions of the staging path with. Linux only (it reads /proc/<pid>/stat).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import BenchResult, Cluster, Row, Spread, progress, sql
from daemon.pipeline.replan import PlanRefresh
from daemon.pipeline.store import Store

NAME = "pipeline_staging"
TITLE = "diagnostic: the cost of one staging (no target)"
_WORK_SESSION = {"plan_cache_mode": "force_generic_plan"}  # as daemon/pipeline/service.py


@dataclass(frozen=True)
class Options:
    batch_sizes: tuple[int, ...] = (1, 16, 256)
    keys: int = 12_000  # per batch size: stagings = keys // batch size


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_once(cluster: Cluster, options: Options) -> dict[str, Any]:
    school = cluster.school
    assert school is not None
    out: dict[str, Any] = {}
    offset = 0
    async with cluster.database() as dsn:
        writer = await asyncpg.connect(dsn)
        work = await asyncpg.connect(dsn, server_settings=_WORK_SESSION)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            await writer.execute(sql("set_doorbell"), False)
            insert = await writer.prepare(sql("insert_submission"))
            store = Store(pool, max_payload_bytes=250_000)
            backend = await work.fetchval("select pg_backend_pid()")
            replan = PlanRefresh()  # as the daemon's work loop
            for size in options.batch_sizes:
                stagings = max(1, options.keys // size)
                wall = backend_cpu = own_cpu = 0.0
                acks: list[int] = []
                for _ in range(stagings):
                    for activity, pupil in school.keys[offset : offset + size]:
                        await insert.fetch(activity, pupil, '{"text": "staging"}')
                    offset = (offset + size) % (len(school.keys) - size)
                    cpu_before, own_before = _cpu_s(backend), time.process_time()
                    started = time.perf_counter()
                    result = await store.stage_batch(size, conn=work, ack=acks)
                    wall += time.perf_counter() - started
                    backend_cpu += _cpu_s(backend) - cpu_before
                    own_cpu += time.process_time() - own_before
                    if result.claimed != size:
                        raise RuntimeError(f"staged {result.claimed} of {size} changes")
                    acks = [m.id for m in result.messages]  # as the daemon: acked next time
                    if replan.claimed(result.claimed):
                        await store.refresh_plans(work)
                out[str(size)] = {
                    "stagings": stagings,
                    "wall_us": wall / stagings * 1e6,
                    "backend_cpu_us": backend_cpu / stagings * 1e6,
                    "daemon_cpu_us": own_cpu / stagings * 1e6,
                }
        finally:
            await pool.close()
            await work.close()
            await writer.close()
    return out


async def run(cluster: Cluster, *, runs: int, quick: bool) -> BenchResult:
    options = Options(keys=2_000) if quick else Options()
    result = BenchResult(TITLE)
    for i in range(runs):
        progress(f"{NAME}: run {i + 1}/{runs}: batches of {options.batch_sizes} keys")
        raw = await run_once(cluster, options)
        result.raw.append(raw)
        progress(
            f"{NAME}: "
            + ", ".join(f"{k} keys: {v['backend_cpu_us']:.0f} us backend" for k, v in raw.items())
        )
    for size in options.batch_sizes:
        for key, label in (
            ("wall_us", "wall"),
            ("backend_cpu_us", "PostgreSQL backend CPU"),
            ("daemon_cpu_us", "daemon CPU"),
        ):
            values = tuple(float(r[str(size)][key]) for r in result.raw)
            result.add(Row(f"{size} keys: {label} per staging", Spread(values), "us", digits=0))
            per_key = tuple(v / size for v in values)
            if size > 1:
                result.add(Row(f"{size} keys: {label} per key", Spread(per_key), "us", digits=0))
    result.notes.append(
        "Store.stage_batch alone on an otherwise idle server (no daemon, no hub); CPU from "
        "/proc, so each figure is a mean over many stagings (the clock ticks every 10 ms)"
    )
    return result
