"""`results-realtime migrate`."""

from __future__ import annotations

import argparse
import textwrap

from daemon.commands.args import add_setting_option, settings_for
from daemon.db import connect
from daemon.log import configure_logging
from daemon.migrate import migrate
from daemon.signals import run_interruptibly

HELP = "apply the SQL migrations and (re)install the triggers"
DESCRIPTION = textwrap.fill(  # one paragraph, wrapped as the other commands' help is
    "Applies each numbered file of sql/migrations once, in order, each in its own transaction, "
    "recording it in results_realtime.schema_migrations; then re-applies sql/triggers.sql. "
    "A second run changes nothing. Supabase-managed objects and the app's own tables are only "
    "created where they are missing. Ctrl-C (or SIGTERM) stops it at once, even while it is "
    "still connecting: the migration in progress is rolled back, and the exit code is 130.",
    width=96,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_option(
        parser,
        "--database-url",
        ("database", "url"),
        help="overrides DATABASE_URL / database.url",
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    configure_logging(level=settings.daemon.log_level)
    dsn = settings.database.url

    async def _go() -> None:
        conn = await connect(
            dsn, connect_timeout=settings.database.connect_timeout_s, role="migrate"
        )
        try:
            await migrate(conn)
        finally:
            await conn.close()

    run_interruptibly(_go())
    return 0
