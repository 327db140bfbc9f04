"""`results-realtime demo`: the whole system on one machine, in one command (`make demo`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console

from daemon.config import load_settings
from daemon.demo.runner import DemoOptions, run_demo
from daemon.log import configure_logging

HELP = "run the whole thing locally: database, hub, daemon, a simulated lesson, live views"
DESCRIPTION = """\
Starts everything a teacher's live results page needs, on this machine:
- PostgreSQL: DATABASE_URL if set (the demo migrates and seeds it!), else a throwaway local server
  from the PostgreSQL binaries found on the machine (deleted on exit);
- the schema (migrations), a seeded school: 2 groups, 1 lesson of 6 activities of every kind,
  28 pupils, 2 teachers;
- the hub (the local Supabase Realtime stand-in) and the daemon;
- a simulated lesson: pupils answer and upload files over a couple of minutes (scaled by
  --speed), the AI marks, a teacher overrides a few marks, some uploads are deleted again;
- the live matrix in the terminal, and the same matrix as a web page (URL printed, with a
  teacher token for `results-realtime watch`).

Ctrl-C stops everything cleanly (a second Ctrl-C does not wait). A taken port is reported with the
option to change it. At the end the demo checks that the live matrices equal the database and
logs `demo.summary`.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after S seconds (default: until Ctrl-C)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="lesson speed factor (2 = twice as fast)"
    )
    parser.add_argument("--web-port", type=int, default=8000, help="the page's port (0: any free)")
    parser.add_argument(
        "--hub-port", type=int, default=None, help="the hub's port (default: hub.port, 54321)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface for the hub and the page")
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
    if args.speed <= 0:
        print("results-realtime demo: error: --speed must be positive", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    live = not args.plain and sys.stdout.isatty() and not args.ready_json
    configure_logging(level="warning" if live else settings.daemon.log_level)
    options = DemoOptions(
        duration_s=max(0.0, args.duration),
        speed=args.speed,
        host=args.host,
        web_port=args.web_port,
        hub_port=settings.hub.port if args.hub_port is None else args.hub_port,
        simulate=not args.no_simulate,
        live=live,
        ready_json=args.ready_json,
    )
    console = Console() if live else Console(width=140)
    summary = asyncio.run(run_demo(settings, options, console))
    return 0 if summary["converged"] else 1
