"""structlog set-up: JSON lines on stdout for machines, a pretty console for people."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

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


def _component_from_logger_name(
    _: Any, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """A library's record names its logger (asyncpg.pool, aiohttp.client): its component."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        event_dict.setdefault("component", record.name)
    return event_dict


class _LibraryHandler(logging.StreamHandler[TextIO]):
    """The root handler `configure_logging` owns: a second call replaces it, never adds one."""


# Libraries' debug output is protocol traffic (websockets logs frame contents, a join's token
# among them), not daemon diagnostics: their records below info are dropped even at debug.
_LIBRARY_FLOOR = logging.INFO


def configure_logging(*, level: str = "info", json: bool | None = None) -> None:
    """JSON when stdout is not a TTY (containers, CI), console renderer otherwise.

    Libraries log through the standard `logging` (asyncpg's pool, aiohttp, asyncio): a root
    handler renders their records like our own lines, one object per line with `component` set
    to the logger's name, instead of Python's last-resort plain-text tracebacks on stderr.
    """
    use_json = (not sys.stdout.isatty()) if json is None else json
    threshold: int = logging.getLevelName(level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        # Locals in a traceback can hold a DSN or a token: never shown.
        else structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
        )
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
        structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )

    handler = _LibraryHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_component_from_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    library_level = max(threshold, _LIBRARY_FLOOR)
    handler.setLevel(library_level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(library_level)
    logging.captureWarnings(True)  # Python's warnings (deprecations, say) as records too


def get_logger(name: str) -> structlog.types.FilteringBoundLogger:
    """A lazy logger: configuration done later (in main) still applies to it."""
    logger: structlog.types.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
