"""`results-realtime watch --group G --lesson L`: the live results matrix in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from rich.console import Console, RenderableType
from rich.live import Live

from daemon.client.matrix import Matrix
from daemon.client.refetch import (
    AssignmentNotFoundError,
    Claims,
    DatabaseRefetcher,
    PermanentRefetchError,
    RefetchDeniedError,
    claims_from_token,
)
from daemon.client.subscription import (
    ClientStatus,
    JoinDeniedError,
    RealtimeRefusedError,
    ResultsSubscription,
    SubscriptionConfig,
)
from daemon.client.view import fit_to_height, render_matrix
from daemon.commands.args import add_setting_option, seconds_or_forever, settings_for
from daemon.config import Settings
from daemon.db import create_pool
from daemon.errors import ConfigError, DatabaseError
from daemon.log import configure_logging, get_logger
from daemon.schema import require_migrated
from daemon.signals import StopSignals, finishes_before
from daemon.tokens import mint_token

log = get_logger(__name__)

TOKEN_ENV = "RESULTS_REALTIME_TEACHER_TOKEN"
APIKEY_ENV = "SUPABASE_ANON_KEY"

HELP = "show an assignment's results matrix live in the terminal"
DESCRIPTION = f"""\
Subscribes to assignment_results:{{group}}:{{lesson}} like the dashboard does and draws the
pupil x activity matrix: a status glyph and the score per cell (· not submitted, ● submitted,
◆ AI-marked, ★ teacher-marked), ⇪n for n uploaded files, cells marked ! (and highlighted) need
marking. A spinner shows while a refetch runs; the status line shows the connection, the last
seq and the messages received. When the output is not a terminal (piped, or --plain), it logs
JSON lines and prints the final matrix when it stops.

The channel is private, so a teacher's JWT is needed: --token (or
${TOKEN_ENV}), or --teacher UUID to mint one from SUPABASE_JWT_SECRET (local hub / demo
only). Refetches run read_assignment_results over DATABASE_URL under that teacher's claims. With
RESULTS_REALTIME_ENABLED=false nothing subscribes and the matrix is polled every
client.poll_interval_s seconds.

A lost connection, a timeout or a transient refusal (rate limit, database unavailable) is
retried with backoff. A join the channel's policy refuses (the user is not a teacher of the
group: "Unauthorized") is not, nor a connection refused with HTTP 401 (an invalid or expired
key): watch prints the reason and exits with code 4. Nor is a refetch that cannot succeed: a
database that is not migrated, a lesson not assigned to the group, a refetch the database refuses
(exit code 3). SIGINT or SIGTERM stops it at any time,
also while it still waits for the database or Realtime (exit 0).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", required=True, help="group id")
    parser.add_argument("--lesson", required=True, help="lesson id")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", help=f"a teacher's Supabase JWT (default: ${TOKEN_ENV})")
    who.add_argument(
        "--teacher",
        type=user_id,
        metavar="UUID",
        help="mint a token for this teacher's user id (auth.users.id) from SUPABASE_JWT_SECRET",
    )
    add_setting_option(
        parser,
        "--database-url",
        ("database", "url"),
        help="PostgreSQL DSN for refetches (default: DATABASE_URL / database.url)",
    )
    add_setting_option(
        parser,
        "--url",
        ("realtime", "url"),
        help="Supabase URL (default: SUPABASE_URL / realtime.url)",
    )
    parser.add_argument(
        "--apikey", help=f"the project's anon key (default: ${APIKEY_ENV}, else the token)"
    )
    parser.add_argument(
        "--duration",
        type=seconds_or_forever,
        default=0.0,
        metavar="SECONDS",
        help="exit after this many seconds (0: until Ctrl-C)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="no live redraw: log lines, then the final matrix (default when not a TTY)",
    )


def user_id(value: str) -> str:
    """A Supabase user id (auth.users.id) is a UUID; anything else could never be a teacher."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a UUID: {value!r} (the teacher's user id, auth.users.id)"
        ) from None


@dataclass(frozen=True, slots=True)
class WatchTarget:
    config: SubscriptionConfig
    claims: Claims
    database_url: str | None


def resolve_token(
    settings: Settings, *, token: str | None, teacher: str | None
) -> tuple[str, Claims]:
    """The teacher token from --token / env, or minted from the JWT secret for --teacher."""
    secret = settings.realtime.jwt_secret
    if teacher:
        if not secret:
            raise ConfigError(
                "--teacher needs SUPABASE_JWT_SECRET to mint a token; or pass --token"
            )
        token = mint_token(secret, role="authenticated", sub=teacher, ttl_s=12 * 3600)
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise ConfigError(
            "a teacher's JWT is needed to join the private channel: pass --token, "
            f"set {TOKEN_ENV}, or pass --teacher USER_ID with SUPABASE_JWT_SECRET set"
        )
    return token, claims_from_token(token, secret=secret)


def build_target(args: argparse.Namespace, settings: Settings) -> WatchTarget:
    token, claims = resolve_token(settings, token=args.token, teacher=args.teacher)
    config = SubscriptionConfig(
        realtime_url=settings.realtime.url,
        access_token=token,
        apikey=args.apikey or os.environ.get(APIKEY_ENV) or None,
        group_id=args.group,
        lesson_id=args.lesson,
        enabled=settings.realtime.enabled,
        poll_interval_s=settings.client.poll_interval_s,
        rejoin_max_backoff_s=settings.client.rejoin_max_backoff_s,
    )
    return WatchTarget(config, claims, settings.database.url)


@contextlib.asynccontextmanager
async def refetch_pool(database_url: str | None) -> AsyncIterator[asyncpg.Pool]:
    """The refetch pool, on a migrated database only (else exit 3 saying to migrate, as `run`,
    `check` and `hub` do: read_assignment_results is one of the migrations' functions)."""
    pool = await create_pool(database_url, max_size=2, purpose="for refetches", role="watch")
    try:
        async with pool.acquire() as conn:
            try:
                await require_migrated(conn)  # type: ignore[arg-type]
            except DatabaseError as exc:
                raise DatabaseError(f"{exc} (watch reads the results with its functions)") from None
        yield pool
    finally:
        await pool.close()


def explained(refused: PermanentRefetchError, target: WatchTarget) -> DatabaseError:
    """A refetch refused for good (exit 3), with what to pass instead."""
    if isinstance(refused, AssignmentNotFoundError):
        return DatabaseError(f"{refused}: pass the --group and --lesson of an assignment")
    if isinstance(refused, RefetchDeniedError):
        who = target.claims.sub or "the token's user"
        return DatabaseError(
            f"{refused} Is {who} a teacher of group {target.config.group_id}? Pass "
            "--teacher or --token of one of its teachers."
        )
    return DatabaseError(str(refused))


async def watch(target: WatchTarget, *, duration_s: float, live: bool, console: Console) -> None:
    """Until the duration ends or SIGINT/SIGTERM; raises RealtimeRefusedError (exit 4).

    The signal handlers are in place before the first connect, so a signal while the database
    or Realtime does not answer yet stops at once (exit 0), like one during the subscription.
    """
    with StopSignals().installed() as signals:
        await finishes_before(
            _watch(target, duration_s=duration_s, live=live, console=console),
            signals.first,
            again=signals.again,  # a second signal: do not wait for the connections to close
        )


async def _watch(target: WatchTarget, *, duration_s: float, live: bool, console: Console) -> None:
    async with refetch_pool(target.database_url) as pool:
        refetcher = DatabaseRefetcher(pool, target.claims)
        title = f"results {target.config.group_id} / {target.config.lesson_id}"
        if not live:
            sub = ResultsSubscription(target.config, refetcher)
            try:
                await _run_for(sub, duration_s, target)
            finally:
                console.print(render_matrix(sub.matrix, sub.status, title=title))
            return
        with Live(console=console, refresh_per_second=8, transient=False) as screen:

            def redraw(matrix: Matrix, status: ClientStatus) -> None:
                def build(max_pupils: int | None) -> RenderableType:
                    return render_matrix(matrix, status, title=title, max_pupils=max_pupils)

                screen.update(fit_to_height(console, console.size.height, build))

            sub = ResultsSubscription(target.config, refetcher, on_change=redraw)
            redraw(sub.matrix, sub.status)
            try:
                await _run_for(sub, duration_s, target)
            finally:
                redraw(sub.matrix, sub.status)


async def _run_for(sub: ResultsSubscription, duration_s: float, target: WatchTarget) -> None:
    """Runs the subscription until the duration ends (or the caller cancels), it is refused
    (exit 4), or a refetch is refused for good (exit 3)."""
    try:
        async with asyncio.TaskGroup() as tasks:
            runner = tasks.create_task(sub.run())
            await asyncio.wait({runner}, timeout=duration_s or None)
            runner.cancel()
    except* PermanentRefetchError as group:
        refused = group.exceptions[0]
        assert isinstance(refused, PermanentRefetchError)
        raise explained(refused, target) from None
    except* RealtimeRefusedError as group:
        denied = group.exceptions[0]
        if not isinstance(denied, JoinDeniedError):
            raise denied from None
        who = target.claims.sub or "the token's user"
        raise JoinDeniedError(
            denied.channel,
            denied.reason,
            hint=f"Is {who} a teacher of group {target.config.group_id}? Pass --teacher or "
            "--token of one of its teachers.",
        ) from None


def run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    live = not args.plain and sys.stdout.isatty()
    configure_logging(level="warning" if live else settings.daemon.log_level)
    target = build_target(args, settings)
    console = Console() if live else Console(width=160)
    asyncio.run(watch(target, duration_s=args.duration, live=live, console=console))
    return 0
