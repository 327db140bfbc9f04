"""Alternate the 8-writer 'triggers + daemon' arm between code trees (or daemon settings).

    .venv/bin/python -m bench.compare_trees . /tmp/other-worktree --rounds 3
    .venv/bin/python -m bench.compare_trees . ".|RESULTS_REALTIME_DAEMON_BATCH_SIZE=1000"

Each round runs the triggers-only baseline (doorbell disarmed, no daemon), then for every TREE
the hub and the daemon of that checkout (`python -m daemon` with the tree as its working
directory) beside 8 flat-out writers. Printed per arm: the writers' commits/s and the CPU per
committed cell of the daemon, its work connection's backend and the hub. On a VM whose speed
drifts, the CPU per cell compares two versions far better than the writers' rate does; the
rounds alternate so that both see the same phases. A TREE may carry daemon environment
overrides after a '|', comma-separated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import psutil

import bench.common as common
from bench.common import Cluster, hub_and_daemon, progress, set_doorbell, sql
from bench.pipeline_load import run_writers
from daemon.log import configure_logging

_WORK_SESSION_NAME = "results-realtime work"


def _cpu_s(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return 0.0


def _parse_tree(spec: str) -> tuple[Path, dict[str, str]]:
    path, _, overrides = spec.partition("|")
    env = dict(kv.split("=", 1) for kv in overrides.split(",") if kv)
    return Path(path).resolve(), env


async def _work_backend(dsn: str) -> int:
    """The daemon's work connection (it may open a moment after the daemon reports healthy)."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(250):
            pid = await conn.fetchval(sql("work_backend"), _WORK_SESSION_NAME)
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    raise RuntimeError("the daemon's work connection did not appear in pg_stat_activity")


async def _arm(cluster: Cluster, tree: str | None, duration_s: float) -> str:
    school = cluster.school
    assert school is not None
    async with cluster.database() as dsn:
        await set_doorbell(dsn, False)
        if tree is None:
            writers = await run_writers(
                dsn, school.keys, connections=8, processes=2, rate=None, duration_s=duration_s
            )
            return f"{'triggers only':50s} {writers.rate:6.0f} commits/s"
        path, env = _parse_tree(tree)
        common.REPO = path  # the children run `python -m daemon` from there
        async with hub_and_daemon(dsn, budget=2500, daemon_env=env) as stack:
            assert stack.daemon is not None
            pids = {
                "daemon": stack.daemon.proc.pid,
                "backend": await _work_backend(dsn),
                "hub": stack.hub.proc.pid,
            }
            before = {name: _cpu_s(pid) for name, pid in pids.items()}
            writers = await run_writers(
                dsn, school.keys, connections=8, processes=2, rate=None, duration_s=duration_s
            )
            after = {name: _cpu_s(pid) for name, pid in pids.items()}
    cells = max(1, len(writers.commits))
    per_cell = "  ".join(
        f"{name} {(after[name] - before[name]) / cells * 1e6:5.1f} us/cell" for name in pids
    )
    return f"{tree:50s} {writers.rate:6.0f} commits/s  {per_cell}"


async def main(trees: Sequence[str], rounds: int, duration_s: float) -> None:
    configure_logging(level="warning")  # stdout carries one line per arm
    cluster = Cluster()
    await cluster.start()
    try:
        for i in range(rounds):
            progress(f"round {i + 1}/{rounds}")
            for tree in (None, *trees):
                print(await _arm(cluster, tree, duration_s), flush=True)
    finally:
        await cluster.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare_trees",
        description="Alternate the 8-writer 'triggers + daemon' arm between code trees.",
    )
    parser.add_argument("trees", nargs="+", metavar="TREE", help="a checkout, optionally |K=V,...")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per arm (6)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(main(args.trees, args.rounds, args.duration))
