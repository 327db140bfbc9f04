"""The SQL shipped inside the package: numbered migrations, repeatable triggers, named queries."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REPLACES = re.compile(r"^-- replaces: ([0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return checksum_of(self.sql)

    @property
    def replaces(self) -> frozenset[str]:
        """Checksums of earlier texts of this file, named in it by `-- replaces: <sha256>` lines.

        Only for a file rewritten so that it also applies where its first text could not, and
        that changes nothing where that text did apply (the file says why): a database that
        recorded an earlier text is then as up to date as one that ran this one.
        """
        return frozenset(_REPLACES.findall(self.sql))


def checksum_of(text: str) -> str:
    """What migrate records of a file it applied, to tell whether it changed since."""
    return hashlib.sha256(text.encode()).hexdigest()


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


_TRIGGER = re.compile(r"^create or replace trigger (\w+)\s+\w+\s+\w+\s+on\s+([\w.]+)", re.MULTILINE)


def triggers_defined(text: str) -> list[tuple[str, str]]:
    """(table, trigger name) of every trigger the triggers file creates (migrate checks that
    each exists, so one this cannot read would go unchecked: that is an error)."""
    found = [(table, name) for name, table in _TRIGGER.findall(text)]
    if not found or len(found) != text.count("create or replace trigger"):
        raise RuntimeError(
            "sql/triggers.sql: write every trigger as 'create or replace trigger NAME' then, on "
            "the next line, 'after|before EVENT on SCHEMA.TABLE' (one event)"
        )
    return found


@cache
def query(name: str) -> str:
    """One statement from sql/queries/<name>.sql (kept out of Python so it can be read as SQL)."""
    return (sql_root() / "queries" / f"{name}.sql").read_text(encoding="utf-8")
