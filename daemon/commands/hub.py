"""`results-realtime hub`: the local Supabase-Realtime-compatible server."""

from __future__ import annotations

import argparse
import asyncio
import textwrap

from daemon.commands.args import add_setting_option, port_number, settings_for
from daemon.errors import ConfigError
from daemon.heap import freeze_startup_heap
from daemon.hub import Hub
from daemon.log import configure_logging, get_logger
from daemon.signals import StopSignals, finishes_before
from daemon.tokens import MIN_JWT_SECRET_LENGTH

log = get_logger(__name__)

HELP = "run the local Supabase-Realtime-compatible hub (websocket + REST broadcast)"
DESCRIPTION = textwrap.fill(  # one paragraph, wrapped as the other commands' help is
    "Serves the Realtime websocket at /realtime/v1/websocket and /socket/websocket (vsn 1.0.0 "
    "and 2.0.0) and the broadcast REST API at /realtime/v1/api/broadcast, on one port, so "
    "SUPABASE_URL=http://HOST:PORT works for the daemon and for supabase-js unchanged. Tokens are "
    "verified with SUPABASE_JWT_SECRET; private channels are authorized by the RLS policies of "
    "realtime.messages in DATABASE_URL, as Supabase Realtime does, so the database must be "
    "migrated (`results-realtime migrate`; else the hub refuses to start, exit code 3). "
    "SUPABASE_JWT_SECRET must have at least 32 characters (else exit code 2). Limits: [hub] in "
    "config.toml. SIGTERM/SIGINT close every socket (1001, logged as hub.socket.disconnected "
    "code 1001 closed_by hub) and exit 0; a second signal stops waiting for that (logged as "
    "hub.stop_cut_short), exit 0; during start-up (e.g. while the database does not answer) they "
    "stop it at once, exit 0.",
    width=96,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_option(
        parser,
        "--host",
        ("hub", "host"),
        help="address to listen on (default: hub.host, 127.0.0.1)",
    )
    add_setting_option(
        parser,
        "--port",
        ("hub", "port"),
        type=port_number,
        help="port to listen on (default: hub.port, 54321; 0 = a free port)",
    )
    add_setting_option(
        parser,
        "--database-url",
        ("database", "url"),
        help="overrides DATABASE_URL / database.url",
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    configure_logging(level=settings.daemon.log_level)
    secret = settings.realtime.jwt_secret
    if not secret:
        raise ConfigError(
            f"the hub needs the JWT signing secret: set SUPABASE_JWT_SECRET (at least "
            f"{MIN_JWT_SECRET_LENGTH} characters; the same value the clients' tokens are signed "
            "with)"
        )
    hub = Hub(
        settings.hub,
        database_url=settings.database.url,
        jwt_secret=secret,
    )
    asyncio.run(_serve(hub))
    return 0


async def _serve(hub: Hub) -> None:
    with StopSignals().installed() as signals:
        if not await finishes_before(hub.start(), signals.first):
            log.info("hub.start_abandoned", reason="stop requested")
            return
        freeze_startup_heap()
        try:
            await signals.first.wait()
            log.info("hub.stopping")
        finally:
            if not await finishes_before(hub.stop(), signals.again):
                log.warning(
                    "hub.stop_cut_short",
                    reason="a second stop signal",
                    note="sockets and database connections still open are left to the exit",
                )
