"""What every pipeline benchmark needs: a throwaway PostgreSQL with a seeded school, fresh
databases cloned from it, the hub and the daemon as real subprocesses, statistics.

The daemon and the hub run as `python -m daemon run|hub` subprocesses (so their CPU and RSS are
their own), writers and subscribers in worker processes (bench/pipeline_load.py), and this
process only orchestrates. Everything listens on 127.0.0.1 on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import aiohttp
import asyncpg
import psutil

from daemon.db import dsn_for_database
from daemon.localpg import LocalPostgres, configured_dsn, free_port
from daemon.migrate import migrate
from daemon.tokens import mint_token, new_jwt_secret

REPO = Path(__file__).resolve().parent.parent
SQL_DIR = Path(__file__).resolve().parent / "pipeline_sql"
START_DEADLINE_S = 30.0

SubscriberClient = Literal["phoenix", "realtime-py"]
SUBSCRIBER_CLIENTS: tuple[SubscriberClient, ...] = ("phoenix", "realtime-py")

# The school every benchmark writes into: GROUPS channels (one assignment each, one teacher
# subscribed per channel), ACTIVITIES x PUPILS cells per channel.
GROUPS = 20
ACTIVITIES = 200
PUPILS = 30


@cache
def sql(name: str) -> str:
    """A named statement of bench/pipeline_sql/ (SQL lives in .sql files, never in Python)."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Spread:
    """min / median / max over the runs of one measurement."""

    values: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def format(self, digits: int = 2) -> str:
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f"{self.values[0]:,.{digits}f}"
        return f"{self.min:,.{digits}f} / {self.median:,.{digits}f} / {self.max:,.{digits}f}"


def max_in_window(times: Sequence[float], window_s: float = 1.0) -> int:
    """The most events inside any window of `window_s` (a rolling, not a bucketed, second)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass(frozen=True)
class Row:
    """One line of a result table: a metric over the runs, its target and verdict."""

    metric: str
    spread: Spread
    unit: str
    target: str = ""
    passed: bool | None = None
    digits: int = 2

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "MISS", None: ""}[self.passed]


@dataclass
class BenchResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list)  # one dict per run

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def markdown(self) -> str:
        lines = [
            f"#### {self.name}",
            "",
            "| metric | min / median / max | unit | target | verdict |",
            "|---|---|---|---|---|",
        ]
        for r in self.rows:
            cells = (r.metric, r.spread.format(r.digits), r.unit, r.target, r.verdict)
            lines.append("| " + " | ".join(cells) + " |")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class Knobs:
    """What-if settings from the command line, recorded with the results."""

    daemon_env: Mapping[str, str] = field(default_factory=dict)  # RESULTS_REALTIME_* overrides
    latency_rate: float | None = None  # submissions/s of the latency benchmark
    burst_budget: float | None = None  # messages/s of the burst benchmark
    subscriber: SubscriberClient = "phoenix"  # the subscribers' client (bench/pipeline_load.py)


# ---------------------------------------------------------------------------------- database


@dataclass(frozen=True)
class School:
    teachers: tuple[tuple[str, str], ...]  # (group_id, teacher uuid), one per channel
    keys: tuple[tuple[str, str], ...]  # (activity_id, pupil uuid), interleaved across channels

    @property
    def channels(self) -> list[str]:
        return [f"assignment_results:{group}:bench-lesson" for group, _ in self.teachers]


class Cluster:
    """The PostgreSQL server (DATABASE_URL when set, else a throwaway one) and a seeded template."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self.knobs = knobs or Knobs()
        self._local: LocalPostgres | None = None
        self.server_dsn = ""
        self.template = f"rr_bench_template_{os.getpid()}"
        self.school: School | None = None
        self._names = itertools.count()

    async def start(self) -> None:
        configured = configured_dsn()
        if configured is None:
            self._local = LocalPostgres()
            self.server_dsn = await asyncio.to_thread(self._local.start)
            progress(f"throwaway PostgreSQL on port {self._local.port}")
        else:
            self.server_dsn = configured
            progress("using the PostgreSQL server of DATABASE_URL / PG*")
        admin = await asyncpg.connect(self.server_dsn or None)
        try:
            version = await admin.fetchval("show server_version")
            sync = await admin.fetchval("show synchronous_commit")
            fsync = await admin.fetchval("show fsync")
            progress(f"PostgreSQL {version}, fsync={fsync}, synchronous_commit={sync}")
            await admin.execute(f'drop database if exists "{self.template}"')
            await admin.execute(f'create database "{self.template}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn_for_database(self.server_dsn, self.template))
        try:
            await migrate(conn)
            await conn.execute(sql("seed_lesson"), ACTIVITIES)
            await conn.execute(sql("seed_groups"), GROUPS, PUPILS)
            teachers = await conn.fetch(sql("teachers"))
            keys = await conn.fetch(sql("keys"))
        finally:
            await conn.close()
        self.school = School(
            teachers=tuple((r["group_id"], r["teacher_id"]) for r in teachers),
            keys=tuple((r["activity_id"], r["pupil_id"]) for r in keys),
        )
        progress(f"seeded {GROUPS} channels x {ACTIVITIES * PUPILS} cells = {len(keys)} keys")

    @property
    def postmaster(self) -> int | None:
        """The server's pid when it runs on this machine (for the CPU accounting)."""
        if self._local is None:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid_file = self._local.root / "data" / "postmaster.pid"
            return int(pid_file.read_text().splitlines()[0])
        return None

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            admin = await asyncpg.connect(self.server_dsn or None)
            try:
                await admin.execute(f'drop database if exists "{self.template}" with (force)')
            finally:
                await admin.close()
        if self._local is not None:
            await asyncio.to_thread(self._local.stop)

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh clone of the seeded template for one run (its DSN), dropped afterwards."""
        name = f"rr_bench_{os.getpid()}_{next(self._names)}"
        admin = await asyncpg.connect(self.server_dsn or None)
        try:
            await admin.execute(f'create database "{name}" template "{self.template}"')
            dsn = dsn_for_database(self.server_dsn, name)
            conn = await asyncpg.connect(dsn)
            try:  # start every run from the same physical state
                await conn.execute("vacuum analyze")
                await conn.execute("checkpoint")
            finally:
                await conn.close()
            yield dsn
        finally:
            await admin.execute(f'drop database if exists "{name}" with (force)')
            await admin.close()


# ---------------------------------------------------------------------------------- processes


def _clean_env(**extra: str) -> dict[str, str]:
    """Only what the benchmark means the child to see (config.toml supplies the rest)."""
    drop = ("RESULTS_REALTIME_", "PG", "DATABASE_URL", "SUPABASE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


class Child:
    """`python -m daemon ARGS` with its output in a log file; SIGTERM on stop, SIGKILL if stuck."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", *args],
            env=dict(env),
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self._log.close()
        return self.proc.returncode


async def _wait_http(
    child: Child, url: str, ready: Callable[[dict[str, Any]], bool], what: str
) -> None:
    """Poll a JSON health endpoint until `ready` (a start-up wait with a deadline)."""
    deadline = time.monotonic() + START_DEADLINE_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            child.check_alive()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with session.get(url) as response:
                    if ready(await response.json(content_type=None)):
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what} not ready within {START_DEADLINE_S}s ({child.log_path})"
                )
            await asyncio.sleep(0.05)


@dataclass
class Stack:
    """Hub and (optionally) daemon for one run against one fresh database."""

    dsn: str
    jwt_secret: str
    hub: Child
    hub_url: str
    daemon: Child | None = None

    @property
    def realtime_url(self) -> str:
        return f"{self.hub_url}/realtime/v1"

    def teacher_token(self, teacher_id: str) -> str:
        return mint_token(self.jwt_secret, role="authenticated", sub=teacher_id, ttl_s=7200)

    def teacher_channels(self, school: School) -> tuple[tuple[str, str], ...]:
        """(channel, token of its group's teacher) for every channel: what subscribers join."""
        return tuple(
            (channel, self.teacher_token(teacher))
            for channel, (_, teacher) in zip(school.channels, school.teachers, strict=True)
        )


async def set_doorbell(dsn: str, armed: bool) -> None:
    """Leave the doorbell as an idle (armed) or a busy (disarmed) daemon would."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql("set_doorbell"), armed)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def hub_and_daemon(
    dsn: str, *, budget: float | None, daemon_env: Mapping[str, str] | None = None
) -> AsyncIterator[Stack]:
    """The hub, and the daemon when `budget` (messages/s) is given; both stopped at the end."""
    log_dir = Path(tempfile.mkdtemp(prefix="rr-bench-logs-"))
    secret = new_jwt_secret()
    port = free_port()
    hub = Child(
        "hub",
        ["hub", "--port", str(port), "--database-url", dsn],
        # The hub stands in for Supabase: its own logging is not the product's cost.
        _clean_env(SUPABASE_JWT_SECRET=secret, RESULTS_REALTIME_DAEMON_LOG_LEVEL="warning"),
        log_dir,
    )
    stack = Stack(dsn=dsn, jwt_secret=secret, hub=hub, hub_url=f"http://127.0.0.1:{port}")
    try:
        await _wait_http(hub, f"{stack.hub_url}/healthz", lambda j: j.get("status") == "ok", "hub")
        if budget is not None:
            health = free_port()
            stack.daemon = Child(
                "daemon",
                ["run", "--database-url", dsn, "--health-port", str(health)],
                _clean_env(
                    SUPABASE_URL=stack.hub_url,
                    SUPABASE_SERVICE_ROLE_KEY=mint_token(secret, role="service_role", ttl_s=7200),
                    RESULTS_REALTIME_PUBLISH_MAX_MESSAGES_PER_SECOND=str(budget),
                    **(daemon_env or {}),
                ),
                log_dir,
            )
            await _wait_http(
                stack.daemon,
                f"http://127.0.0.1:{health}/healthz",
                lambda j: bool(j.get("leader")),
                "daemon",
            )
        yield stack
    except BaseException:
        progress(f"the hub's and the daemon's logs are kept in {log_dir}")
        raise
    finally:
        clean = True
        if stack.daemon is not None:
            code = await stack.daemon.stop()
            if code not in (0, None):
                clean = False
                progress(f"daemon exited with {code}; log: {stack.daemon.log_path}")
        await hub.stop()
    if clean and not os.environ.get("BENCH_KEEP_LOGS"):
        shutil.rmtree(log_dir, ignore_errors=True)
    elif clean:
        progress(f"the hub's and the daemon's logs are kept in {log_dir} (BENCH_KEEP_LOGS)")


class PeakRss:
    """Samples a process's RSS every `interval_s` in a thread; `peak` in bytes."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self._ps = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._ps.memory_info().rss)
                self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def cpu_busy() -> Iterator[Callable[[], float]]:
    """Share of all cores in use during the block (like measurements.md's 'CPU busy')."""
    psutil.cpu_percent(interval=None)
    result: list[float] = []
    yield lambda: result[0] if result else math.nan
    result.append(psutil.cpu_percent(interval=None) / 100)


class CpuAccount:
    """CPU seconds per process during the block, sampled every `interval_s` in a thread.

    Processes that exit lose at most one interval; processes that start count from zero.
    `by_label(labels)` groups them: the given pids by name, PostgreSQL by its process title.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval = interval_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._names: dict[int, str] = {}
        self._parents: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-account", daemon=True)
        self.wall_s = 0.0

    def _sample(self, first: bool) -> None:
        for ps in psutil.process_iter(["cmdline", "ppid"]):
            with contextlib.suppress(psutil.Error):
                times = ps.cpu_times()
                used = float(times.user + times.system)
                if ps.pid not in self._last:
                    self._first[ps.pid] = used if first else 0.0
                    cmd = ps.info.get("cmdline") or []
                    self._names[ps.pid] = " ".join(cmd)[:80]
                    self._parents[ps.pid] = ps.info.get("ppid") or 0
                self._last[ps.pid] = used

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample(first=False)

    def __enter__(self) -> CpuAccount:
        self._started = time.monotonic()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        self.wall_s = time.monotonic() - self._started

    def by_label(self, labels: Mapping[int, str], postmaster: int | None) -> dict[str, float]:
        """Share of one core per label over the block; "others" is load not caused by the run
        (other sessions on the machine), "bench" this orchestrating process."""
        out: dict[str, float] = {}
        for pid, last in self._last.items():
            used = last - self._first.get(pid, 0.0)
            if used <= 0:
                continue
            if pid in labels:
                label = labels[pid]
            elif pid == os.getpid():
                label = "bench"
            elif postmaster is not None and postmaster in (pid, self._parents.get(pid)):
                label = "postgres"
            else:
                label = "others"
            out[label] = out.get(label, 0.0) + used / max(self.wall_s, 1e-9)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def top_others(
        self, labels: Mapping[int, str], postmaster: int | None, count: int = 3
    ) -> list[tuple[str, float]]:
        """The busiest processes counted as "others", by command line: who disturbed a run."""
        others = []
        for pid, last in self._last.items():
            used = last - self._first.get(pid, 0.0)
            ours = pid in labels or pid == os.getpid()
            ours = ours or (postmaster is not None and postmaster in (pid, self._parents.get(pid)))
            if used > 0 and not ours:
                others.append((self._names.get(pid, "?"), used / max(self.wall_s, 1e-9)))
        return sorted(others, key=lambda item: -item[1])[:count]
