"""Benchmark 2: sustained cells/s delivered, against the raw commit rate of the same inserts.

Baseline (no daemon, no hub): eight connections insert submissions flat out for a fixed time,
with the triggers installed, in both doorbell states a daemon can leave behind (armed: every
commit NOTIFYs, as after an idle daemon; disarmed: outbox only). Pipeline: the same writers with
the hub, the daemon and one subscriber per channel; cells/s = distinct cells received divided by
the time from the writers' start to the last cell's arrival (so a backlog counts against it).

Each baseline runs twice per run, before and after the pipeline (armed, disarmed, pipeline,
disarmed, armed), and counts as the mean of the two: on this VM the writers' rate drifts by tens
of percent within a minute, and the pipeline's ratio followed its single baseline's phase
(bench/RESULTS.md, runs S-V).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import (
    BenchResult,
    Cluster,
    CpuAccount,
    Row,
    Spread,
    hub_and_daemon,
    max_in_window,
    progress,
    set_doorbell,
)
from bench.pipeline_load import Subscribers, SubscriberSpec, run_writers

NAME = "pipeline_throughput"
TITLE = "2. sustained cells/s delivered / raw commit rate of the same inserts (no daemon)"
DRAIN_DEADLINE_S = 60.0
TARGET = 0.8


@dataclass(frozen=True)
class Options:
    duration_s: float = 8.0
    connections: int = 8
    processes: int = 2
    budget: float = 2500.0


async def _baseline(cluster: Cluster, options: Options, *, armed: bool) -> float:
    school = cluster.school
    assert school is not None
    async with cluster.database() as dsn:
        await set_doorbell(dsn, armed)
        writers = await run_writers(
            dsn,
            school.keys,
            connections=options.connections,
            processes=options.processes,
            rate=None,
            duration_s=options.duration_s,
        )
    if writers.errors:
        raise RuntimeError(f"writer errors: {writers.errors[:3]}")
    return writers.rate


async def _pipeline(cluster: Cluster, options: Options) -> dict[str, Any]:
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
        with CpuAccount() as cpu:
            writers = await run_writers(
                dsn,
                school.keys,
                connections=options.connections,
                processes=options.processes,
                rate=None,
                duration_s=options.duration_s,
            )
            drained = await subscribers.wait_for(len(writers.commits), DRAIN_DEADLINE_S)
        received = await subscribers.finish()
        labels = {stack.daemon.proc.pid: "daemon", stack.hub.proc.pid: "hub"}
    labels[received.pid] = "subscribers"
    labels.update({pid: "writers" for pid in writers.pids})
    if writers.errors:
        raise RuntimeError(f"writer errors: {writers.errors[:3]}")
    last = max(received.cells.values(), default=writers.started)
    span = last - writers.started
    return {
        "commit_rate": writers.rate,
        "commits": len(writers.commits),
        "cells": len(received.cells),
        "drained": drained,
        "delivered_rate": len(received.cells) / span if span > 0 else 0.0,
        "drain_after_writers_s": last - writers.finished,
        "peak_messages_per_s": max_in_window([m[0] for m in received.messages]),
        "cells_per_message": received.cell_deliveries / max(1, len(received.messages)),
        "refreshes": received.refreshes,
        "seq_gaps": received.seq_gaps,
        "cpu_by_process": cpu.by_label(labels, cluster.postmaster),
        "busiest_others": cpu.top_others(labels, cluster.postmaster),
    }


async def run(cluster: Cluster, *, runs: int, quick: bool) -> BenchResult:
    options = Options(duration_s=3.0) if quick else Options()
    result = BenchResult(TITLE)
    for i in range(runs):
        rates: dict[tuple[bool, int], float] = {}
        raw: dict[str, Any] = {}
        for step, doorbell in enumerate((True, False, None, False, True)):
            if doorbell is None:
                progress(f"{NAME}: run {i + 1}/{runs}: pipeline (hub, daemon, subscribers)")
                raw = await _pipeline(cluster, options)
                continue
            state = "armed" if doorbell else "disarmed"
            half = 1 + step // 3
            progress(
                f"{NAME}: run {i + 1}/{runs}: baseline, doorbell {state} (no daemon) ({half}/2)"
            )
            rates[(doorbell, half)] = await _baseline(cluster, options, armed=doorbell)
        for doorbell, state in ((True, "armed"), (False, "disarmed")):
            raw[f"baseline_{state}_1"] = rates[(doorbell, 1)]
            raw[f"baseline_{state}_2"] = rates[(doorbell, 2)]
            raw[f"baseline_{state}"] = (rates[(doorbell, 1)] + rates[(doorbell, 2)]) / 2
        armed, disarmed = raw["baseline_armed"], raw["baseline_disarmed"]
        raw["ratio"] = raw["delivered_rate"] / max(armed, disarmed)
        result.raw.append(raw)
        progress(
            f"{NAME}: baselines {armed:.0f}/s armed, {disarmed:.0f}/s disarmed; delivered "
            f"{raw['delivered_rate']:.0f} cells/s (writers {raw['commit_rate']:.0f}/s); "
            f"ratio {raw['ratio']:.2f}"
        )

    def spread(key: str) -> Spread:
        return Spread(tuple(float(r[key]) for r in result.raw))

    ratio = spread("ratio")
    complete = all(r["drained"] and r["seq_gaps"] == 0 for r in result.raw)
    result.add(Row("delivered / max(baseline)", ratio, "", f">= {TARGET}", ratio.median >= TARGET))
    result.add(Row("cells/s delivered", spread("delivered_rate"), "/s", digits=0))
    result.add(Row("baseline commits/s, doorbell armed", spread("baseline_armed"), "/s", digits=0))
    result.add(
        Row("baseline commits/s, doorbell disarmed", spread("baseline_disarmed"), "/s", digits=0)
    )
    result.add(Row("writers' commits/s with the pipeline", spread("commit_rate"), "/s", digits=0))
    result.add(Row("drain after the writers stopped", spread("drain_after_writers_s"), "s"))
    result.add(
        Row(
            "every cell delivered, no seq gap",
            Spread((1.0 if complete else 0.0,)),
            "",
            "yes",
            complete,
            0,
        )
    )
    result.add(
        Row("messages in the busiest rolling second", spread("peak_messages_per_s"), "", digits=0)
    )
    result.add(Row("cells per message", spread("cells_per_message"), ""))
    result.notes.append(
        f"{options.connections} writer connections in {options.processes} processes, flat out "
        f"for {options.duration_s:.0f} s, one autocommit insert per submission, synchronous_commit "
        f"on; publish budget {options.budget:.0f} messages/s; the ratio's denominator is the "
        "faster of the two baselines, each measured before and after the pipeline (mean)"
    )
    return result
