"""`results-realtime`: one console script, one subcommand per component.

Exit codes: 0 ok · 1 unexpected error · 2 bad usage or configuration · 3 database unreachable or
unsuitable · 4 Realtime unreachable or refusing · 5 a port is taken · 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, Protocol, cast

from daemon import __version__
from daemon.errors import ResultsRealtimeError


class Subcommand(Protocol):
    """Each subcommand module exposes these two functions; the CLI only wires them."""

    HELP: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


SUBCOMMANDS: dict[str, str] = {
    "migrate": "daemon.commands.migrate",
    "run": "daemon.commands.run",
    "check": "daemon.commands.check",
    "hub": "daemon.commands.hub",
    "watch": "daemon.commands.watch",
    "demo": "daemon.commands.demo",
}

# The commands whose normal end is a stop signal (an orchestrator's SIGTERM, a person's Ctrl-C):
# a signal at any moment of their life, start-up included, exits 0. The others exit 130.
STOPPED_BY_SIGNAL_IS_SUCCESS = frozenset({"run", "hub", "watch"})

EPILOG = """\
configuration: config.toml (or --config / RESULTS_REALTIME_CONFIG), overridden by environment
variables: DATABASE_URL, SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_JWT_SECRET,
RESULTS_REALTIME_ENABLED, and RESULTS_REALTIME_<SECTION>_<KEY> for every other key; an option
that names a setting (--database-url, --health-port, ...) overrides both.

exit codes: 0 ok, 1 unexpected error, 2 bad usage or configuration, 3 database problem,
4 Realtime problem, 5 port in use, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand's own parser is in `parser.subcommands`."""
    parser = argparse.ArgumentParser(
        prog="results-realtime",
        description="Live results for the teacher's dashboard: SQL triggers -> daemon -> "
        "Supabase Realtime channels assignment_results:{groupId}:{lessonId}.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    children: dict[str, argparse.ArgumentParser] = {}
    for name, module_name in SUBCOMMANDS.items():
        module = cast(Subcommand, importlib.import_module(module_name))
        child = sub.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        child.add_argument(
            "--config",
            type=Path,
            default=None,
            help="config file (default: $RESULTS_REALTIME_CONFIG, else ./config.toml if present)",
        )
        module.add_arguments(child)
        child.set_defaults(handler=module.run)
        children[name] = child
    parser.set_defaults(subcommands=children)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Like parse_args, but an unknown option of a subcommand is reported with that
    subcommand's usage (argparse leaves them to the top-level parser, whose usage says nothing
    about the subcommand's options)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        child: argparse.ArgumentParser = args.subcommands[args.command]
        child.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    # Until a command installs its own handlers, SIGTERM would kill the process with 143 (a
    # `docker stop` in the first second, while the imports run): it interrupts like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_command(argv)
    except KeyboardInterrupt:
        return 0 if _command_named(argv) in STOPPED_BY_SIGNAL_IS_SUCCESS else 130
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default is
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run_command(argv: Sequence[str] | None) -> int:
    # building the parser imports every subcommand, and parsing may resolve a host name:
    # a signal may land in either as well as in the command
    args = parse(build_parser(), argv)
    try:
        code: int = args.handler(args)
        return code
    except ResultsRealtimeError as exc:
        return _report(args.command, [exc])
    except BaseExceptionGroup as group:
        # A command's task group failed. When every failure is one we raise on purpose (a
        # subscription refused for good, say), it reads like any other of our errors; anything
        # else is a bug and keeps its traceback.
        ours, others = group.split(ResultsRealtimeError)
        if ours is None or others is not None:
            raise
        return _report(args.command, _leaves(ours))


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _command_named(argv: Sequence[str] | None) -> str | None:
    """The subcommand of a command line, read without the parser (a signal may interrupt its
    construction): the top-level options take no value, so it is the first word that is not one."""
    words = sys.argv[1:] if argv is None else argv
    return next((word for word in words if not word.startswith("-")), None)


def _report(command: str, errors: Sequence[ResultsRealtimeError]) -> int:
    """One line per error; the exit code of the first."""
    for exc in errors:
        print(f"results-realtime {command}: error: {exc}", file=sys.stderr)
    return errors[0].exit_code


def _leaves(group: BaseExceptionGroup[ResultsRealtimeError]) -> list[ResultsRealtimeError]:
    leaves: list[ResultsRealtimeError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


if __name__ == "__main__":
    raise SystemExit(main())
