"""The daemon in-process against a real PostgreSQL and a real HTTP server."""

from __future__ import annotations

import socket
import traceback
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from daemon.errors import PortInUseError
from daemon.localpg import free_port
from tests.support.capture_server import CaptureServer
from tests.support.cells import assert_gapless, cell_is, cells_of, last_cell
from tests.support.daemon import fast_settings, running
from tests.support.school import School, seed_school, submit_text
from tests.support.waiting import eventually


@pytest.fixture
async def school(db: asyncpg.Connection) -> School:
    return await seed_school(db)


async def test_pupil_ai_teacher_and_delete_in_order(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    pupil, channel = school.pupils[0], school.channel()
    async with running(database_url, fast_settings(capture_server.url)):
        await submit_text(db, "a-text", pupil, "my answer")
        await capture_server.wait_until(cell_is(channel, "a-text", pupil, seq=1))
        await db.execute(
            "update submissions set ai_score = 7, ai_model = 'marker-1', ai_feedback = 'ok',"
            " ai_marked_at = now() where activity_id = 'a-text' and user_id = $1",
            pupil,
        )
        await capture_server.wait_until(cell_is(channel, "a-text", pupil, seq=2))
        await db.execute(
            "update submissions set teacher_score = 9, teacher_marked_at = now()"
            " where activity_id = 'a-text' and user_id = $1",
            pupil,
        )
        await capture_server.wait_until(cell_is(channel, "a-text", pupil, seq=3))
        await db.execute(
            "delete from submissions where activity_id = 'a-text' and user_id = $1", pupil
        )
        await capture_server.wait_until(cell_is(channel, "a-text", pupil, seq=4))
    states = [cells_of(m)[0] for m in capture_server.by_channel()[channel]]
    assert [(c["op"], c["source"], c["status"]) for c in states] == [
        ("insert", "pupil", "submitted"),
        ("update", "ai", "ai_marked"),
        ("update", "teacher", "teacher_marked"),
        ("delete", "system", "not_submitted"),
    ]
    assert [c["score"] for c in states] == [None, 7, 9, None]
    assert [c["needsMarking"] for c in states] == [True, False, False, False]
    assert states[1]["ai"]["model"] == "marker-1"
    assert states[3]["submissionId"] is None
    assert [c["prevSeq"] for c in states] == [None, 1, 2, 3]
    assert len({c["eventId"] for c in states}) == 4
    assert {r.headers["Authorization"] for r in capture_server.requests} == {
        "Bearer service-role-key-for-tests"
    }
    assert_gapless(capture_server)


async def test_upload_and_its_deletion_toggle_has_upload(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    pupil, channel = school.pupils[1], school.channel()
    name = f"{school.lesson}/a-upload/{pupil}/essay.pdf"
    async with running(database_url, fast_settings(capture_server.url)):
        await db.execute(
            "insert into storage.objects (bucket_id, name) values ('submissions', $1)", name
        )
        await capture_server.wait_until(
            cell_is(channel, "a-upload", pupil, hasUpload=True, status="submitted")
        )
        await db.execute("delete from storage.objects where name = $1", name)
        await capture_server.wait_until(cell_is(channel, "a-upload", pupil, hasUpload=False))
    first, last = (cells_of(m)[0] for m in capture_server.by_channel()[channel])
    assert (first["source"], first["uploadCount"], first["needsMarking"]) == ("upload", 1, True)
    assert (last["uploadCount"], last["needsMarking"], last["status"]) == (
        0,
        False,
        "not_submitted",
    )


async def test_a_pupil_in_two_groups_reaches_both_channels(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    pupil = school.both_groups_pupil
    async with running(database_url, fast_settings(capture_server.url)):
        await submit_text(db, "a-choice", pupil, "B")
        for group in school.groups:
            await capture_server.wait_until(cell_is(school.channel(group), "a-choice", pupil))
    assert set(capture_server.by_channel()) == {school.channel(g) for g in school.groups}
    assert all(m["private"] is True for m in capture_server.accepted)


async def test_seq_continues_across_a_restart(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    channel = school.channel()
    settings = fast_settings(capture_server.url)
    async with running(database_url, settings):
        await submit_text(db, "a-text", school.pupils[0], "one")
        await capture_server.wait_until(cell_is(channel, "a-text", school.pupils[0], seq=1))
    # changed while no daemon runs: caught up at the next start
    await submit_text(db, "a-text", school.pupils[1], "two")
    async with running(database_url, settings):
        await capture_server.wait_until(cell_is(channel, "a-text", school.pupils[1], seq=2))
        await submit_text(db, "a-text", school.pupils[2], "three")
        await capture_server.wait_until(cell_is(channel, "a-text", school.pupils[2], seq=3))
    assert_gapless(capture_server)


async def test_after_a_server_restart_the_daemon_leaves_a_seq_gap_and_clients_see_it(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    channel, pupil = school.channel(), school.pupils[0]
    settings = fast_settings(capture_server.url)
    async with running(database_url, settings):
        await submit_text(db, "a-text", pupil, "before")
        await capture_server.wait_until(cell_is(channel, "a-text", pupil, seq=1))
    # What a server restart (or crash recovery) looks like to the next daemon start.
    await db.execute("update results_realtime.runtime_state set server_instance = 'earlier'")
    await submit_text(db, "a-text", pupil, "after")
    async with running(database_url, settings):
        await capture_server.wait_until(cell_is(channel, "a-text", pupil, seq=10_002))
    states = [cells_of(m)[0] for m in capture_server.by_channel()[channel]]
    seqs = [(c["seq"], c["prevSeq"]) for c in states]
    # seqs 2..10,001 are skipped: prevSeq 10,001 is not the 1 clients hold, so they refetch
    assert seqs == [(1, None), (10_002, 10_001)]


async def test_terminated_listener_reconnects_and_nothing_is_lost(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    channel = school.channel()
    with capture_logs() as logs:
        async with running(database_url, fast_settings(capture_server.url)) as daemon:
            assert daemon.listener is not None
            await submit_text(db, "a-text", school.pupils[0], "before")
            await capture_server.wait_until(cell_is(channel, "a-text", school.pupils[0]))
            pid = daemon.listener.backend_pid
            assert await db.fetchval("select pg_terminate_backend($1)", pid)
            await submit_text(db, "a-text", school.pupils[1], "while reconnecting")
            await eventually(lambda: daemon.listener is not None and daemon.listener.recoveries)
            await submit_text(db, "a-text", school.pupils[2], "after")
            for pupil in school.pupils[:3]:
                await capture_server.wait_until(cell_is(channel, "a-text", pupil))
    events = [e["event"] for e in logs]
    assert "listener.lost" in events
    assert "listener.recovered" in events
    assert_gapless(capture_server)


@pytest.mark.parametrize("fault", [500, 429, "timeout"])
async def test_realtime_failing_for_a_while_loses_nothing_and_keeps_order(
    database_url: str,
    db: asyncpg.Connection,
    capture_server: CaptureServer,
    school: School,
    fault: int | str,
) -> None:
    # 3 attempts per cycle: 7 failures exhaust two cycles (messages stay staged) then succeed.
    capture_server.fail_next(7, fault)  # type: ignore[arg-type]
    settings = fast_settings(capture_server.url, publish={"max_messages_per_request": 2})
    with capture_logs() as logs:
        async with running(database_url, settings):
            for round_ in range(3):
                for pupil in school.pupils:
                    await submit_text(db, "a-text", pupil, f"round {round_}")
                await submit_text(db, "a-choice", school.both_groups_pupil, f"round {round_}")
            for pupil in school.pupils:
                await capture_server.wait_until(
                    cell_is(school.channel(), "a-text", pupil, op="update")
                )
            for group in school.groups:
                await capture_server.wait_until(
                    cell_is(
                        school.channel(group), "a-choice", school.both_groups_pupil, op="update"
                    )
                )
            await capture_server.wait_until(lambda s: s.faults_left == 0)
    assert_gapless(capture_server)
    events = [e["event"] for e in logs]
    assert events.count("publish.retry_scheduled") >= 4
    assert "publish.stalled" in events
    assert "publish.dead_lettered" not in events


async def test_a_long_realtime_outage_retries_in_a_loop_not_a_recursion(
    database_url: str,
    db: asyncpg.Connection,
    capture_server: CaptureServer,
    school: School,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each stall used to retry by calling the catch-up, which published again: two frames and a
    # batch kept per stall, a RecursionError after ~490 stalls (hours of 401s or 5xx).
    stack_depths: list[int] = []
    async with running(database_url, fast_settings(capture_server.url)) as daemon:
        assert daemon.publisher is not None
        publish = daemon.publisher.publish

        async def recording_publish(*args: Any, **kwargs: Any) -> Any:
            stack_depths.append(len(traceback.extract_stack()))
            return await publish(*args, **kwargs)

        monkeypatch.setattr(daemon.publisher, "publish", recording_publish)
        capture_server.fail_next(5 * 3, 503)  # 3 attempts per stall: 5 stalls
        await submit_text(db, "a-text", school.pupils[0], "through the outage")
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
    assert len(stack_depths) == 6, stack_depths  # 5 stalls, then the delivery
    # The first attempt comes from the publish loop, every retry from the catch-up's loop.
    assert len(set(stack_depths[1:])) == 1, stack_depths


async def test_a_change_written_while_disarmed_and_committed_after_the_arm_is_not_left_waiting(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    # The trigger finds the doorbell disarmed, so the commit rings nothing; the daemon arms the
    # bell while that transaction is still open. The idle poll (30 s here) must not be the only
    # way the change is found.
    settings = fast_settings(capture_server.url, daemon={"idle_poll_interval_s": 30.0})
    writer = await asyncpg.connect(database_url)
    try:
        async with running(database_url, settings):

            async def armed() -> bool:
                return bool(
                    await db.fetchval("select doorbell_armed from results_realtime.runtime_state")
                )

            await eventually(armed, what="the idle daemon arms the doorbell")
            await db.execute("update results_realtime.runtime_state set doorbell_armed = false")
            transaction = writer.transaction()
            await transaction.start()
            await submit_text(writer, "a-text", school.pupils[0], "written while disarmed")
            await db.execute("select pg_notify('results_realtime_v1', '')")  # an idle round
            await eventually(armed, what="the daemon re-arms while the writer is open")
            await transaction.commit()
            await capture_server.wait_until(
                cell_is(school.channel(), "a-text", school.pupils[0]), deadline_s=5.0
            )
    finally:
        await writer.close()


async def test_garbage_notifications_and_unenrichable_rows_are_survived(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    with capture_logs() as logs:
        async with running(database_url, fast_settings(capture_server.url)):
            await db.execute("select pg_notify('results_realtime_v1', $1)", "\x7f" * 300)
            await db.execute("select pg_notify('results_realtime_v1', 'x')")
            # an outbox row for a cell that belongs to no assignment (unknown activity)
            await db.execute(
                "insert into results_realtime.outbox (activity_id, pupil_id, op, source)"
                " values ('no-such-activity', $1, 'insert', 'pupil')",
                uuid.uuid4(),
            )
            await submit_text(db, "a-text", school.pupils[0], "still delivered")
            await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
            await eventually(
                lambda: any(e["event"] == "stage.skipped" for e in logs), what="stage.skipped"
            )
    events = [e["event"] for e in logs]
    assert "listener.unexpected_payload" in events
    assert "pipeline.cycle_failed" not in events
    assert await db.fetchval("select count(*) from results_realtime.outbox") == 0


async def test_a_cell_the_adapter_cannot_enrich_becomes_a_refresh(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    """A bug in the adapter for one activity: its clients are told to refetch; others go on."""
    await db.execute(
        """
        alter function results_realtime.cell_state_v2(text[], uuid[]) rename to cell_state_real;
        create function results_realtime.cell_state_v2(activity_ids text[], pupil_ids uuid[])
        returns table (group_id text, lesson_id text, activity_id text, pupil_id uuid, state json)
        language sql stable as $$
            select s.group_id, s.lesson_id, s.activity_id, s.pupil_id,
                   case when s.activity_id = 'a-choice'
                        then json_build_object('x', 1 / (length(s.activity_id) - 8))
                        else s.state end
            from results_realtime.cell_state_real(activity_ids, pupil_ids) as s
        $$;
        """
    )
    channel, pupil = school.channel(), school.pupils[0]
    async with running(database_url, fast_settings(capture_server.url)):
        await submit_text(db, "a-choice", pupil, "broken")
        await capture_server.wait_until(
            lambda s: any(m["event"] == "result_refresh" for m in s.accepted)
        )
        await submit_text(db, "a-text", pupil, "fine")
        await capture_server.wait_until(cell_is(channel, "a-text", pupil))
    refresh = next(m["payload"] for m in capture_server.accepted if m["event"] == "result_refresh")
    assert (refresh["scope"], refresh["reason"]) == ("cell", "enrich_failed")
    assert (refresh["activityId"], refresh["pupilId"]) == ("a-choice", str(pupil))
    assert_gapless(capture_server)


async def test_rejected_message_is_dead_lettered_and_the_rest_goes_on(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    poisoned = str(school.pupils[0])
    capture_server.reject_when = lambda m: m["payload"].get("pupilId") == poisoned
    async with running(database_url, fast_settings(capture_server.url)):
        await submit_text(db, "a-text", school.pupils[0], "rejected")
        await capture_server.wait_until(lambda s: any(r.status == 422 for r in s.requests))
        await capture_server.wait_until(
            lambda s: any(m["event"] == "result_refresh" for m in s.accepted)
        )
        await submit_text(db, "a-text", school.pupils[1], "accepted")
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[1]))
        await eventually(
            lambda: db.fetchval("select count(*) = 1 from results_realtime.dead_letters"),
            what="a dead letter",
        )
    row = await db.fetchrow("select http_status, response_body from results_realtime.dead_letters")
    assert row is not None
    assert row["http_status"] == 422
    assert "rejected" in row["response_body"]
    assert await db.fetchval("select count(*) from results_realtime.outbox_messages") == 0
    # The refused cell is not lost to the teacher's page: a refetch of the assignment follows
    # the refused message at once, and the channel's seq goes on after it.
    sent = [(m["event"], m["payload"]) for m in capture_server.accepted]
    assert [(event, p["seq"], p.get("reason")) for event, p in sent] == [
        ("result_refresh", 2, "rejected"),
        ("result_cell", 3, None),
    ]
    refresh, cell = sent[0][1], sent[1][1]
    assert (refresh["scope"], refresh["prevSeq"], cell["prevSeq"]) == ("assignment", 1, 2)


async def test_rate_budget_coalesces_instead_of_queueing(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    settings = fast_settings(capture_server.url, publish={"max_messages_per_second": 2})
    pupil = school.pupils[0]
    async with running(database_url, settings):
        for n in range(40):
            await submit_text(db, "a-text", pupil, f"draft {n}")
        final = await db.fetchval(
            "select results_realtime.iso_utc_v1(submitted_at) from submissions"
            " where activity_id = 'a-text' and user_id = $1",
            pupil,
        )
        await capture_server.wait_until(
            cell_is(school.channel(), "a-text", pupil, submittedAt=final), deadline_s=20
        )
    # 40 changes of one cell, at most 2 messages/s: latest state wins, few messages.
    assert len(capture_server.accepted) < 10
    assert_gapless(capture_server)


async def test_two_daemons_publish_each_message_once(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    settings = fast_settings(capture_server.url)
    async with (
        running(database_url, settings) as first,
        running(database_url, settings, wait_for_leader=False) as second,
    ):
        assert first.leader is not None
        assert second.leader is not None
        for round_ in range(3):
            for pupil in school.pupils:
                await submit_text(db, "a-text", pupil, f"round {round_}")
        for pupil in school.pupils:
            await capture_server.wait_until(cell_is(school.channel(), "a-text", pupil, op="update"))
        assert first.leader.is_leader
        assert not second.leader.is_leader
    keys = capture_server.received()
    assert len(keys) == len(set(keys)), "a message was published twice"
    assert_gapless(capture_server)


async def test_flag_off_then_on(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    channel = school.channel()
    async with running(database_url, fast_settings(capture_server.url)):
        await submit_text(db, "a-text", school.pupils[0], "before")
        await capture_server.wait_until(cell_is(channel, "a-text", school.pupils[0]))
    [before] = capture_server.by_channel()[channel]
    port = free_port()
    off = fast_settings(
        capture_server.url, realtime={"enabled": False}, daemon={"health_port": port}
    )
    with capture_logs() as logs:
        async with running(database_url, off), aiohttp.ClientSession() as http:
            assert await db.fetchval("select enabled from results_realtime.runtime_state") is False
            await submit_text(db, "a-text", school.pupils[0], "while off")
            assert await db.fetchval("select count(*) from results_realtime.outbox") == 0
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                body = await response.json()
            assert body["enabled"] is False
            assert body["status"] == "disabled"
    assert "daemon.disabled" in [e["event"] for e in logs]
    assert len(capture_server.by_channel()[channel]) == 1  # nothing published while off
    async with running(database_url, fast_settings(capture_server.url)):
        assert await db.fetchval("select enabled from results_realtime.runtime_state") is True
        await submit_text(db, "a-text", school.pupils[1], "back on")
        await capture_server.wait_until(cell_is(channel, "a-text", school.pupils[1]))
    # pupils[0]'s answer while off was never recorded, so a page subscribed all along must
    # refetch: the first message after the flag came back on does not follow the last one.
    assert last_cell(capture_server, channel, "a-text", school.pupils[0]) == before["payload"]
    after = capture_server.by_channel()[channel][-1]["payload"]
    assert after["prevSeq"] != before["payload"]["seq"]
    assert after["seq"] == before["payload"]["seq"] + 10_001


@pytest.mark.parametrize("configured", [False, True])
async def test_a_start_that_fails_leaves_the_flag_in_the_database_alone(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, configured: bool
) -> None:
    # The flag is database-wide: flipping it on the way to a failed start switched off (or on)
    # the triggers under the daemon already running.
    state = "select enabled from results_realtime.runtime_state"
    await db.execute("update results_realtime.runtime_state set enabled = $1", not configured)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = fast_settings(
            capture_server.url,
            realtime={"enabled": configured},
            daemon={"health_port": taken.getsockname()[1]},
        )
        with capture_logs() as logs, pytest.raises(PortInUseError) as failure:
            async with running(database_url, settings):
                pass
    assert failure.value.exit_code == 5
    assert "daemon.started" not in [e["event"] for e in logs]
    assert await db.fetchval(state) is (not configured)


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_stop_logs_the_same_events_enabled_or_not(
    database_url: str, capture_server: CaptureServer, enabled: bool
) -> None:
    settings = fast_settings(capture_server.url, realtime={"enabled": enabled})
    with capture_logs() as logs:
        async with running(database_url, settings):
            pass
    events = [e["event"] for e in logs if e["event"].startswith("daemon.")]
    after_start = events[events.index("daemon.started") + 1 :]
    assert [e for e in after_start if e != "daemon.disabled"] == [
        "daemon.stopping",
        "daemon.stopped",
    ]


async def healthz(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    """/healthz's body, with its HTTP status as `http_status`."""
    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
        body: dict[str, Any] = await response.json()
        body["http_status"] = response.status
        return body


async def health_becomes(http: aiohttp.ClientSession, port: int, status: str) -> dict[str, Any]:
    """The first /healthz body with this status."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await healthz(http, port))
        return seen["status"] == status

    await eventually(reached, what=f"/healthz {status}")
    return seen


async def test_health_reports_a_stalled_publish_as_degraded_until_it_delivers(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    port = free_port()
    settings = fast_settings(capture_server.url, daemon={"health_port": port})
    async with running(database_url, settings), aiohttp.ClientSession() as http:
        first = await healthz(http, port)
        assert first["publishing"] == {"stalled_since": None, "reason": None}
        capture_server.fail_next(10_000, 503)  # Realtime down for as long as it takes
        await submit_text(db, "a-text", school.pupils[0], "while Realtime is down")
        degraded = await health_becomes(http, port, "degraded")
        assert degraded["http_status"] == 200  # a restart would not bring Realtime back
        assert degraded["problems"] == []
        assert degraded["publishing"]["stalled_since"]
        assert "503" in degraded["publishing"]["reason"]
        capture_server.heal()
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))

        ok = await health_becomes(http, port, "ok")
        assert ok["publishing"]["stalled_since"] is None


async def test_a_work_loop_stuck_behind_a_lock_is_degraded_and_its_statement_is_cancelled(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    """Found by a review: the leader said "ok" for minutes while a lock held its staging."""
    port = free_port()
    settings = fast_settings(capture_server.url, daemon={"health_port": port, "max_lag_s": 1.0})
    blocker = await asyncpg.connect(database_url)
    try:
        with capture_logs() as logs:
            async with running(database_url, settings), aiohttp.ClientSession() as http:
                assert (await healthz(http, port))["behind"] == []
                lock = blocker.transaction()
                await lock.start()
                await blocker.execute("lock table results_realtime.channel_sequences in share mode")
                await submit_text(db, "a-text", school.pupils[0], "behind a lock")
                seen = await health_becomes(http, port, "degraded")
                assert seen["http_status"] == 200
                assert seen["problems"] == []
                [reason] = seen["behind"]
                assert reason.startswith("work: the oldest change waiting is ")
                await eventually(
                    lambda: any(e["event"] == "pipeline.cycle_failed" for e in logs),
                    what="the stuck statement cancelled",
                )
                await lock.rollback()
                await capture_server.wait_until(
                    cell_is(school.channel(), "a-text", school.pupils[0])
                )
                await health_becomes(http, port, "ok")
    finally:
        await blocker.close()
    [failed, *_] = [e for e in logs if e["event"] == "pipeline.cycle_failed"]
    assert "canceling statement due to statement timeout" in failed["error"]


async def test_health_and_metrics_endpoints(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer, school: School
) -> None:
    port = free_port()
    settings = fast_settings(capture_server.url, daemon={"health_port": port})
    async with running(database_url, settings), aiohttp.ClientSession() as http:
        await submit_text(db, "a-text", school.pupils[0], "counted")
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
            health = await response.json()
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            metrics = await response.text()
    assert health["status"] == "ok"
    assert health["enabled"] is True
    assert health["leader"] is True
    assert health["listener"]["connected"] is True
    assert health["listener"]["last_probe_ok_at"]
    assert set(health["outbox"]) == {"depth", "pending", "lag_s"}
    for name in (
        "results_realtime_messages_sent_total 1.0",
        "results_realtime_cells_published_total 1.0",
        'results_realtime_events_received_total{kind="outbox_row"} 1.0',
        "results_realtime_leader 1.0",
        "results_realtime_publish_latency_seconds_count 1.0",
        "results_realtime_commit_to_publish_lag_seconds_count 1.0",
        "results_realtime_outbox_depth 0.0",
    ):
        assert name in metrics, name
