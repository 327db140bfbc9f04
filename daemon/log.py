"""structlog set-up: JSON lines on stdout for machines, a pretty console for people."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "apikey",
        "service_role_key",
        "jwt_secret",
        "authorization",
    }
)


def _redact_secrets(
    _: Any, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Secrets must never reach a log line, whoever logs them."""
    for key in event_dict.keys() & _SECRET_KEYS:
        event_dict[key] = "***"
    return event_dict


def configure_logging(*, level: str = "info", json: bool | None = None) -> None:
    """JSON when stdout is not a TTY (containers, CI), console renderer otherwise."""
    use_json = (not sys.stdout.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.types.FilteringBoundLogger:
    """A lazy logger: configuration done later (in main) still applies to it."""
    logger: structlog.types.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
