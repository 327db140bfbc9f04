"""`results-realtime demo`: the whole system on one machine, in one command (`make demo`)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from daemon.commands.args import (
    add_setting_option,
    local_address,
    port_number,
    positive_number,
    seconds_or_forever,
    settings_for,
)
from daemon.demo.runner import DemoOptions, run_demo
from daemon.log import configure_logging
from daemon.signals import GracefulStop, run_interruptibly

HELP = "run the whole thing locally: database, hub, daemon, a simulated lesson, live views"
DESCRIPTION = """\
Starts everything a teacher's live results page needs, on this machine:
- PostgreSQL: with nothing configured, a throwaway local server from the PostgreSQL binaries
  found on the machine (or the pgserver package), deleted on exit. With DATABASE_URL or PG*
  set, the demo uses that server but never the database they name: it creates its own database
  results_realtime_demo there (reused if it exists) and drops it at exit unless --keep. A role
  that may not create databases gets exit code 3 and what to do instead;
- the schema (migrations), a seeded school: 2 groups, 1 lesson of 6 activities of every kind,
  28 pupils, 2 teachers;
- the hub (the local Supabase Realtime stand-in) and the daemon;
- a simulated lesson: pupils answer and upload files over a couple of minutes (scaled by
  --speed), the AI marks, a teacher overrides a few marks, some uploads are deleted again;
- the live matrix in the terminal, and the same matrix as a web page (URLs printed, with a
  `results-realtime watch` command to copy: its teacher token is in a file named there).

Ctrl-C (or SIGTERM) stops everything cleanly; a second one does not wait for the polite
shutdown. During start-up (creating the database, connecting: each connect gives up after
database.connect_timeout_s) the first one stops at once: what had started is removed, exit
code 130. A taken port is reported with the option to change it (exit 5). At the end the demo
checks that the live matrices equal the database and logs `demo.summary`.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=seconds_or_forever,
        default=0.0,
        metavar="S",
        help="stop after S seconds (0, the default: until Ctrl-C)",
    )
    parser.add_argument(
        "--speed",
        type=positive_number,
        default=1.0,
        help="lesson speed factor, above 0 (2 = twice as fast; default: %(default)s)",
    )
    parser.add_argument(
        "--web-port",
        type=port_number,
        default=8000,
        metavar="N",
        help="the page's port (0: any free; default: %(default)s)",
    )
    add_setting_option(
        parser,
        "--hub-port",
        ("hub", "port"),
        type=port_number,
        default=None,
        metavar="N",
        help="the hub's port (0: any free; default: hub.port of the configuration, 54321)",
    )
    parser.add_argument(
        "--host",
        type=local_address,
        default="127.0.0.1",
        help="interface for the hub and the page (default: %(default)s)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="on a configured server: keep the demo's database results_realtime_demo at exit",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="no live terminal view: log lines and the final matrix (default when not a TTY)",
    )
    parser.add_argument(
        "--no-simulate", action="store_true", help="start the stack without the simulated lesson"
    )
    parser.add_argument(
        "--ready-json",
        action="store_true",
        help="print one JSON line with URLs, tokens and ids once ready (for tests)",
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    live = not args.plain and sys.stdout.isatty() and not args.ready_json
    configure_logging(level="warning" if live else settings.daemon.log_level)
    options = DemoOptions(
        duration_s=args.duration or None,
        speed=args.speed,
        host=args.host,
        web_port=args.web_port,
        hub_port=settings.hub.port,
        simulate=not args.no_simulate,
        live=live,
        ready_json=args.ready_json,
        keep_database=args.keep,
    )
    console = Console() if live else Console(width=140)
    stop = GracefulStop()
    try:
        summary = run_interruptibly(run_demo(settings, options, console, stop), stop)
    except KeyboardInterrupt:
        when = "while stopping" if stop.armed else "during start-up"
        print(
            f"results-realtime demo: interrupted {when}; stopped what had started", file=sys.stderr
        )
        raise
    return 0 if summary["converged"] else 1
