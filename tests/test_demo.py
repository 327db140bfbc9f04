"""`results-realtime demo` as a subprocess: throwaway PostgreSQL, hub, daemon, simulated lesson."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from typing import Any

from tests.fixtures.client import CLI


def _env() -> dict[str, str]:
    """No DATABASE_URL / PG*: the demo must start its own PostgreSQL."""
    drop = ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


async def test_demo_runs_a_lesson_and_delivers_cells() -> None:
    proc = await asyncio.create_subprocess_exec(
        CLI, "demo", "--duration", "12", "--speed", "15", "--plain",
        "--web-port", "0", "--hub-port", "0",
        env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 100)
    assert proc.returncode == 0, err.decode()[-2000:]
    events = _events(out.decode())
    names = [e["event"] for e in events]
    assert "localpg.started" in names
    assert "hub.started" in names
    assert "daemon.started" in names
    assert names.count("client.subscribed") == 2  # one view per group
    summary = next(e for e in events if e["event"] == "demo.summary")
    assert summary["messages_received"] > 10
    assert summary["cells_submitted"] > 10
    assert summary["simulated"].get("answer", 0) > 0
    assert summary["simulated"].get("upload", 0) > 0
    assert summary["converged"] is True
    assert summary["gaps"] == 0
    assert "localpg.stopped" in names  # the throwaway database is gone again
    ready = next(e for e in events if e["event"] == "demo.ready")
    assert all(page.startswith("http://127.0.0.1:") for page in ready["pages"])
    assert "results-realtime watch --group grp-7a" in out.decode()  # how to watch, with a token
    # Between the JSON lines, a human sees the lesson move (every 2 s of the 12) and its end.
    progress = [line for line in out.decode().splitlines() if line.startswith("demo ")]
    assert len(progress) >= 3, progress
    assert all("messages received" in line for line in progress)
    assert "demo finished, 2 groups (the matrix above is " in out.decode()


async def test_demo_stops_cleanly_on_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        CLI, "demo", "--speed", "20", "--plain", "--web-port", "0", "--hub-port", "0",
        env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "the demo exited before publishing anything"
                if '"batch.published"' in line:
                    break
            proc.send_signal(signal.SIGINT)
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    names = [e["event"] for e in _events(out.decode())]
    assert "demo.summary" in names
    assert "daemon.stopped" in names
    assert "localpg.stopped" in names


async def test_demo_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            CLI, "demo", "--plain", "--web-port", str(port), "--hub-port", "0",
            env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 5
    message = err.decode()
    assert f"127.0.0.1:{port}" in message
    assert "already in use" in message
    assert "pass --web-port N" in message


async def test_demo_names_its_own_option_for_a_taken_hub_port(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            CLI, "demo", "--plain", "--web-port", "0", "--hub-port", str(port),
            env={**_env(), "DATABASE_URL": database_url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    message = err.decode()
    assert proc.returncode == 5, message[-2000:]
    assert f"the hub cannot listen on 127.0.0.1:{port}" in message
    assert "pass --hub-port N" in message  # the demo's option; `hub` calls it --port
    assert "--port " not in message
