"""docs/testing.md's pytest setup, run as a developer would: its files as they stand in the
guide, in a directory of their own, by pytest in a process of its own, with default settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "testing.md"


def guide_files() -> dict[str, str]:
    """Each Python block of the guide, by the file name on its first line (`# conftest.py`)."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    files: dict[str, str] = {}
    for block in blocks:
        first_line = block.splitlines()[0]
        match = re.fullmatch(r"# (\w+\.py)", first_line)
        assert match, f"a block of {GUIDE.name} does not start with its file name: {first_line}"
        files[match.group(1)] = block
    return files


def test_the_guide_is_a_conftest_a_helper_and_a_test() -> None:
    expected = ["conftest.py", "realtime_channel.py", "test_results_channel.py"]
    assert sorted(guide_files()) == expected


def run_guide(
    tmp_path: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """The guide's files in `tmp_path`, run by pytest in a process of its own."""
    for name, text in guide_files().items():
        (tmp_path / name).write_text(text)
    # not this repository's settings (asyncio_mode auto, session loops): pytest's and
    # pytest-asyncio's defaults, which the guide's explicit marks are written for
    ini = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    (tmp_path / "pytest.ini").write_text(ini)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_guides_test_passes_against_the_real_stack(tmp_path: Path, database_url: str) -> None:
    """The hub and the daemon started by the guide's fixture, the cells received by realtime-py
    under a teacher's token; the fixture's clean stops are asserted inside. The environment is
    a developer's: settings of a deployed Supabase and daemon, and a project config.toml, none
    of which the local stack may use."""
    (tmp_path / "config.toml").write_text("[app]\nname = 'not results-realtime'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        DATABASE_URL=database_url,  # a database of its own, already migrated: migrate again
        SUPABASE_URL="http://127.0.0.1:9",  # the deployed project's, unreachable from here
        SUPABASE_SERVICE_ROLE_KEY="a deployed project's key",
        RESULTS_REALTIME_DAEMON_LOG_LEVEL="warning",  # would hide the lines the fixture awaits
    )
    done = run_guide(tmp_path, env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_guides_fixture_needs_a_database_url(tmp_path: Path) -> None:
    """Said at once, not as a failure of a process started without one."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = run_guide(tmp_path, env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "set DATABASE_URL to your test database" in done.stdout
