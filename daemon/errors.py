"""The exception tree of results-realtime.

ResultsRealtimeError
├── ConfigError            bad or missing configuration (exit code 2)
├── DatabaseError          PostgreSQL unreachable or unsuitable (exit code 3)
│   └── ListenUnsupportedError   LISTEN does not work (e.g. a transaction-mode pooler)
├── MigrationError         a migration failed; nothing of it was kept
├── PublishError           Realtime refused or could not be reached
│   ├── RetryablePublishError    429, 5xx, timeouts, transport errors
│   └── RejectedPublishError     other 4xx: never retried, dead-lettered
├── LocalPostgresError     the throwaway PostgreSQL could not be started
├── PortInUseError         a port we must listen on is taken
└── RealtimeRefusedError   (daemon/client/subscription.py) Realtime refused a client for good
    │                      (exit code 4)
    ├── JoinDeniedError    the channel's policy refused the join
    └── ConnectDeniedError the socket was refused with HTTP 401 (an invalid or expired key)
"""

from __future__ import annotations


class ResultsRealtimeError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(ResultsRealtimeError):
    exit_code = 2


class DatabaseError(ResultsRealtimeError):
    exit_code = 3


class ListenUnsupportedError(DatabaseError):
    pass


class MigrationError(DatabaseError):
    pass


class PublishError(ResultsRealtimeError):
    exit_code = 4

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class RetryablePublishError(PublishError):
    pass


class RejectedPublishError(PublishError):
    pass


class LocalPostgresError(ResultsRealtimeError):
    exit_code = 3


class PortInUseError(ResultsRealtimeError):
    exit_code = 5


def describe(exc: BaseException) -> str:
    """One readable line for a message or log field: the class and its text, no nested reprs.

    aiohttp's ClientConnectorError repr, for one, spells out its whole connection key; its text
    says "Cannot connect to host 127.0.0.1:54321 ssl:default [Connect call failed ...]".
    """
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
