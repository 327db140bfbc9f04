"""The daemon through failures of its database: outages, a killed leader session, flag changes."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from daemon.localpg import free_port
from daemon.sqlfiles import query
from tests.support.capture_server import CaptureServer
from tests.support.cells import assert_gapless, cell_is
from tests.support.daemon import fast_settings, running
from tests.support.school import seed_school, submit_text
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually


async def healthz(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, object]]:
    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status, await response.json()


async def test_database_outage_is_reported_and_survived(
    pg_proxy: TcpProxy, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    school = await seed_school(db)
    port = free_port()
    settings = fast_settings(capture_server.url, daemon={"health_port": port})
    with capture_logs() as logs:
        async with running(pg_proxy.dsn(), settings), aiohttp.ClientSession() as http:
            await submit_text(db, "a-text", school.pupils[0], "before")
            await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
            assert (await healthz(http, port))[0] == 200
            pg_proxy.refuse()
            pg_proxy.cut()  # every daemon connection drops; the writers (direct) go on
            await submit_text(db, "a-text", school.pupils[1], "during the outage")

            async def unhealthy() -> bool:
                status, body = await healthz(http, port)
                return status == 503 and body["status"] == "unhealthy"

            await eventually(unhealthy, what="/healthz 503")
            pg_proxy.restore()
            await submit_text(db, "a-text", school.pupils[2], "after")
            for pupil in school.pupils[:3]:
                await capture_server.wait_until(cell_is(school.channel(), "a-text", pupil))

            async def healthy() -> bool:
                return (await healthz(http, port))[0] == 200

            await eventually(healthy, what="/healthz 200 again")
    events = [e["event"] for e in logs]
    assert "listener.recovered" in events
    leadership = [
        (e["event"], e.get("reason"))
        for e in logs
        if e["event"] in ("leader.acquired", "leader.lost")  # not leader.standby in between
    ]
    # Lost in the outage (not only at the shutdown), then won back before the cells came.
    assert [event for event, _ in leadership[:3]] == [
        "leader.acquired",
        "leader.lost",
        "leader.acquired",
    ], leadership
    assert leadership[1][1] != "shutting down", leadership
    assert_gapless(capture_server)


async def test_killed_leader_session_pauses_then_resumes(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    school = await seed_school(db)
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with running(database_url, fast_settings(capture_server.url)) as daemon:
            assert daemon.leader is not None
            pid = daemon.leader.backend_pid
            assert await db.fetchval("select pg_terminate_backend($1)", pid)
            await eventually(
                lambda: any(e["event"] == "pipeline.paused" for e in logs), what="paused"
            )
            await eventually(
                lambda: daemon.leader is not None and daemon.leader.backend_pid not in (None, pid),
                what="a new leader session",
            )
            await submit_text(db, "a-text", school.pupils[0], "after")
            await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
    assert [e["event"] for e in logs].count("leader.acquired") == 2
    published = [e for e in logs if e["event"] == "batch.published"]
    assert published
    assert {e["term"] for e in published} == {2}  # context bound per leadership term
    assert all("cycle" in e for e in published)


async def test_work_connection_killed_alone_is_survived(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    # Only the work loop's connection fails (an admin, a statement timeout, a deadlock): the
    # leader session, the listener and the lock are fine. Before Python 3.13 the failed task
    # group passed for a cancellation and the work loop ended for good, leader lock held.
    school = await seed_school(db)
    with capture_logs() as logs:
        async with running(database_url, fast_settings(capture_server.url)) as daemon:
            await submit_text(db, "a-text", school.pupils[0], "before")
            await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
            killed = await db.fetchval(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where application_name = 'results-realtime work'"
            )
            assert killed == 1
            await eventually(
                lambda: any(e["event"] == "pipeline.cycle_failed" for e in logs),
                what="the failed cycle logged",
            )
            for pupil in school.pupils[1:3]:
                await submit_text(db, "a-text", pupil, "after")
            for pupil in school.pupils[1:3]:
                await capture_server.wait_until(cell_is(school.channel(), "a-text", pupil))
            assert daemon.leader is not None
            assert daemon.leader.is_leader
    assert [e["event"] for e in logs].count("leader.acquired") == 1  # the same term went on
    assert_gapless(capture_server)


async def test_flag_flipped_in_the_database_is_noticed(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    port = free_port()
    settings = fast_settings(capture_server.url, daemon={"health_port": port})
    with capture_logs() as logs:
        async with running(database_url, settings), aiohttp.ClientSession() as http:
            await db.execute("update results_realtime.runtime_state set enabled = false")
            await eventually(
                lambda: any(e["event"] == "daemon.flag_changed" for e in logs), what="noticed"
            )
            status, body = await healthz(http, port)
    assert status == 200
    assert body["enabled"] is False


DIVERGE_COPY = "select setval('results_realtime.runtime_flags', 0)"  # off, the row says on


async def test_a_copy_of_the_flags_set_off_by_hand_does_not_silence_the_triggers(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    # The triggers' copy of the flags is a sequence: a setval by hand (as a rolled-back truncate
    # of the state table did before 0014) turns every trigger off while the row says on. The idle
    # daemon compares the copy with the row at its next quiet poll and rewrites the row, and with
    # it the copy.
    school = await seed_school(db)
    copy = "select pg_sequence_last_value('results_realtime.runtime_flags')"
    with capture_logs() as logs:
        async with running(database_url, fast_settings(capture_server.url)):
            await _armed_and_idle(db)  # from now on only a repair writes the row
            await db.execute(DIVERGE_COPY)
            assert await db.fetchval("select enabled from results_realtime.runtime_state")
            # the copy is 0 (off) now, until the daemon repairs it: see its event below

            async def copy_says_on() -> bool:
                return bool(await db.fetchval(copy) & 1)

            await eventually(copy_says_on, what="the copy back in line with the row")
            await submit_text(db, "a-text", school.pupils[0], "recorded again")
            await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
    repaired = [e for e in logs if e["event"] == "daemon.flags_repaired"]
    assert [(e["copy"], e["row"]) for e in repaired] == [(0, 3)]  # enabled and armed


async def test_an_idle_daemon_writes_nothing_to_the_database(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    """Each idle poll used to disarm and re-arm the doorbell: two writes a second, forever."""
    school = await seed_school(db)
    settings = fast_settings(capture_server.url, daemon={"idle_poll_interval_s": 0.05})
    state_version = "select xmin::text from results_realtime.runtime_state"
    async with running(database_url, settings):
        await submit_text(db, "a-text", school.pupils[0], "the daemon was busy once")
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[0]))
        await eventually(
            lambda: db.fetchval("select doorbell_armed from results_realtime.runtime_state"),
            what="the daemon idle, its doorbell armed",
        )
        before = await db.fetchval(state_version)
        await _idle_polls(db, count=3)
        assert await db.fetchval(state_version) == before
        # the bell it left armed still works
        await submit_text(db, "a-text", school.pupils[1], "rung")
        await capture_server.wait_until(cell_is(school.channel(), "a-text", school.pupils[1]))


async def test_work_found_by_a_quiet_poll_silences_the_doorbell_before_it_is_published(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    """A writer whose trigger saw the bell disarmed and that commits after the daemon went idle
    rings nothing; the quiet poll finds its rows. While that batch is published (here slowly: two
    channels at one message a second) the writers must not be NOTIFYing."""
    school = await seed_school(db)
    pupil = school.both_groups_pupil  # one change, two channels: two messages
    settings = fast_settings(
        capture_server.url,
        daemon={"idle_poll_interval_s": 0.05},
        publish={"max_messages_per_second": 1},
    )
    armed = "select doorbell_armed from results_realtime.runtime_state"
    await db.execute("update results_realtime.runtime_state set doorbell_armed = false")
    writer = await asyncpg.connect(database_url)
    try:
        await writer.execute("begin")
        await submit_text(writer, "a-text", pupil, "rang nothing")
        async with running(database_url, settings):
            await eventually(lambda: db.fetchval(armed), what="the daemon idle, its bell armed")
            await _waiting_for_the_bell(db)  # so that it finds the rows with a quiet poll
            await writer.execute("commit")
            await capture_server.wait_until(cell_is(school.channel(), "a-text", pupil))
            assert not await db.fetchval(armed)  # the second message is still waiting
            await capture_server.wait_until(
                cell_is(school.channel(school.groups[1]), "a-text", pupil)
            )
    finally:
        await writer.close()


async def test_the_flags_copy_is_repaired_while_a_writer_transaction_stays_open(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    """An open transaction that wrote outbox rows keeps the idle daemon in short waits; the copy
    the triggers read must be repaired meanwhile, or every change in that time goes unrecorded."""
    school = await seed_school(db)
    copy = "select pg_sequence_last_value('results_realtime.runtime_flags')"
    settings = fast_settings(capture_server.url, daemon={"idle_poll_interval_s": 0.05})
    writer = await asyncpg.connect(database_url)
    try:
        with capture_logs() as logs:
            async with running(database_url, settings):
                await _armed_and_idle(db)
                await writer.execute("begin")
                await submit_text(writer, "a-text", school.pupils[0], "left open")
                await _idle_polls(db, count=2)  # it has seen the open writer
                await db.execute(DIVERGE_COPY)

                async def copy_says_on() -> bool:
                    return bool(await db.fetchval(copy) & 1)

                await eventually(copy_says_on, what="the copy repaired beside the open writer")
                await submit_text(db, "a-text", school.pupils[1], "recorded")
                await capture_server.wait_until(
                    cell_is(school.channel(), "a-text", school.pupils[1])
                )
                await writer.execute("commit")
                await capture_server.wait_until(
                    cell_is(school.channel(), "a-text", school.pupils[0])
                )
        repaired = [e for e in logs if e["event"] == "daemon.flags_repaired"]
        assert [(e["copy"], e["row"]) for e in repaired] == [(0, 3)]
    finally:
        await writer.close()


async def _waiting_for_the_bell(db: asyncpg.Connection) -> None:
    """Until the idle work loop's last statement before it waits is its last one so far."""
    await eventually(
        lambda: db.fetchval(
            "select exists (select from pg_stat_activity"
            " where application_name = 'results-realtime work' and state = 'idle'"
            " and query = $1)",
            query("store_outbox_depth"),
        ),
        interval_s=0.001,
        what="the daemon waiting for its doorbell",
    )


async def _armed_and_idle(db: asyncpg.Connection) -> None:
    """Until the daemon has drained what the seed left and armed the doorbell, the copy of the
    flags in line: an idle daemon writes the state row no more (a busy one arms it again when it
    goes idle, which rewrites the copy too), and two idle polls have passed."""

    async def armed() -> bool:
        row = await db.fetchrow(
            "select doorbell_armed, pg_sequence_last_value('results_realtime.runtime_flags')"
            " as copy, not exists (select from results_realtime.outbox) as drained"
            " from results_realtime.runtime_state"
        )
        return row is not None and row["doorbell_armed"] and row["drained"] and row["copy"] == 3

    await eventually(armed, what="the doorbell armed by the idle daemon")
    await _idle_polls(db, count=2)


async def _idle_polls(db: asyncpg.Connection, *, count: int) -> None:
    """Until the idle work loop has waited `count` more times (each wait follows a new query)."""
    seen: set[object] = set()

    async def waits_seen() -> bool:
        started = await db.fetchval(
            "select query_start from pg_stat_activity"
            " where application_name = 'results-realtime work' and state = 'idle'"
        )
        if started is not None:
            seen.add(started)
        return len(seen) > count

    await eventually(waits_seen, what=f"{count} idle polls of the daemon")


async def test_stop_is_bounded_when_the_database_stops_answering(
    pg_proxy: TcpProxy, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    """Every close step then waits for an answer that never comes: each gives up and aborts."""
    settings = fast_settings(capture_server.url)
    with capture_logs() as logs:
        async with running(pg_proxy.dsn(), settings) as service:
            pg_proxy.black_hole = True  # sockets stay open, nothing is answered
            service.stop()
            await asyncio.wait_for(service.stopped.wait(), settings.daemon.shutdown_timeout_s)
    assert any(e["event"] == "daemon.stopped" for e in logs)
    # aborted, not leaked: the server saw the sessions end, so a standby may take the lock
    await eventually(lambda: pg_proxy.open_connections == 0, what="every connection closed")
    await eventually(
        lambda: db.fetchval("select count(*) = 0 from pg_locks where locktype = 'advisory'"),
        what="the leader lock released",
    )
