"""Which serializer a socket's `vsn` query parameter selects, by Phoenix's rules.

Phoenix parses `vsn` with Elixir's `Version.parse/1` (strict SemVer: three numeric parts, no
leading zeros, optional `-pre` and `+build`) and picks the first serializer whose requirement
matches: Realtime lists `~> 1.0.0` (V1 JSON) and `~> 2.0.0` (V2). A missing `vsn` means 1.0.0; an
empty one, or one like `1.0`, is not a version, and the upgrade is refused (403, empty body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Vsn = Literal["1.0.0", "2.0.0"]

_IDENTIFIER = re.compile(r"[0-9A-Za-z-]+")
_MAX_DIGITS = 14  # Elixir refuses longer numeric parts


@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...]


def _number(part: str) -> int | None:
    """A numeric part as Elixir accepts it: digits only, no leading zero, at most 14 digits."""
    if not part.isascii() or not part.isdigit() or len(part) > _MAX_DIGITS:
        return None
    if len(part) > 1 and part.startswith("0"):
        return None
    return int(part)


def _identifiers(text: str | None) -> tuple[str, ...] | None:
    """Dot-separated pre-release or build identifiers; None when one is empty or invalid."""
    if text is None:
        return ()
    parts = tuple(text.split("."))
    if not all(_IDENTIFIER.fullmatch(p) for p in parts):
        return None
    return parts


def parse_version(text: str) -> Version | None:
    """Elixir's `Version.parse/1`; None where it answers `:error`."""
    version_pre, _, build = text.partition("+")
    version, dash, pre = version_pre.partition("-")
    parts = version.split(".")
    if len(parts) != 3:
        return None
    numbers = [_number(p) for p in parts]
    pre_parts = _identifiers(pre if dash else None)
    build_parts = _identifiers(build if "+" in text else None)
    if any(n is None for n in numbers) or pre_parts is None or build_parts is None:
        return None
    if any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in pre_parts):
        return None  # a numeric pre-release identifier with a leading zero
    major, minor, patch = (n for n in numbers if n is not None)
    return Version(major, minor, patch, pre_parts)


def _matches_tilde(version: Version, major: int) -> bool:
    """`~> major.0.0`: at least major.0.0 (so no 0.0 pre-release) and below major.1.0-0."""
    if (version.major, version.minor) != (major, 0):
        return False
    return version.patch > 0 or not version.pre


def negotiate(vsn: str | None) -> Vsn | None:
    """The serializer version for this `vsn` parameter, or None (Phoenix answers 403)."""
    version = parse_version("1.0.0" if vsn is None else vsn)
    if version is None:
        return None
    if _matches_tilde(version, 1):
        return "1.0.0"
    if _matches_tilde(version, 2):
        return "2.0.0"
    return None
