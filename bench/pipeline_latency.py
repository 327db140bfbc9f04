"""Benchmark 1: commit -> subscriber latency at a steady 1,000 submissions/s.

Eight writer connections insert submissions on a paced global schedule, every key once, spread
over all channels; one teacher per channel is subscribed with realtime-py. Per cell: the time it
arrived at its subscriber minus the time the writer's commit returned (`time.time()` in both
processes, one host). The first second is warm-up and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bench.common import (
    BenchResult,
    Cluster,
    CpuAccount,
    PeakRss,
    Row,
    Spread,
    cpu_busy,
    hub_and_daemon,
    max_in_window,
    percentile,
    progress,
)
from bench.pipeline_load import Subscribers, SubscriberSpec, run_writers

NAME = "pipeline_latency"
TITLE = "1. commit -> subscriber latency at a steady 1,000 submissions/s"
WARMUP_S = 1.0
DRAIN_DEADLINE_S = 15.0


@dataclass(frozen=True)
class Options:
    rate: float = 1000.0
    duration_s: float = 20.0
    connections: int = 8
    budget: float = 2500.0  # messages/s: Supabase Pro without spend cap / Team


async def run_once(cluster: Cluster, options: Options) -> dict[str, Any]:
    school = cluster.school
    assert school is not None
    async with (
        cluster.database() as dsn,
        hub_and_daemon(dsn, budget=options.budget, daemon_env=cluster.knobs.daemon_env) as stack,
    ):
        assert stack.daemon is not None
        channels = stack.teacher_channels(school)
        subscribers = Subscribers(
            SubscriberSpec(stack.realtime_url, channels, "keys", client=cluster.knobs.subscriber)
        )
        await subscribers.start()
        cpu_before = stack.daemon.cpu_seconds()
        with PeakRss(stack.daemon.proc.pid) as rss, cpu_busy() as busy, CpuAccount() as cpu:
            writers = await run_writers(
                dsn,
                school.keys,
                connections=options.connections,
                processes=1,
                rate=options.rate,
                duration_s=options.duration_s,
            )
            delivered = await subscribers.wait_for(len(writers.commits), DRAIN_DEADLINE_S)
        daemon_cpu = stack.daemon.cpu_seconds() - cpu_before
        received = await subscribers.finish()
    if writers.errors:
        raise RuntimeError(f"writer errors: {writers.errors[:3]}")
    labels = {
        stack.daemon.proc.pid: "daemon",
        stack.hub.proc.pid: "hub",
        received.pid: "subscribers",
    }
    labels.update({pid: "writers" for pid in writers.pids})
    measured = [c for c in writers.commits if c[2] >= writers.started + WARMUP_S]
    latencies = [
        (received.cells[(a, p)] - t) * 1000 for a, p, t in measured if (a, p) in received.cells
    ]
    span = writers.finished - writers.started
    messages = [m for m in received.messages if m[2] != "result_refresh"]
    return {
        "commits": len(writers.commits),
        "submit_rate": len(writers.commits) / span if span > 0 else 0.0,
        "max_lateness_ms": writers.max_lateness_s * 1000,
        "all_delivered": delivered,
        "missing": len(measured) - len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "messages": len(received.messages),
        "cells_per_message": received.cell_deliveries / max(1, len(messages)),
        "peak_messages_per_s": max_in_window([m[0] for m in received.messages]),
        "refreshes": received.refreshes,
        "seq_gaps": received.seq_gaps,
        "daemon_cpu_share": daemon_cpu / span if span > 0 else float("nan"),
        "daemon_peak_rss_mb": rss.peak / 2**20,
        "cpu_busy": busy(),
        "cpu_by_process": cpu.by_label(labels, cluster.postmaster),
        "busiest_others": cpu.top_others(labels, cluster.postmaster),
    }


async def run(cluster: Cluster, *, runs: int, quick: bool) -> BenchResult:
    options = Options(duration_s=4.0) if quick else Options()
    if cluster.knobs.latency_rate is not None:
        options = replace(options, rate=cluster.knobs.latency_rate)
    result = BenchResult(TITLE)
    for i in range(runs):
        progress(
            f"{NAME}: run {i + 1}/{runs}: {options.rate:.0f} submissions/s for "
            f"{options.duration_s:.0f} s over {options.connections} connections"
        )
        raw = await run_once(cluster, options)
        result.raw.append(raw)
        progress(
            f"{NAME}: p50 {raw['p50_ms']:.2f} ms, p99 {raw['p99_ms']:.2f} ms, "
            f"{raw['submit_rate']:.0f}/s submitted, missing {raw['missing']}"
        )

    def spread(key: str) -> Spread:
        return Spread(tuple(float(r[key]) for r in result.raw))

    p50, p99 = spread("p50_ms"), spread("p99_ms")
    complete = all(r["missing"] == 0 and r["seq_gaps"] == 0 for r in result.raw)
    result.add(Row("latency p50", p50, "ms", "<= 5", p50.median <= 5 and complete))
    result.add(Row("latency p99", p99, "ms", "<= 25", p99.median <= 25 and complete))
    result.add(Row("latency p90", spread("p90_ms"), "ms"))
    result.add(Row("latency max", spread("max_ms"), "ms"))
    result.add(Row("submissions committed", spread("submit_rate"), "/s", digits=0))
    result.add(Row("writer max lateness vs schedule", spread("max_lateness_ms"), "ms"))
    result.add(Row("cells not delivered", spread("missing"), "cells", "0", complete, digits=0))
    result.add(Row("seq gaps seen by subscribers", spread("seq_gaps"), "", "0", complete, 0))
    result.add(
        Row("messages in the busiest rolling second", spread("peak_messages_per_s"), "", digits=0)
    )
    result.add(Row("cells per message", spread("cells_per_message"), ""))
    result.add(Row("daemon CPU (share of one core)", spread("daemon_cpu_share"), ""))
    result.add(Row("daemon peak RSS", spread("daemon_peak_rss_mb"), "MiB", digits=1))
    result.add(Row("CPU busy (both cores)", spread("cpu_busy"), ""))
    channel_count = len(cluster.school.channels) if cluster.school else 0
    result.notes.append(
        f"{options.rate:.0f} submissions/s paced over {options.connections} connections for "
        f"{options.duration_s:.0f} s, every key once over {channel_count} "
        f"channels; publish budget {options.budget:.0f} messages/s (Supabase Pro without spend "
        "cap / Team: 2,500); first second left out as warm-up"
    )
    return result
