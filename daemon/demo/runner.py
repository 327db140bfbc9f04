"""Orchestration of the demo: one TaskGroup owns the hub, the daemon, the web page, the lesson
simulation and the terminal view; a throwaway PostgreSQL is started when none is configured,
and on a configured server the demo uses a database of its own (daemon/demo/owndb.py).

`DemoStack` (database + migrations + seed + hub + daemon + web page) is also what the browser and
JS end-to-end tests run, through `results-realtime demo --no-simulate --ready-json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from daemon.client.matrix import Matrix, RefetchRequest, parse_snapshot
from daemon.client.refetch import (
    Claims,
    DatabaseRefetcher,
    claims_from_token,
    read_assignment_results,
)
from daemon.client.subscription import ClientStatus, ResultsSubscription, SubscriptionConfig
from daemon.client.view import fit_to_height, render_matrix
from daemon.config import Settings
from daemon.db import connect, create_pool
from daemon.demo.hint import watch_command, write_token
from daemon.demo.owndb import own_database
from daemon.demo.seed import School, demo_school, seed
from daemon.demo.simulate import plan_lesson, simulate
from daemon.demo.web import (
    PageGroup,
    PageSettings,
    assets_dir,
    assets_ready,
    bind,
    build_app,
    how_to_build,
)
from daemon.demo.web import start_web as start_web_app
from daemon.errors import DatabaseError
from daemon.hub import run_hub
from daemon.localpg import LocalPostgres, configured_dsn
from daemon.log import get_logger
from daemon.migrate import migrate
from daemon.pipeline.service import PipelineService
from daemon.signals import GracefulStop
from daemon.tokens import mint_token, new_jwt_secret

log = get_logger(__name__)

_DAEMON_START_TIMEOUT_S = 30.0
_CONVERGE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float | None = None  # None = until Ctrl-C
    speed: float = 1.0
    host: str = "127.0.0.1"
    web_port: int = 8000
    hub_port: int = 54321
    simulate: bool = True
    live: bool = True  # the rich terminal view; False = log lines and a final table
    ready_json: bool = False  # print one JSON line with the stack's addresses (tests)
    keep_database: bool = False  # on a configured server: keep the demo's own database at exit
    lesson_span_s: float = 120.0
    seed: int = 7


@dataclass(slots=True)
class DemoStack:
    """Everything running; addresses and credentials for the views and the tests."""

    database_url: str
    jwt_secret: str
    hub_url: str
    web_url: str
    school: School
    pool: asyncpg.Pool
    teacher_tokens: dict[str, str] = field(default_factory=dict)

    def teacher_claims(self, group_id: str) -> Claims:
        return claims_from_token(self.teacher_tokens[group_id], secret=self.jwt_secret)

    def page_url(self, group_id: str) -> str:
        return f"{self.web_url}/?group={group_id}"

    def ready_info(self) -> dict[str, Any]:
        school = self.school
        return {
            "event": "demo.ready",
            "databaseUrl": self.database_url,
            "jwtSecret": self.jwt_secret,
            "hubUrl": self.hub_url,
            "webUrl": self.web_url,
            "anonKey": mint_token(self.jwt_secret, role="anon", ttl_s=12 * 3600),
            "serviceRoleKey": mint_token(self.jwt_secret, role="service_role", ttl_s=12 * 3600),
            "lessonId": school.lesson_id,
            "groups": [
                {
                    "id": g.id,
                    "name": g.name,
                    "pageUrl": self.page_url(g.id),
                    "teacherId": school.teacher_of(g.id).id,
                    "teacherToken": self.teacher_tokens[g.id],
                    "pupilIds": [p.id for p in school.pupils_of(g.id)],
                }
                for g in school.groups
            ],
            "activities": [
                {"id": a.id, "kind": a.kind, "title": a.title} for a in school.activities
            ],
        }


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The configured database as is, or a throwaway local PostgreSQL for the demo's lifetime.

    `results-realtime demo` never passes a user's database here: `own_database` first makes
    the configured one the demo's own."""
    configured = settings.database.url or configured_dsn()
    if configured is not None:
        yield configured
        return
    local = LocalPostgres()
    starting = asyncio.get_running_loop().run_in_executor(None, local.start)
    try:
        dsn = await asyncio.shield(starting)  # a stop signal cancels the wait, not the thread
    except BaseException:
        local.abort()  # kills initdb / pg_ctl, so the thread ends now
        with contextlib.suppress(Exception):  # its own failure or the abort: cleaned up below
            await starting
        await asyncio.to_thread(local.stop)  # and the half-made data directory is removed
        raise
    log.info("demo.database_started", note="throwaway PostgreSQL; deleted on exit")
    try:
        yield dsn
    finally:
        await asyncio.to_thread(local.stop)


async def _prepare(dsn: str, school: School, timeout_s: float) -> None:
    conn = await connect(dsn, connect_timeout=timeout_s, role="demo", purpose="for the demo")
    try:
        await migrate(conn)
        await seed(conn, school)
    finally:
        await conn.close()


def _daemon_settings(settings: Settings, dsn: str, hub_url: str, secret: str) -> Settings:
    return settings.model_copy(
        update={
            "database": settings.database.model_copy(update={"url": dsn}),
            "realtime": settings.realtime.model_copy(
                update={"url": hub_url, "jwt_secret": secret, "service_role_key": None}
            ),
            "daemon": settings.daemon.model_copy(update={"health_port": 0}),
        }
    )


@contextlib.asynccontextmanager
async def demo_stack(settings: Settings, options: DemoOptions) -> AsyncIterator[DemoStack]:
    """Database, migrations, seed, hub, daemon and web page; torn down in reverse order."""
    school = demo_school()
    secret = settings.realtime.jwt_secret or new_jwt_secret()
    web_sock = bind(options.host, options.web_port, what="demo web page")
    try:
        async with database(settings) as dsn:
            timeout_s = settings.database.connect_timeout_s
            await _prepare(dsn, school, timeout_s)
            async with (
                run_hub(
                    settings.hub,
                    database_url=dsn,
                    jwt_secret=secret,
                    host=options.host,
                    port=options.hub_port,
                    port_option="--hub-port",
                ) as hub,
                _daemon(_daemon_settings(settings, dsn, hub.url, secret)),
                _pool(dsn, timeout_s) as pool,
            ):
                tokens = {
                    g.id: mint_token(
                        secret,
                        role="authenticated",
                        sub=school.teacher_of(g.id).id,
                        ttl_s=12 * 3600,
                    )
                    for g in school.groups
                }
                page = PageSettings(
                    supabase_url=hub.url,
                    anon_key=mint_token(secret, role="anon", ttl_s=12 * 3600),
                    jwt_secret=secret,
                    lesson_id=school.lesson_id,
                    title=school.lesson_title,
                    groups=tuple(PageGroup(g.id, g.name, tokens[g.id]) for g in school.groups),
                    names=school.names,
                    enabled=settings.realtime.enabled,
                    poll_interval_s=settings.client.poll_interval_s,
                )
                assets = assets_dir()
                if not assets_ready(assets):
                    log.warning(
                        "demo.page_not_built",
                        assets=str(assets),
                        fix=f"{how_to_build(assets)}; the terminal view works without it",
                    )
                port = web_sock.getsockname()[1]
                runner = await start_web_app(build_app(pool, page, assets), web_sock)
                try:
                    yield DemoStack(
                        database_url=dsn,
                        jwt_secret=secret,
                        hub_url=hub.url,
                        web_url=f"http://{options.host}:{port}",
                        school=school,
                        pool=pool,
                        teacher_tokens=tokens,
                    )
                finally:
                    await runner.cleanup()
    finally:
        web_sock.close()


@contextlib.asynccontextmanager
async def _pool(dsn: str, timeout_s: float) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(dsn, max_size=4, connect_timeout=timeout_s, role="demo")
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def _daemon(settings: Settings) -> AsyncIterator[PipelineService]:
    service = PipelineService(settings)
    task = asyncio.create_task(service.run(), name="demo.daemon")
    try:
        started = asyncio.create_task(service.started.wait())
        done, _ = await asyncio.wait(
            {task, started}, timeout=_DAEMON_START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        started.cancel()
        if task in done:
            task.result()  # raises the start-up error
            raise DatabaseError("the daemon stopped during start-up")
        if not done:
            raise DatabaseError(f"the daemon did not start within {_DAEMON_START_TIMEOUT_S}s")
        yield service
    finally:
        service.stop()
        try:
            async with asyncio.timeout(settings.daemon.shutdown_timeout_s + 2):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        except BaseException:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task


# ---------------------------------------------------------------------------------------- the run


def _subscription(
    stack: DemoStack,
    settings: Settings,
    group_id: str,
    on_change: Callable[[Matrix, ClientStatus], None] | None = None,
) -> ResultsSubscription:
    config = SubscriptionConfig(
        realtime_url=stack.hub_url,
        access_token=stack.teacher_tokens[group_id],
        group_id=group_id,
        lesson_id=stack.school.lesson_id,
        enabled=settings.realtime.enabled,
        poll_interval_s=settings.client.poll_interval_s,
        rejoin_max_backoff_s=settings.client.rejoin_max_backoff_s,
    )
    refetcher = DatabaseRefetcher(stack.pool, stack.teacher_claims(group_id))
    return ResultsSubscription(config, refetcher, on_change=on_change)


def _banner(stack: DemoStack) -> Panel:
    lines = Text()
    for g in stack.school.groups:
        lines.append("page  ", style="bold")
        lines.append(stack.page_url(g.id) + "\n", style="link " + stack.page_url(g.id))
    lines.append("watch ", style="bold")
    lines.append("the command printed above, in another terminal", style="dim")
    return Panel(lines, title="results-realtime demo", subtitle="Ctrl-C stops")


def _print_watch_hint(stack: DemoStack, group_id: str, console: Console, tmp: Path) -> None:
    token_file = write_token(tmp, group_id, stack.teacher_tokens[group_id])
    for line in watch_command(
        group_id=group_id,
        lesson_id=stack.school.lesson_id,
        hub_url=stack.hub_url,
        database_url=stack.database_url,
        token_file=token_file,
    ):
        console.print(line, soft_wrap=True, markup=False, highlight=False)


async def _converged(stack: DemoStack, sub: ResultsSubscription) -> bool:
    """Does the live matrix equal what the database says now? (The demo's end check.)"""

    async def same() -> bool:
        async with stack.pool.acquire() as conn:
            raw = await read_assignment_results(
                conn,
                sub.config.group_id,
                sub.config.lesson_id,
                RefetchRequest("assignment", "converge"),
                None,
            )
        truth = parse_snapshot(raw)
        live = sub.matrix
        return all(
            (c2 := live.cell(c.pupil_id, c.activity_id)) is not None
            and (c2.status, c2.score, c2.upload_count, c2.needs_marking)
            == (c.status, c.score, c.upload_count, c.needs_marking)
            for c in truth.cells
        )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CONVERGE_TIMEOUT_S
    while True:
        if await same():
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)  # polling the database with a deadline, not synchronisation


async def run_demo(
    settings: Settings, options: DemoOptions, console: Console, stop: GracefulStop
) -> dict[str, Any]:
    """Runs until the duration ends or a stop signal; returns the summary it also logs.

    Run it under `run_interruptibly(..., stop)`: a signal during start-up cancels it (exit
    130); once everything is up, the first one ends the lesson politely and the second
    cancels the rest of the shutdown."""
    async with (
        own_database(settings, keep=options.keep_database, report=_reporter(console)) as mine,
        demo_stack(mine, options) as stack,
    ):
        stop.arm()
        return await _run(stack, settings, options, console, stop.requested)


def _reporter(console: Console) -> Callable[[str], None]:
    def report(line: str) -> None:
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    return report


async def _run(
    stack: DemoStack,
    settings: Settings,
    options: DemoOptions,
    console: Console,
    stop: asyncio.Event,
) -> dict[str, Any]:
    group_id = stack.school.groups[0].id
    if options.ready_json:
        print(json.dumps(stack.ready_info()), flush=True)
    log.info(
        "demo.ready",
        pages=[stack.page_url(g.id) for g in stack.school.groups],
        hub=stack.hub_url,
        group=group_id,
    )
    actions = plan_lesson(stack.school, seed=options.seed, span_s=options.lesson_span_s)
    simulated: Counter[str] = Counter()
    title = f"{stack.school.lesson_title} · {stack.school.groups[0].name}"
    names = stack.school.names
    with contextlib.ExitStack() as screens:
        tmp = Path(
            screens.enter_context(tempfile.TemporaryDirectory(prefix="results-realtime-demo-"))
        )
        _print_watch_hint(stack, group_id, console, tmp)
        redraw: Callable[[Matrix, ClientStatus], None] | None = None
        if options.live:
            live = screens.enter_context(Live(console=console, refresh_per_second=8))
            banner = _banner(stack)

            def redraw(matrix: Matrix, status: ClientStatus) -> None:
                def build(max_pupils: int | None) -> RenderableType:
                    return render_matrix(
                        matrix, status, names=names, title=title, max_pupils=max_pupils
                    )

                room = console.size.height - len(console.render_lines(banner, pad=False))
                live.update(Group(banner, fit_to_height(console, room, build)))

        else:
            console.print(_banner(stack))
        subs = [
            _subscription(stack, settings, g.id, redraw if i == 0 else None)
            for i, g in enumerate(stack.school.groups)
        ]
        async with asyncio.TaskGroup() as tasks:
            runners = [tasks.create_task(s.run(), name="demo.subscription") for s in subs]
            await subs[0].wait_until(lambda m, _: m.loaded, 30.0)
            sim = (
                tasks.create_task(
                    simulate(
                        stack.pool,
                        actions,
                        speed=options.speed,
                        on_action=lambda a: simulated.update((a.kind,)),
                    )
                )
                if options.simulate
                else None
            )
            reporter = (
                None
                if options.live
                else tasks.create_task(
                    _report_progress(console, options.duration_s, simulated, subs),
                    name="demo.progress",
                )
            )
            try:
                async with asyncio.timeout(options.duration_s):
                    await stop.wait()
            except TimeoutError:
                log.info("demo.duration_reached", duration_s=options.duration_s)
            if reporter is not None:
                reporter.cancel()
            if sim is not None:
                sim.cancel()
            converged = [await _converged(stack, s) for s in subs]
            for r in runners:
                r.cancel()
    if not options.live:
        console.print(render_matrix(subs[0].matrix, subs[0].status, names=names, title=title))
    summary = {
        "actions_planned": len(actions),
        "simulated": dict(simulated),
        "messages_received": sum(s.status.messages_received for s in subs),
        "cells_submitted": sum(
            1 for s in subs for c in s.matrix.cells.values() if c.status != "not_submitted"
        ),
        "gaps": sum(s.matrix.counters.gaps for s in subs),
        "duplicates": sum(s.matrix.counters.duplicates for s in subs),
        "converged": all(converged),
    }
    log.info("demo.summary", **summary)
    console.print(
        f"demo finished, {len(subs)} groups (the matrix above is {stack.school.groups[0].name}'s): "
        f"{summary['messages_received']} messages received, "
        f"{summary['cells_submitted']} cells submitted, "
        + ("live views equal the database" if summary["converged"] else "NOT converged"),
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    return summary


_PROGRESS_EVERY_S = 2.0


def progress_line(
    elapsed_s: float,
    duration_s: float | None,
    simulated: Counter[str],
    views: list[tuple[Matrix, ClientStatus]],
) -> str:
    """One human line for the plain (not live) mode, where the log lines are JSON."""
    submitted = sum(
        1 for matrix, _ in views for c in matrix.cells.values() if c.status != "not_submitted"
    )
    cells = sum(len(matrix.activities) * len(matrix.pupil_ids) for matrix, _ in views)
    states = sorted({status.connection for _, status in views})
    gaps = sum(matrix.counters.gaps for matrix, _ in views)
    clock = f"{elapsed_s:.0f}" if duration_s is None else f"{elapsed_s:.0f}/{duration_s:.0f}"
    return (
        f"demo {clock} s: {sum(simulated.values())} writes simulated, "
        f"{sum(status.messages_received for _, status in views)} messages received, "
        f"{submitted} of {cells} cells submitted, {gaps} gaps, views {'/'.join(states)}"
    )


async def _report_progress(
    console: Console,
    duration_s: float | None,
    simulated: Counter[str],
    subs: list[ResultsSubscription],
) -> None:
    """Plain mode: someone reading a log still sees the lesson move, every couple of seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        await asyncio.sleep(_PROGRESS_EVERY_S)
        views = [(s.matrix, s.status) for s in subs]
        line = progress_line(loop.time() - started, duration_s, simulated, views)
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def default_live() -> bool:
    return sys.stdout.isatty()


__all__ = ["DemoOptions", "DemoStack", "RefetchRequest", "demo_stack", "run_demo"]
