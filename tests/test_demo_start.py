"""`results-realtime demo` before it is up: options refused at once, a stop signal during
start-up (connecting, creating the throwaway PostgreSQL), the connect timeout."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import cli_env, interrupt_once_connected, run_cli
from tests.support.silent_server import silent_server
from tests.support.waiting import eventually


def _no_database() -> dict[str, str]:
    """Nothing configured: the demo would start its own throwaway PostgreSQL."""
    return cli_env(None, None)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--web-port", "99999"], "--web-port"),
        (["--web-port", "-5"], "--web-port"),
        (["--hub-port", "99999"], "--hub-port"),
        (["--duration", "-1"], "--duration"),
        (["--duration", "soon"], "--duration"),
        (["--speed", "0"], "--speed"),
        (["--speed", "-2"], "--speed"),
        (["--host", "999.1.1.1"], "--host"),
    ],
)
async def test_a_bad_option_is_refused_before_anything_starts(
    tmp_path: Path, args: list[str], option: str
) -> None:
    code, out, err = await run_cli(
        ["demo", "--plain", *args], _no_database(), tmp_path, deadline_s=20
    )
    assert code == 2, err[-2000:]
    assert f"argument {option}:" in err
    assert "Traceback" not in err
    assert "localpg.started" not in out  # refused before the database was even created


async def test_help_shows_the_defaults(tmp_path: Path) -> None:
    code, out, _ = await run_cli(["demo", "--help"], _no_database(), tmp_path)
    assert code == 0
    text = " ".join(out.split())  # argparse wraps the help text
    assert "the page's port (0: any free; default: 8000)" in text
    assert "default: hub.port of the configuration, 54321" in text
    assert "the hub and the page (default: 127.0.0.1)" in text
    assert "twice as fast; default: 1.0" in text
    assert "stop after S seconds (0, the default: until Ctrl-C)" in text
    assert "results_realtime_demo" in text  # the database it uses on a configured server


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_while_connecting_stops_at_once(tmp_path: Path, sig: signal.Signals) -> None:
    """A server that accepts TCP and never answers: the connect alone would wait 60 s."""
    async with silent_server() as silent:
        env = cli_env(silent.dsn(), None, RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S="60")
        code, _, err = await interrupt_once_connected(
            [sys.executable, "-m", "daemon", "demo", "--plain", "--duration", "5"],
            env, sig, silent.accepted, cwd=tmp_path,
        )  # fmt: skip
    assert code == 130
    lines = err.strip().splitlines()
    assert lines == ["results-realtime demo: interrupted during start-up; stopped what had started"]


async def test_the_connect_gives_up_after_the_configured_timeout(tmp_path: Path) -> None:
    async with silent_server() as silent:
        env = cli_env(silent.dsn(), None, RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S="1")
        code, _, err = await run_cli(["demo", "--plain"], env, tmp_path, deadline_s=15)
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:" in lines[0]
    assert "timed out after 1 s (database.connect_timeout_s)" in lines[0]
    assert "unset DATABASE_URL and PG* for a throwaway local PostgreSQL" in lines[0]


def _processes_mentioning(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture
def tmpdir_postgres_can_reach() -> Iterator[Path]:
    """TMPDIR and working directory for the demo: as root, PostgreSQL runs as the 'postgres'
    user, which must reach both (pytest's tmp_path is private to root)."""
    tmp = Path(tempfile.mkdtemp(prefix="rr-demo-test-", dir="/tmp"))
    tmp.chmod(0o755)
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def _entries(directory: Path) -> list[Path]:
    return list(directory.iterdir())


@pytest.mark.parametrize("to", ["process", "process group"])
async def test_ctrl_c_while_the_throwaway_postgres_is_created(
    tmpdir_postgres_can_reach: Path, to: str
) -> None:
    """Ctrl-C at a terminal reaches the whole process group, initdb included; `kill -INT`
    only the demo. Either way: exit 130, one line, no data directory and no server left."""
    tmp = tmpdir_postgres_can_reach
    env = {**_no_database(), "TMPDIR": str(tmp)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "demo", "--plain", "--web-port", "0", "--hub-port", "0",
        env=env, cwd=tmp, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        await eventually(
            lambda: any(tmp.glob("results-realtime-pg-*/data")), deadline_s=30, what="initdb"
        )
        if to == "process":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 130, err.decode()[-3000:]
    lines = err.decode().strip().splitlines()
    assert lines == ["results-realtime demo: interrupted during start-up; stopped what had started"]
    assert b"localpg.started" not in out  # it was stopped while the server was being made
    assert _entries(tmp) == []  # the half-made data directory is gone
    assert _processes_mentioning(tmp) == []  # no initdb, no postgres left running
