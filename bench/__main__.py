"""`python -m bench` (what `make bench` runs): the pipeline benchmarks, then the hub fan-out.

    .venv/bin/python -m bench                      # everything, 3 runs each (about 18 minutes)
    .venv/bin/python -m bench --quick              # everything, 1 short run each (a smoke test)
    .venv/bin/python -m bench --only latency burst --runs 3
    .venv/bin/python -m bench --list

Progress goes to stderr; the result tables (markdown, as pasted into bench/RESULTS.md) to stdout,
and with --json FILE every run's raw numbers. Uses DATABASE_URL when set, else a throwaway
PostgreSQL; the hub and the daemon run as subprocesses on free loopback ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

import psutil

from bench import (
    pipeline_burst,
    pipeline_latency,
    pipeline_staging,
    pipeline_throughput,
    pipeline_writer_cost,
)
from bench.common import REPO, SUBSCRIBER_CLIENTS, BenchResult, Cluster, Knobs, progress
from daemon.log import configure_logging

Runner = Callable[..., Awaitable[BenchResult]]

PIPELINE: dict[str, tuple[str, Runner]] = {
    "latency": (pipeline_latency.TITLE, pipeline_latency.run),
    "throughput": (pipeline_throughput.TITLE, pipeline_throughput.run),
    "writer-cost": (pipeline_writer_cost.TITLE, pipeline_writer_cost.run),
    "burst": (pipeline_burst.TITLE, pipeline_burst.run),
    "staging": (pipeline_staging.TITLE, pipeline_staging.run),
}
HUB_FANOUT = "hub-fanout"
HUB_FANOUT_SCRIPT = REPO / "bench" / "hub_fanout.py"
ALL = [*PIPELINE, HUB_FANOUT]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the results-realtime pipeline (and the hub's fan-out).",
        epilog="Benchmarks: " + ", ".join(ALL),
    )
    parser.add_argument(
        "--only", nargs="+", choices=ALL, metavar="NAME", help="run only these benchmarks"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per benchmark (default 3, --quick 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs (one each unless --runs): a smoke test"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the raw runs here")
    parser.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: an environment override for the daemon, e.g. "
        "RESULTS_REALTIME_DAEMON_BATCH_SIZE=10000 (repeatable)",
    )
    parser.add_argument(
        "--latency-rate", type=float, metavar="N", help="submissions/s of 'latency' (1000)"
    )
    parser.add_argument(
        "--burst-budget", type=float, metavar="N", help="messages/s budget of 'burst' (40)"
    )
    parser.add_argument(
        "--subscriber",
        choices=SUBSCRIBER_CLIENTS,
        default="phoenix",
        help="the subscribers' client: a lean Phoenix client (default; a browser's cost per "
        "message) or realtime-py (~300 us of CPU per message, taken from the same cores)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    for item in args.daemon_env:
        key, sep, _ = item.partition("=")
        if not sep or not key.startswith("RESULTS_REALTIME_"):
            parser.error(f"--daemon-env takes RESULTS_REALTIME_<SECTION>_<KEY>=VALUE; got {item!r}")
    return args


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                with_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {psutil.cpu_count()} CPUs ({with_model or cpu}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def code_version() -> str:
    """The commit measured, and whether daemon/ or sql/ differ from it (a shared checkout)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "daemon", "sql").splitlines()
    if not dirty:
        return f"commit {head} (daemon/ and sql/ clean)"
    files = ", ".join(line[3:] for line in dirty)
    return f"commit {head} + uncommitted changes in: {files}"


async def run_pipeline(
    names: list[str], runs: int, quick: bool, knobs: Knobs, json_path: Path | None
) -> list[BenchResult]:
    cluster = Cluster(knobs)
    results: list[BenchResult] = []
    await cluster.start()
    try:
        for name in names:
            _, runner = PIPELINE[name]
            started = time.monotonic()
            result = await runner(cluster, runs=runs, quick=quick)
            progress(f"{name}: done in {time.monotonic() - started:.0f} s")
            results.append(result)
            print(result.markdown() + "\n", flush=True)
            if json_path is not None:  # after each benchmark: a later failure keeps these
                text = json.dumps([asdict(r) for r in results], indent=2, default=str)
                await asyncio.to_thread(json_path.write_text, text)
    finally:
        await cluster.stop()
    return results


def run_hub_fanout(quick: bool, runs: int) -> int:
    """Helper B's script, as its own process (it owns its argument parsing and its server)."""
    args = [sys.executable, str(HUB_FANOUT_SCRIPT), "--reps", str(runs)]
    if quick:
        args += ["--clients", "200", "--channels", "20", "--batches", "50", "--paced-seconds", "1"]
    progress(f"hub-fanout: {' '.join(args[1:])}")
    return subprocess.run(args, cwd=REPO, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in PIPELINE:
            print(f"{name:12} {PIPELINE[name][0]}")
        print(f"{HUB_FANOUT:12} hub fan-out to many websocket clients (bench/hub_fanout.py)")
        return 0
    configure_logging(level="warning")  # stdout carries the result tables only; progress: stderr
    names = args.only or ALL
    runs = args.runs or (1 if args.quick else 3)
    progress(f"machine: {machine()}")
    background = psutil.cpu_percent(interval=2.0) / 100
    progress(f"CPU busy before starting (load that is not the benchmark's): {background:.2f}")
    if background > 0.2:
        progress("warning: the machine is busy; the numbers will be noisy (see 'others' CPU)")
    print(f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    knobs = Knobs(
        daemon_env=dict(item.split("=", 1) for item in args.daemon_env),
        latency_rate=args.latency_rate,
        burst_budget=args.burst_budget,
        subscriber=args.subscriber,
    )
    print(f"CPU busy before starting: {background:.2f} of {psutil.cpu_count()} cores")
    print(f"code: {code_version()}")
    print(f"command: python -m bench {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"subscribers' client: {knobs.subscriber}")
    if knobs.daemon_env:
        print(f"daemon overrides: {dict(knobs.daemon_env)}")
    print(flush=True)
    pipeline = [n for n in names if n in PIPELINE]
    if pipeline:
        asyncio.run(run_pipeline(pipeline, runs, args.quick, knobs, args.json))
    code = 0
    if HUB_FANOUT in names:
        if HUB_FANOUT_SCRIPT.exists():
            code = run_hub_fanout(args.quick, runs)
        else:
            progress("hub-fanout: bench/hub_fanout.py is not there; skipped")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
