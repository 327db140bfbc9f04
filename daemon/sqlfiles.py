"""The SQL shipped inside the package: numbered migrations, repeatable triggers, named queries."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def sql_root() -> Traversable:
    return files("daemon") / "sql"


def migrations() -> list[Migration]:
    found = []
    for entry in (sql_root() / "migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {versions}")
    return found


def triggers_sql() -> str:
    return (sql_root() / "triggers.sql").read_text(encoding="utf-8")


@cache
def query(name: str) -> str:
    """One statement from sql/queries/<name>.sql (kept out of Python so it can be read as SQL)."""
    return (sql_root() / "queries" / f"{name}.sql").read_text(encoding="utf-8")
