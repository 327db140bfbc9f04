"""`results-realtime watch`: the rich rendering (pure) and the command as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import replace

import asyncpg
import pytest
from rich.console import Console, RenderableType

from daemon.client import matrix
from daemon.client.matrix import RefetchRequest, parse_snapshot
from daemon.client.refetch import AssignmentNotFoundError, Claims, RefetchDeniedError
from daemon.client.subscription import ClientStatus, SubscriptionConfig
from daemon.client.view import (
    NEEDS_MARKING_STYLE,
    fit_to_height,
    render_cell,
    render_matrix,
)
from daemon.commands.watch import WatchTarget, explained
from daemon.demo.simulate import Action
from daemon.errors import DatabaseError
from daemon.tokens import mint_token
from tests.fixtures.client import CLI, LESSON, ResultsStack
from tests.fixtures.db import PgServer
from tests.support.process import interrupt_once_connected
from tests.support.silent_server import silent_server

P1, P2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def _cell(pupil: str, activity: str, **state: object) -> dict[str, object]:
    base: dict[str, object] = {
        "pupilId": pupil, "activityId": activity, "status": "not_submitted", "score": None,
        "uploadCount": 0, "hasUpload": False, "needsMarking": False,
    }  # fmt: skip
    return {**base, **state}


def _model() -> matrix.Matrix:
    snapshot = parse_snapshot(
        {
            "groupId": "g",
            "lessonId": "l",
            "seq": 4,
            "activities": [
                {"activityId": "a1", "title": "Essay", "kind": "text", "position": 1},
                {"activityId": "a2", "title": "Photo", "kind": "upload", "position": 2},
            ],
            "pupilIds": [P1, P2],
            "cells": [
                _cell(P1, "a1", status="ai_marked", score=7),
                _cell(
                    P1, "a2", status="submitted", uploadCount=2, hasUpload=True, needsMarking=True
                ),
                _cell(P2, "a1", status="teacher_marked", score=9.5),
                _cell(P2, "a2"),
            ],
        }
    )
    state, _ = matrix.start(matrix.empty("g", "l"))
    state, _ = matrix.apply_snapshot(state, snapshot, RefetchRequest("assignment", "initial"))
    return state


def _text(renderable: object) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_matrix_rendering_shows_glyphs_scores_uploads_and_status() -> None:
    status = ClientStatus(connection="subscribed", messages_received=3)
    text = _text(render_matrix(_model(), status, names={P1: "Amara"}, title="Results"))
    assert "Essay" in text
    assert "Photo" in text
    assert "Amara" in text  # a known name
    assert P2[:8] in text  # else the short id
    assert "◆ 7" in text
    assert "★ 9.5" in text
    assert "● ⇪2" in text
    assert "subscribed" in text
    assert "last seq 4" in text
    assert "messages 3" in text
    assert "needs marking 1" in text
    assert "refetching" not in text


def test_a_running_refetch_shows_a_spinner_notice() -> None:
    status = ClientStatus(connection="reconnecting", refetching=1, last_error="connect: refused")
    text = _text(render_matrix(_model(), status))
    assert "refetching…" in text
    assert "reconnecting" in text
    assert "connect: refused" in text


def test_a_long_reason_is_shown_whole_in_the_status_line() -> None:
    reason = (
        "Unauthorized: You do not have permissions to read from this Channel topic: "
        "assignment_results:grp-7a:lesson-photosynthesis"
    )
    status = ClientStatus(connection="denied", last_error=reason)
    console = Console(record=True, width=90, color_system=None)
    console.print(render_matrix(_model(), status))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 90 for line in lines)
    words = " ".join(" ".join(lines).split())
    assert f"({reason})" in words  # every word of it, none cut (rich wraps between words)
    assert "denied" in words


def test_a_live_view_fits_the_terminal_and_says_how_many_pupils_it_left_out() -> None:
    """A live view taller than the terminal is cut at the bottom: legend, rows, mid-table."""
    pupils = [f"{i + 1:08x}-0000-4000-8000-000000000000" for i in range(30)]
    snapshot = parse_snapshot(
        {
            "groupId": "g", "lessonId": "l", "seq": 1,
            "activities": [{"activityId": "a1", "title": "Essay", "kind": "text", "position": 1}],
            "pupilIds": pupils, "cells": [_cell(p, "a1") for p in pupils],
        }
    )  # fmt: skip
    state, _ = matrix.start(matrix.empty("g", "l"))
    state, _ = matrix.apply_snapshot(state, snapshot, RefetchRequest("assignment", "initial"))
    status = ClientStatus(connection="subscribed")
    console = Console(record=True, width=80, height=24, color_system=None)

    def build(max_pupils: int | None) -> RenderableType:
        return render_matrix(state, status, max_pupils=max_pupils)

    console.print(fit_to_height(console, 24, build))
    lines = console.export_text().splitlines()
    assert len(lines) <= 24
    assert "subscribed" in lines[0]  # the status line first
    shown = sum(1 for p in pupils if any(p[:8] in line for line in lines))
    assert 10 <= shown < 30
    assert f"… {30 - shown} more pupils" in "\n".join(lines)
    console = Console(record=True, width=80, height=60, color_system=None)
    console.print(fit_to_height(console, 60, build))
    assert "more pupils" not in console.export_text()  # all of them fit


def test_needs_marking_is_highlighted() -> None:
    model = _model()
    needs = render_cell(model.cell(P1, "a2"))
    marked = render_cell(model.cell(P1, "a1"))
    assert any(str(span.style) == NEEDS_MARKING_STYLE for span in needs.spans)
    assert not any(str(span.style) == NEEDS_MARKING_STYLE for span in marked.spans)
    # and marked in the text too, for piped output that drops the colours
    assert needs.plain.endswith(" !")
    assert "!" not in marked.plain
    loading = replace(model, loaded=False)
    assert "loading…" in _text(render_matrix(loading, ClientStatus()))


async def test_watch_command_shows_live_changes_and_stops_on_sigint(
    results_stack: ResultsStack,
) -> None:
    group = "grp-7a"
    pupil = results_stack.pupil(group)
    env = {
        **os.environ,
        "DATABASE_URL": results_stack.database_url,
        "SUPABASE_URL": results_stack.hub_url,
        "SUPABASE_JWT_SECRET": results_stack.jwt_secret,
        "RESULTS_REALTIME_DAEMON_LOG_LEVEL": "debug",
    }
    teacher = results_stack.school.teacher_of(group).id
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--plain", "--group", group, "--lesson", LESSON, "--teacher", teacher,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []

    async def until(event: str) -> dict[str, object]:
        assert proc.stdout is not None
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"watch exited before {event}; output: {seen}"
            seen.append(line)
            if line.startswith("{") and json.loads(line).get("event") == event:
                return dict(json.loads(line))

    try:
        async with asyncio.timeout(30):
            await until("client.subscribed")
            await until("client.refetch_done")
            await results_stack.write(
                Action(0, "answer", "act-define", pupil, body=json.dumps({"text": "hi"}))
            )
            message = await until("client.message")
            assert message["broadcast_event"] == "result_cell"
            proc.send_signal(signal.SIGINT)
            rest, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    output = rest.decode()
    assert "Define it" in output  # the activity columns
    assert "●" in output  # the submitted cell
    assert "messages 1" in output
    assert "client.unsubscribed" in output


async def test_watch_without_a_token_explains_what_is_needed() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SUPABASE_JWT_SECRET",)}
    env.pop("RESULTS_REALTIME_TEACHER_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--group", "g", "--lesson", "l",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "--token" in err.decode()
    assert "RESULTS_REALTIME_TEACHER_TOKEN" in err.decode()


def _watch_env(stack: ResultsStack) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "SUPABASE_URL": stack.hub_url,
        "SUPABASE_JWT_SECRET": stack.jwt_secret,
        "RESULTS_REALTIME_DAEMON_LOG_LEVEL": "info",
    }


async def test_watch_as_a_pupil_stops_at_the_refused_join_with_exit_4(
    results_stack: ResultsStack,
) -> None:
    group = "grp-7a"
    pupil = results_stack.pupil(group)
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--plain", "--group", group, "--lesson", LESSON, "--teacher", pupil,
        "--duration", "20",
        env=_watch_env(results_stack), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    error = err.decode()
    assert proc.returncode == 4, error
    assert "Unauthorized: You do not have permissions to read from this Channel topic" in error
    assert f"Is {pupil} a teacher of group {group}?" in error
    events = [json.loads(line)["event"] for line in out.decode().splitlines() if line[:1] == "{"]
    assert events.count("client.join_denied") == 1
    assert "client.rejoin_scheduled" not in events
    assert "denied" in out.decode()  # the final status line


async def test_watch_with_a_token_the_socket_refuses_stops_with_exit_4(
    results_stack: ResultsStack,
) -> None:
    """HTTP 401 at the upgrade: the same key would be refused on every retry."""
    teacher = results_stack.school.teacher_of("grp-7a").id
    forged = mint_token("another-secret-of-at-least-32-characters!", role="authenticated",
                        sub=teacher)  # fmt: skip
    env = {k: v for k, v in _watch_env(results_stack).items() if k != "SUPABASE_JWT_SECRET"}
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--plain", "--group", "grp-7a", "--lesson", LESSON, "--token", forged,
        "--duration", "20",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    error = err.decode()
    assert proc.returncode == 4, error
    assert "HTTP 401: Failed to validate JWT signature" in error
    assert "--token" in error
    events = [json.loads(line)["event"] for line in out.decode().splitlines() if line[:1] == "{"]
    assert events.count("client.connect_denied") == 1
    assert "client.rejoin_scheduled" not in events
    assert "denied" in out.decode()  # the final status line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_while_the_database_does_not_answer_stops_watch_at_once(
    results_stack: ResultsStack, sig: signal.Signals
) -> None:
    async with silent_server() as silent:
        env = {
            **_watch_env(results_stack),
            "DATABASE_URL": silent.dsn(),
            "RESULTS_REALTIME_DATABASE_CONNECT_TIMEOUT_S": "30",
        }
        teacher = results_stack.school.teacher_of("grp-7a").id
        argv = [CLI, "watch", "--plain", "--group", "grp-7a", "--lesson", LESSON]
        code, _, err = await interrupt_once_connected(
            [*argv, "--teacher", teacher], env, sig, silent.accepted
        )
    assert code == 0, err


async def test_watch_rejects_a_teacher_that_is_not_a_uuid() -> None:
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--group", "g", "--lesson", "l", "--teacher", "not-a-uuid",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "--teacher" in err.decode()
    assert "not a UUID: 'not-a-uuid'" in err.decode()


@pytest.mark.parametrize(
    ("url", "expected"),
    [("ftp://x", "not ftp://"), ("not-a-url", "and it has none"), ("http://", "no host name")],
)
async def test_watch_rejects_a_url_that_is_not_http_with_exit_2(url: str, expected: str) -> None:
    env = {**os.environ, "SUPABASE_JWT_SECRET": "s" * 40}
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--group", "g", "--lesson", "l", "--teacher", P1, "--url", url,
        "--duration", "5",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, err.decode()
    assert "realtime.url (from --url): " in err.decode()
    assert expected in err.decode()
    assert "expected an http:// or https:// URL" in err.decode()
    assert f"got {url!r}" in err.decode()
    assert "Traceback" not in err.decode()


async def _watch_to_the_end(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`watch --plain ARGS` to its exit, well within its --duration of 30 s."""
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--plain", *args, "--duration", "30",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    communicating = asyncio.ensure_future(proc.communicate())
    done, _ = await asyncio.wait({communicating}, timeout=20)
    if not done:
        proc.kill()
    out, err = await communicating
    assert done, f"watch still running after 20 s; output: {out.decode()[:3000]} {err.decode()}"
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("enabled", ["true", "false"])
async def test_watch_of_a_lesson_not_assigned_to_the_group_stops_with_exit_3(
    results_stack: ResultsStack, enabled: str
) -> None:
    teacher = results_stack.school.teacher_of("grp-7a").id
    env = {**_watch_env(results_stack), "RESULTS_REALTIME_ENABLED": enabled}
    code, out, err = await _watch_to_the_end(
        "--group", "grp-7a", "--lesson", "nope", "--teacher", teacher, env=env
    )
    assert code == 3, err
    assert "lesson nope is not assigned to group grp-7a" in err
    assert "pass the --group and --lesson of an assignment" in err
    assert len(err.strip().splitlines()) == 1, err
    assert out.count('"client.refetch_failed"') == 1  # not retried


async def test_watch_of_an_unmigrated_database_stops_with_exit_3_saying_migrate(
    results_stack: ResultsStack, pg_server: PgServer
) -> None:
    name = f"rr_watch_unmigrated_{os.getpid()}"
    admin = await asyncpg.connect(pg_server.dsn or None)
    try:
        await admin.execute(f'drop database if exists "{name}"')
        await admin.execute(f'create database "{name}"')
        teacher = results_stack.school.teacher_of("grp-7a").id
        env = {**_watch_env(results_stack), "DATABASE_URL": pg_server.database(name)}
        code, _, err = await _watch_to_the_end(
            "--group", "grp-7a", "--lesson", LESSON, "--teacher", teacher, env=env
        )
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
    assert code == 3, err
    assert "the database is not migrated" in err
    assert "run `results-realtime migrate`" in err


def test_a_refused_refetch_is_explained_with_the_options_to_change() -> None:
    config = SubscriptionConfig(realtime_url="http://x", access_token="t", group_id="g",
                                lesson_id="l")  # fmt: skip
    target = WatchTarget(config=config, claims=Claims("authenticated", P1), database_url=None)
    unassigned = explained(AssignmentNotFoundError("lesson l is not assigned to group g"), target)
    assert str(unassigned) == (
        "lesson l is not assigned to group g: pass the --group and --lesson of an assignment"
    )
    denied = explained(RefetchDeniedError("read_assignment_results refused g/l: no."), target)
    assert f"Is {P1} a teacher of group g? Pass --teacher or --token" in str(denied)
    assert isinstance(denied, DatabaseError)
    assert denied.exit_code == 3


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
async def test_watch_refuses_a_duration_that_is_no_positive_number_with_exit_2(
    value: str,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        CLI, "watch", "--group", "g", "--lesson", "l", "--teacher", P1, "--duration", value,
        env={**os.environ, "SUPABASE_JWT_SECRET": "s" * 40},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, err.decode()
    assert "argument --duration: must be a number of seconds greater than 0" in err.decode()
    assert f"got {value!r}" in err.decode()
