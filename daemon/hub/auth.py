"""JWT verification and the RLS read/write checks, with the texts Supabase Realtime uses.

The checks run against PostgreSQL exactly as Realtime runs them, so the project's policies on
`realtime.messages` are exercised unchanged: probe rows inserted as the login role, the JWT's role
and claims set for the transaction, a select (read) or an insert in a savepoint (write), rollback.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import asyncpg
import jwt

from daemon import sqlfiles

TokenProblem = Literal[
    "missing", "malformed", "signature", "signer", "expired", "missing_claims", "invalid_exp"
]

_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_WHITESPACE = re.compile(r"\s")
_MISSING_CLAIMS = "Fields `role` and `exp` are required in JWT"
_SIGNER = "Failed to generate JWT signer, check your JWT secret or JWKS configuration"


class TokenRejected(Exception):
    """Why a JWT was refused, worded for each place Realtime reports it."""

    def __init__(self, problem: TokenProblem, detail: str = "") -> None:
        super().__init__(problem)
        self.problem: TokenProblem = problem
        self.detail = detail

    @property
    def connect_error(self) -> tuple[int, str]:
        """HTTP status and `{"error": ...}` text of a refused websocket upgrade."""
        match self.problem:
            case "missing":
                return 401, "API key is missing"
            case "malformed" | "invalid_exp":
                return 401, "The token provided is not a valid JWT"
            case "signature":
                return 401, "Failed to validate JWT signature"
            case "signer":
                return 401, _SIGNER
            case "expired":
                return 401, "Token has expired"
            case "missing_claims":
                return 401, _MISSING_CLAIMS

    @property
    def message(self) -> str:
        """The text of a channel shutdown (`system` error message)."""
        match self.problem:
            case "missing" | "malformed":
                return "The token provided is not a valid JWT"
            case "signature":
                return "Failed to validate JWT signature"
            case "signer":
                return _SIGNER
            case "expired":
                return self.detail
            case "missing_claims":
                return _MISSING_CLAIMS
            case "invalid_exp":
                return "Token expiration time is invalid"

    @property
    def refresh_message(self) -> str:
        """The shutdown text after an `access_token` refresh. Realtime's handler names a few
        errors; the rest reach the client as Elixir's `inspect` of the error atom."""
        match self.problem:
            case "signature":
                return ":signature_error"
            case "signer":
                return ":error_generating_signer"
            case _:
                return self.message

    @property
    def join_reason(self) -> str:
        """The `reason` of a join error reply: `<Code>: <message>`."""
        code = {
            "missing": "MalformedJWT",
            "malformed": "MalformedJWT",
            "signature": "JwtSignatureError",
            "signer": "JwtSignerError",
            "expired": "InvalidJWTToken",
            "missing_claims": "InvalidJWTToken",
            "invalid_exp": "InvalidJWTToken",
        }[self.problem]
        return f"{code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Claims:
    token: str
    claims: dict[str, Any]

    @property
    def role(self) -> str:
        return str(self.claims["role"])

    @property
    def sub(self) -> str | None:
        sub = self.claims.get("sub")
        return None if sub is None else str(sub)

    @property
    def exp(self) -> float:
        return float(self.claims["exp"])


def clean_token(token: str) -> str:
    """Realtime URL-decodes the token and strips all whitespace."""
    return _WHITESPACE.sub("", unquote(token))


def verify_token(token: str | None, secret: str, *, now: float | None = None) -> Claims:
    """HS256/384/512 with the project secret; `role` and `exp` required, `exp` in the future."""
    if not token:
        raise TokenRejected("missing")
    token = clean_token(token)
    return _checked(token, _signed_claims(token, secret), now)


class TokenVerifier:
    """`verify_token` that remembers, per token, that its signature was good.

    A client sends the same token with every request (the daemon its service-role key with every
    batch), and decoding and checking the signature cost the hub more CPU than the rest of a small
    batch. Time-dependent checks (`exp`) run on every call, as before.
    """

    def __init__(self, secret: str, *, size: int = 256) -> None:
        self._secret = secret
        self._size = size
        self._signed: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        """How many tokens it remembers (at most `size`)."""
        return len(self._signed)

    def verify(self, token: str | None, *, now: float | None = None) -> Claims:
        if not token:
            raise TokenRejected("missing")
        token = clean_token(token)
        claims = self._signed.get(token)
        if claims is None:
            claims = _signed_claims(token, self._secret)
            self._signed[token] = claims
            if len(self._signed) > self._size:
                self._signed.popitem(last=False)
        else:
            self._signed.move_to_end(token)
        return _checked(token, claims, now)


def _signed_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token whose algorithm and signature are good (nothing time-dependent)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise TokenRejected("malformed") from None
    if header.get("alg") not in _HMAC_ALGORITHMS:
        raise TokenRejected("signer")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=list(_HMAC_ALGORITHMS),
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenRejected("signature") from None
    except jwt.PyJWTError:
        raise TokenRejected("malformed") from None
    return claims


def _checked(token: str, claims: dict[str, Any], now: float | None) -> Claims:
    current = int(time.time() if now is None else now)
    exp = claims.get("exp")
    if exp is not None:
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise TokenRejected("invalid_exp")
        if round(exp) <= current:
            raise TokenRejected("expired", f"Token has expired {current - round(exp)} seconds ago")
    iat = claims.get("iat")
    if iat is not None and (isinstance(iat, bool) or not isinstance(iat, int | float)):
        raise TokenRejected("malformed")
    if "role" not in claims or "exp" not in claims:
        raise TokenRejected("missing_claims")
    return Claims(token, claims)


def bearer_token(authorization: str | None, apikey: str | None) -> str | None:
    """REST auth: `Authorization: Bearer <jwt>` (any case) wins over the `apikey` header."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value
        return None if apikey is None else apikey
    return apikey or None


class PolicyCheckFailed(Exception):
    """The database could not answer an RLS check (unreachable, or the policy itself failed)."""

    def __init__(self, kind: Literal["unavailable", "rls_error"], detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Everything an RLS check sets for its transaction."""

    topic: str  # channel name without `realtime:`
    claims: Claims
    headers: dict[str, str]

    def settings(self) -> tuple[str, str, str, str, str, str]:
        return (
            self.claims.role,
            self.topic,
            json.dumps(self.claims.claims),
            self.claims.sub or "",
            self.claims.role,
            json.dumps(self.headers),
        )


class Authorizer:
    """Runs Realtime's read and write checks through a connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._bypass: dict[str, bool] = {}

    async def _bypasses_rls(self, role: str) -> bool:
        """Cached per role: a BYPASSRLS role's write check always passes, so skip the round
        trips (a batch of 100 topics would otherwise cost 100 transactions)."""
        if role not in self._bypass:
            value = await self._pool.fetchval(sqlfiles.query("hub_role_bypasses_rls"), role)
            self._bypass[role] = bool(value)
        return self._bypass[role]

    async def can_read(self, ctx: AuthContext) -> bool:
        """Broadcast read permission (presence is not served by the hub, so it is not probed)."""
        probes = {uuid.uuid4(): "broadcast"}
        try:
            async with self._pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                try:
                    for probe_id, ext in probes.items():
                        await conn.execute(
                            sqlfiles.query("hub_insert_probe"), ctx.topic, ext, probe_id
                        )
                    await conn.fetchrow(sqlfiles.query("hub_set_claims"), *ctx.settings())
                    rows = await conn.fetch(sqlfiles.query("hub_select_probes"), list(probes))
                finally:
                    await tx.rollback()
        except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError) as exc:
            raise PolicyCheckFailed("unavailable", str(exc)) from exc
        except asyncpg.PostgresError as exc:
            raise PolicyCheckFailed("rls_error", str(exc)) from exc
        return bool(rows)

    async def can_write(self, ctx: AuthContext) -> bool:
        try:
            if await self._bypasses_rls(ctx.claims.role):
                return True
            async with self._pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                try:
                    await conn.fetchrow(sqlfiles.query("hub_set_claims"), *ctx.settings())
                    try:
                        async with conn.transaction():
                            await conn.execute(
                                sqlfiles.query("hub_write_probe"),
                                ctx.topic,
                                "broadcast",
                                uuid.uuid4(),
                            )
                    except asyncpg.InsufficientPrivilegeError:
                        return False
                    return True
                finally:
                    await tx.rollback()
        except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError) as exc:
            raise PolicyCheckFailed("unavailable", str(exc)) from exc
        except asyncpg.PostgresError as exc:
            raise PolicyCheckFailed("rls_error", str(exc)) from exc
