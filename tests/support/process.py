"""The CLI as a subprocess: its JSON log lines, awaited by event name; signals; exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.daemon import SERVICE_KEY

_WELL_KNOWN = ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_JWT_SECRET")
FAST_ENV = {
    "RESULTS_REALTIME_DAEMON_BUSY_POLL_INTERVAL_MS": "2",
    "RESULTS_REALTIME_DAEMON_IDLE_POLL_INTERVAL_S": "0.5",
    "RESULTS_REALTIME_DAEMON_PROBE_INTERVAL_S": "0.5",
    "RESULTS_REALTIME_DAEMON_PROBE_TIMEOUT_S": "1",
    "RESULTS_REALTIME_DAEMON_LEADER_POLL_INTERVAL_S": "0.2",
    "RESULTS_REALTIME_DAEMON_RECONNECT_MAX_BACKOFF_S": "0.2",
    "RESULTS_REALTIME_PUBLISH_MAX_MESSAGES_PER_SECOND": "10000",
    "RESULTS_REALTIME_PUBLISH_RETRY_INITIAL_WAIT_S": "0",
    "RESULTS_REALTIME_PUBLISH_RETRY_MAX_WAIT_S": "0",
    "RESULTS_REALTIME_PUBLISH_REQUEST_TIMEOUT_S": "1",
}


def cli_env(database_url: str | None, realtime_url: str | None, **extra: str) -> dict[str, str]:
    """A clean environment: only what the test means the CLI to see."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESULTS_REALTIME_", "PG"))}
    for name in (
        "DATABASE_URL",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_JWT_SECRET",
    ):
        env.pop(name, None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    if realtime_url is not None:
        env["SUPABASE_URL"] = realtime_url
        env["SUPABASE_SERVICE_ROLE_KEY"] = SERVICE_KEY
    env.update(FAST_ENV)
    env.update(extra)
    return env


class CliProcess:
    """`results-realtime ARGS` running in its own process; stdout is parsed as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.stderr = ""
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        # drained all along: a child blocked on a full stderr pipe would look like a hang
        self._stderr_reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> CliProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon",
            *args,
            env=dict(env),
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.text.append(line)
                with contextlib.suppress(ValueError):
                    parsed = json.loads(line)
                    if isinstance(parsed, dict):
                        self.events.append(parsed)
                self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr += raw.decode(errors="replace")

    async def __aenter__(self) -> CliProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()  # never leave a daemon behind, whatever the test did

    def seen(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events)

    async def wait_event(self, event: str, *, deadline_s: float = 15.0) -> dict[str, Any]:
        """The first log line with this event name; fails with the output if the process exits."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events if e.get("event") == event), None)

        try:
            async with asyncio.timeout(deadline_s), self._changed:
                await self._changed.wait_for(lambda: found() is not None or self._reader.done())
        except TimeoutError:
            raise AssertionError(f"no {event} within {deadline_s}s; output: {self.text}") from None
        hit = found()
        if hit is None:
            await self.proc.wait()
            raise AssertionError(
                f"process exited ({self.proc.returncode}) before {event}; output: {self.text}; "
                f"stderr: {await self._stderr()}"
            )
        return hit

    async def _stderr(self) -> str:
        await self._stderr_reader
        return self.stderr

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, *, deadline_s: float = 15.0) -> int:
        """The exit code; fails with the last output lines if the process outlives the deadline."""
        try:
            async with asyncio.timeout(deadline_s):
                code = await self.proc.wait()
                await self._reader
                await self._stderr_reader
        except TimeoutError:
            raise AssertionError(
                f"still running {deadline_s}s later; last output: {self.text[-20:]}; "
                f"stderr: {self.stderr[-2000:]}"
            ) from None
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.wait()


async def run_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, *, deadline_s: float = 60.0
) -> tuple[int, str, str]:
    """Run to completion: (exit code, stdout, stderr)."""
    process = await CliProcess.start(args, env, cwd)
    code = await process.wait(deadline_s=deadline_s)
    return code, "\n".join(process.text), process.stderr


async def interrupt_once_connected(
    argv: Sequence[str],
    env: Mapping[str, str],
    sig: signal.Signals,
    connected: asyncio.Event,
    **popen: Any,
) -> tuple[int, str, str]:
    """Start `argv` (the executable first), send `sig` once `connected` is set (a server got its
    connection) and return (exit code, stdout, stderr), which must come within 5 s."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **popen
    )
    try:
        await asyncio.wait_for(connected.wait(), 15)
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
