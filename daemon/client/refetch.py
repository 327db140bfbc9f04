"""Refetching the matrix: `read_assignment_results` under a teacher's claims, or as the service.

The function authorises by the caller's JWT claims (teachers see their groups only). There is no
PostgREST locally, so this runs the RPC the way PostgREST would: inside a transaction, switch to
the JWT's role and publish its claims in `request.jwt.claims`, then call the function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import jwt
from asyncpg.pool import PoolConnectionProxy

from daemon.client.matrix import RefetchRequest, Snapshot, parse_snapshot
from daemon.errors import ConfigError, DatabaseError
from daemon.log import get_logger
from daemon.sqlfiles import query

log = get_logger(__name__)

# Roles a Supabase JWT may carry that we are willing to switch to (never an arbitrary role name).
ALLOWED_ROLES = frozenset({"anon", "authenticated", "service_role"})


class PermanentRefetchError(DatabaseError):
    """A refetch that no retry can cure: the database gave a definite no (exit code 3).

    `code` is the SQLSTATE that says so; the TypeScript client reads the same codes from
    PostgREST (shared case table: clients/js/test/fixtures/refetch-errors.json)."""

    code = ""


class RefetchDeniedError(PermanentRefetchError):
    """read_assignment_results refused the caller (not a teacher of the group)."""

    code = "42501"  # insufficient_privilege


class AssignmentNotFoundError(PermanentRefetchError):
    """The lesson is not assigned to the group: there is no such matrix to read."""

    code = "P0002"  # no_data_found


class RefetchUnavailableError(PermanentRefetchError):
    """read_assignment_results does not exist: the database is not migrated."""

    code = "42883"  # undefined_function


PERMANENT_REFETCH_CODES = frozenset(
    kind.code for kind in (RefetchDeniedError, AssignmentNotFoundError, RefetchUnavailableError)
)


@dataclass(frozen=True, slots=True)
class Claims:
    role: str
    sub: str | None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ALLOWED_ROLES:
            raise ConfigError(
                f"JWT role {self.role!r} is not one of {sorted(ALLOWED_ROLES)}; "
                "use a Supabase user token (role 'authenticated')"
            )


def claims_from_token(token: str, *, secret: str | None = None) -> Claims:
    """The claims of a Supabase JWT; verified (signature, expiry) when the secret is known."""
    try:
        if secret:
            raw = jwt.decode(
                token, secret, algorithms=["HS256", "HS384", "HS512"], options={"verify_aud": False}
            )
        else:
            raw = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ConfigError(f"the teacher token is not a valid JWT: {exc}") from None
    role = raw.get("role")
    if not isinstance(role, str):
        raise ConfigError("the teacher token has no 'role' claim")
    sub = raw.get("sub")
    return Claims(role=role, sub=str(sub) if sub is not None else None, raw=raw)


class Refetcher(Protocol):
    """Reads (part of) an assignment's matrix; called for every RefetchRequest."""

    async def fetch(self, group_id: str, lesson_id: str, request: RefetchRequest) -> Snapshot: ...


async def read_assignment_results(
    conn: asyncpg.Connection | PoolConnectionProxy,
    group_id: str,
    lesson_id: str,
    request: RefetchRequest,
    claims: Claims | None,
) -> dict[str, Any]:
    """The raw jsonb; `claims` None runs as the connection's own user (the service)."""
    pupil = request.pupil_id if request.scope in ("cell", "pupil") else None
    activity = request.activity_id if request.scope in ("cell", "activity") else None
    try:
        async with conn.transaction(readonly=True):
            if claims is not None:
                await conn.execute(
                    query("client_set_claims"),
                    claims.role,
                    json.dumps(dict(claims.raw)),
                    claims.sub or "",
                )
            raw = await conn.fetchval(
                query("client_read_assignment_results"), group_id, lesson_id, pupil, activity
            )
    except asyncpg.PostgresError as exc:
        raise refetch_error(exc, group_id, lesson_id) from exc
    result: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
    return result


def refetch_error(exc: asyncpg.PostgresError, group_id: str, lesson_id: str) -> DatabaseError:
    """What a failed read_assignment_results means, by its SQLSTATE: a PermanentRefetchError
    (never retried) for the codes in PERMANENT_REFETCH_CODES, else a DatabaseError (retried)."""
    code = exc.sqlstate
    if code == RefetchDeniedError.code:
        return RefetchDeniedError(
            f"read_assignment_results refused {group_id}/{lesson_id}: {_first_line(exc)}. "
            "The token must belong to a teacher of the group."
        )
    if code == AssignmentNotFoundError.code:
        return AssignmentNotFoundError(
            f"lesson {lesson_id} is not assigned to group {group_id} (read_assignment_results "
            "found no such row in public.assignments): check the group and lesson ids"
        )
    if code == RefetchUnavailableError.code:
        return RefetchUnavailableError(
            f"read_assignment_results failed for {group_id}/{lesson_id}: {_first_line(exc)}; the "
            "database is not migrated: run `results-realtime migrate`"
        )
    return DatabaseError(f"read_assignment_results failed for {group_id}/{lesson_id}: {exc}")


def _first_line(exc: BaseException) -> str:
    """The server's message without its DETAIL / HINT lines: errors are one line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class DatabaseRefetcher:
    """Refetches over an asyncpg pool, as `claims` (a teacher) or as the service when None."""

    def __init__(self, pool: asyncpg.Pool, claims: Claims | None) -> None:
        self._pool = pool
        self._claims = claims

    async def fetch(self, group_id: str, lesson_id: str, request: RefetchRequest) -> Snapshot:
        async with self._pool.acquire() as conn:
            raw = await read_assignment_results(conn, group_id, lesson_id, request, self._claims)
        return parse_snapshot(raw)
