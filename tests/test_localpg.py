"""The throwaway PostgreSQL of `make demo` and `make test` when no server is configured."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import asyncpg
import pytest

from daemon.db import PG_SERVER_VARIABLES, where
from daemon.localpg import LocalPostgres, configured_dsn


def test_starts_when_tmpdir_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, initdb and postgres run as 'postgres': with TMPDIR inside a directory only root
    may enter (root's home, pytest's tmp_path) initdb failed with "Permission denied"."""
    private = tmp_path / "tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the directory it chose
    with LocalPostgres() as server:
        answer = asyncio.run(_select_one(server.dsn))
        root = server.root
    assert answer == 1
    assert not root.exists()  # the throwaway's own directory is gone after stop
    assert list(private.iterdir()) == []  # nothing left behind where it could not run either


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval("select 1")
        return value
    finally:
        await conn.close()


@pytest.mark.parametrize("name", ["PGSERVICE", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER"])
def test_any_server_variable_means_a_configured_server_and_is_named_in_messages(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The throwaway server starts only when nothing names one; messages then name the same
    variables the decision looked at (they used to differ: PGSERVICE was never shown)."""
    for other in ("DATABASE_URL", *PG_SERVER_VARIABLES, "PGSSLMODE"):
        monkeypatch.delenv(other, raising=False)
    assert configured_dsn() is None
    monkeypatch.setenv(name, "school")
    assert configured_dsn() == ""
    assert f"{name}=school" in where(None)


def test_sslmode_alone_names_no_server() -> None:
    env = {"PGSSLMODE": "require"}
    assert configured_dsn(env) is None
