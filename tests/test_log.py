"""Libraries' standard `logging` records come out like the daemon's own lines.

Each test runs `configure_logging` in a child Python: it changes the process-wide root logger,
which this pytest process must keep for itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# What asyncpg's pool logs, every retry, while the database is down (asyncpg/pool.py).
POOL_WARNING = """
import logging, os, sys, warnings
from daemon.log import configure_logging, get_logger

configure_logging(level=sys.argv[1], json=sys.argv[2] == "json")
configure_logging(level=sys.argv[1], json=sys.argv[2] == "json")  # as a second command would


def reconnect():
    dsn = os.environ["SECRET_DSN"]  # a local a rich traceback would show
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


try:
    reconnect()
except OSError:
    logging.getLogger("asyncpg.pool").warning(
        "Failed to restore the pool connection %s; retrying", "floor", exc_info=True
    )
logging.getLogger("aiohttp.client").info("a library's info")
logging.getLogger("websockets.client").debug("a library's debug: a frame")
get_logger("daemon").debug("daemon.debug_line")
get_logger("daemon").warning("daemon.warning_line")
warnings.warn("a library's deprecation notice", UserWarning)
"""

SECRET = "hunter2-not-in-logs"


def _run(level: str, renderer: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SECRET_DSN": f"postgresql://u:{SECRET}@db/a"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(POOL_WARNING), level, renderer],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    lines = stdout.splitlines()
    assert lines, "nothing logged"
    return [json.loads(line) for line in lines]  # raises on any line that is not one object


def test_a_library_warning_with_a_traceback_is_one_json_object() -> None:
    proc = _run("info", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = _json_lines(proc.stdout)
    *records, warning = lines
    assert [(line["component"], line["event"]) for line in records] == [
        ("asyncpg.pool", "Failed to restore the pool connection floor; retrying"),
        ("aiohttp.client", "a library's info"),
        ("daemon", "daemon.warning_line"),
    ]  # once each: the second configure_logging replaced its handler
    # Python's warnings too, instead of plain text on stderr
    assert warning["component"] == "py.warnings"
    assert "UserWarning: a library's deprecation notice" in warning["event"]
    pool, library_info, _ = records
    assert pool["level"] == "warning"
    assert library_info["level"] == "info"
    for line in lines:
        assert line.keys() >= {"event", "level", "timestamp", "component"}
        assert line["timestamp"].endswith("Z")
    assert pool["exception"].startswith("Traceback (most recent call last):")
    assert "ConnectionRefusedError: [Errno 111] Connect call failed" in pool["exception"]
    assert SECRET not in proc.stdout


def test_library_records_below_the_level_are_dropped() -> None:
    proc = _run("warning", "json")
    assert proc.returncode == 0, proc.stderr
    events = [line["event"] for line in _json_lines(proc.stdout)]
    assert events[:2] == [
        "Failed to restore the pool connection floor; retrying",
        "daemon.warning_line",
    ]
    assert len(events) == 3
    assert "a library's deprecation notice" in events[2]


def test_at_debug_the_daemon_says_more_but_libraries_stay_at_info() -> None:
    proc = _run("debug", "json")
    assert proc.returncode == 0, proc.stderr
    events = [line["event"] for line in _json_lines(proc.stdout)]
    assert "daemon.debug_line" in events
    assert "a library's info" in events
    assert "a library's debug: a frame" not in events


def test_the_console_renderer_takes_library_records_too_without_locals() -> None:
    proc = _run("info", "console")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.count("Failed to restore the pool connection floor; retrying") == 1
    assert "asyncpg.pool" in proc.stdout
    assert "ConnectionRefusedError" in proc.stdout
    assert SECRET not in proc.stdout
