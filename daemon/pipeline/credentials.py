"""The service-role credential the publisher presents to Realtime.

In production it is SUPABASE_SERVICE_ROLE_KEY. For local development with only the JWT secret
(the hub, the demo), a service_role token is minted and re-minted before it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from daemon.config import RealtimeSettings
from daemon.errors import ConfigError
from daemon.log import get_logger
from daemon.tokens import MIN_JWT_SECRET_LENGTH, mint_token

log = get_logger(__name__)

_MINTED_TTL_S = 3600.0
_RENEW_BEFORE_S = 300.0


def require_credential(settings: RealtimeSettings) -> None:
    """A ConfigError (exit 2) unless the settings hold a credential the daemon can publish with."""
    if not settings.service_role_key and not settings.jwt_secret:
        raise ConfigError(
            "no Realtime credential: set SUPABASE_SERVICE_ROLE_KEY (the project's "
            "service_role key), or SUPABASE_JWT_SECRET for local development (a "
            "service_role token is then minted)"
        )
    secret = settings.jwt_secret
    if not settings.service_role_key and secret and len(secret) < MIN_JWT_SECRET_LENGTH:
        raise ConfigError(
            f"SUPABASE_JWT_SECRET is {len(secret)} characters long; a JWT secret has at least "
            f"{MIN_JWT_SECRET_LENGTH} (HS256; Supabase's are longer): use the secret Realtime "
            "(or `results-realtime hub`) verifies tokens with, or set SUPABASE_SERVICE_ROLE_KEY"
        )


class ServiceRoleCredential:
    """`token()` returns a valid service-role JWT for the Authorization and apikey headers."""

    def __init__(
        self, settings: RealtimeSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._static = settings.service_role_key
        self._secret = settings.jwt_secret
        self._minted: tuple[str, float] | None = None
        require_credential(settings)
        self.minted = not self._static
        if self.minted:
            log.info("publish.token_minted", role="service_role", ttl_s=_MINTED_TTL_S)

    def token(self) -> str:
        if self._static:
            return self._static
        assert self._secret is not None
        now = self._clock()
        if self._minted is None or self._minted[1] - now < _RENEW_BEFORE_S:
            token = mint_token(
                self._secret, role="service_role", sub="results-realtime", ttl_s=_MINTED_TTL_S
            )
            self._minted = (token, now + _MINTED_TTL_S)
        return self._minted[0]
