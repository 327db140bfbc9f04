"""Benchmark 4: the AI worker marks 10,000 submissions in one transaction.

Starting state: 10,000 unmarked submissions spread over every channel (written before the
daemon starts; their outbox rows are cleared, so only the burst is measured). One UPDATE sets
every AI score in one transaction; the subscribers (one per channel) record when each cell first
arrives with that score. Measured: commit -> last cell in its final state, the most messages in
any rolling second at the subscribers, and the daemon process's peak RSS (psutil, every 10 ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from bench.common import (
    BenchResult,
    Cluster,
    CpuAccount,
    PeakRss,
    Row,
    Spread,
    hub_and_daemon,
    max_in_window,
    progress,
    sql,
)
from bench.pipeline_load import Subscribers, SubscriberSpec

NAME = "pipeline_burst"
TITLE = "4. burst: one transaction sets the AI score of 10,000 submissions"
AI_SCORE = 7.5
DEADLINE_S = 60.0
TARGET_S = 3.0
TARGET_RSS_MB = 100.0


@dataclass(frozen=True)
class Options:
    cells: int = 10_000
    budget: float = 40.0  # config.toml's default (safe for Supabase Free: 100 events/s)


async def run_once(cluster: Cluster, options: Options) -> dict[str, Any]:
    school = cluster.school
    assert school is not None
    keys = school.keys[: options.cells]
    async with cluster.database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql("burst_seed"), [a for a, _ in keys], [p for _, p in keys])
            await conn.execute(sql("clear_outbox"))
            await conn.execute("vacuum analyze")
            async with hub_and_daemon(
                dsn, budget=options.budget, daemon_env=cluster.knobs.daemon_env
            ) as stack:
                assert stack.daemon is not None
                channels = stack.teacher_channels(school)
                subscribers = Subscribers(
                    SubscriberSpec(
                        stack.realtime_url,
                        channels,
                        "ai_score",
                        AI_SCORE,
                        client=cluster.knobs.subscriber,
                    )
                )
                await subscribers.start()
                with PeakRss(stack.daemon.proc.pid) as rss, CpuAccount() as cpu:
                    status = await conn.execute(sql("burst_mark"), AI_SCORE)
                    committed = time.time()
                    done = await subscribers.wait_for(len(keys), DEADLINE_S)
                received = await subscribers.finish()
                labels = {stack.daemon.proc.pid: "daemon", stack.hub.proc.pid: "hub"}
        finally:
            await conn.close()
    labels[received.pid] = "subscribers"
    if status != f"UPDATE {len(keys)}":
        raise RuntimeError(f"the burst updated {status}, expected {len(keys)} rows")
    final = [received.cells[k] for k in keys if k in received.cells]
    times = [m[0] for m in received.messages]
    return {
        "final_state_s": (max(final) - committed) if done else float("inf"),
        "first_cell_s": (min(final) - committed) if final else float("nan"),
        "cells_final": len(final),
        "messages": len(received.messages),
        "peak_messages_per_s": max_in_window(times),
        "refreshes": received.refreshes,
        "seq_gaps": received.seq_gaps,
        "daemon_peak_rss_mb": rss.peak / 2**20,
        "cpu_by_process": cpu.by_label(labels, cluster.postmaster),
        "busiest_others": cpu.top_others(labels, cluster.postmaster),
    }


async def run(cluster: Cluster, *, runs: int, quick: bool) -> BenchResult:
    options = Options()
    if cluster.knobs.burst_budget is not None:
        options = replace(options, budget=cluster.knobs.burst_budget)
    result = BenchResult(TITLE)
    for i in range(runs):
        progress(
            f"{NAME}: run {i + 1}/{runs}: {options.cells} cells, budget {options.budget:.0f}/s"
        )
        raw = await run_once(cluster, options)
        result.raw.append(raw)
        progress(
            f"{NAME}: final state after {raw['final_state_s']:.2f} s, {raw['messages']} messages "
            f"(peak {raw['peak_messages_per_s']}/s), daemon RSS {raw['daemon_peak_rss_mb']:.1f} MiB"
        )

    def spread(key: str) -> Spread:
        return Spread(tuple(float(r[key]) for r in result.raw))

    final, peak, rss = (
        spread("final_state_s"),
        spread("peak_messages_per_s"),
        spread("daemon_peak_rss_mb"),
    )
    result.add(
        Row("commit -> every cell final", final, "s", f"<= {TARGET_S:g}", final.max <= TARGET_S)
    )
    result.add(
        Row(
            "messages in the busiest rolling second",
            peak,
            "",
            f"<= {options.budget:g}",
            peak.max <= options.budget,
            digits=0,
        )
    )
    result.add(
        Row("daemon peak RSS", rss, "MiB", f"<= {TARGET_RSS_MB:g}", rss.max <= TARGET_RSS_MB, 1)
    )
    result.add(Row("commit -> first cell", spread("first_cell_s"), "s"))
    result.add(Row("messages", spread("messages"), "", digits=0))
    result.add(Row("result_refresh messages", spread("refreshes"), "", digits=0))
    result.add(
        Row(
            "seq gaps seen by subscribers",
            spread("seq_gaps"),
            "",
            "0",
            all(r["seq_gaps"] == 0 for r in result.raw),
            0,
        )
    )
    result.notes.append(
        f"{options.cells} cells over {len(cluster.school.channels) if cluster.school else 0} "
        f"channels; publish budget {options.budget:g} messages/s (config.toml's default, below "
        "Supabase Free's 100/s); the verdicts use the worst run"
    )
    return result
