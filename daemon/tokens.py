"""Minting Supabase-style JWTs (HS256) for local use: the hub, the demo and the tests."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

Role = str  # 'anon' | 'authenticated' | 'service_role' (any Postgres role name is accepted)

# Supabase refuses shorter JWT secrets, PyJWT warns below it, and an HS256 key of fewer bytes is
# guessable (RFC 7518 3.2). The hub and the daemon's minting both hold secrets to it.
MIN_JWT_SECRET_LENGTH = 32


def new_jwt_secret() -> str:
    """A fresh secret, long enough for HS256 (Supabase requires at least 32 characters)."""
    return secrets.token_urlsafe(48)


def mint_token(
    secret: str, *, role: Role, sub: str | None = None, ttl_s: float = 3600.0, **claims: Any
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"role": role, "iat": now, "exp": now + int(ttl_s), **claims}
    if sub is not None:
        payload["sub"] = sub
    return jwt.encode(payload, secret, algorithm="HS256")
