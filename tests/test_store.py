"""Store: claiming, coalescing, sequencing, budgets, failure isolation, ack and dead letters."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter

import asyncpg
import pytest
from structlog.testing import capture_logs

from daemon.pipeline.payload import encode_payload
from daemon.pipeline.store import _STAGE_LOCK_KEY, OutgoingMessage, Store
from daemon.sqlfiles import query
from tests.fixtures.pipeline import School
from tests.support.waiting import eventually

G1 = "assignment_results:G1:L1"
G2 = "assignment_results:G2:L1"


async def add_pupils(school: School, count: int, group: str = "G1") -> list[str]:
    pupils = [str(uuid.uuid4()) for _ in range(count)]
    await school.conn.executemany(
        "insert into public.group_members values ($1, $2::uuid, 'pupil')",
        [(group, p) for p in pupils],
    )
    return pupils


async def publish_all(store: Store) -> list[OutgoingMessage]:
    """What the daemon does: stage everything, take it, ack it."""
    while (await store.stage_batch(500)).claimed:
        pass
    messages = await store.pending(1000)
    await store.ack([m.id for m in messages])
    return messages


async def test_five_updates_of_one_cell_become_one_cell_with_the_latest_state(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "draft"})
    for score in (1, 2, 3, 4):
        await school.ai_mark("A1", school.p2, score)
    oldest = await school.conn.fetchval("select min(created_at) from results_realtime.outbox")
    result = await store.stage_batch(500)
    assert (result.claimed, result.staged, result.cells, result.skipped) == (5, 1, 1, 0)
    [message] = await store.pending(10)
    assert message.event == "result_cell"
    assert message.payload["aiScore"] == 4
    assert (message.payload["op"], message.payload["source"]) == ("update", "ai")
    assert message.oldest_change_at == oldest
    assert message.payload_bytes == len(encode_payload(message.payload))


async def test_several_cells_of_one_channel_go_in_one_result_cells(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    await school.submit("A3", school.p2, {"choice": "b"})
    await school.upload(school.path("A2", school.p2))
    result = await store.stage_batch(500)
    assert (result.staged, result.cells, result.refreshes) == (1, 3, 0)
    [message] = await store.pending(10)
    assert (message.event, message.channel, message.seq, message.cell_count) == (
        "result_cells",
        G1,
        1,
        3,
    )
    payload = message.payload
    assert set(payload) == {"assignmentId", "eventId", "seq", "prevSeq", "cells"}
    assert (payload["assignmentId"], payload["seq"], payload["prevSeq"]) == ("G1__L1", 1, None)
    # in the order the cells changed, each stamped with the message's seq and eventId
    assert [c["activityId"] for c in payload["cells"]] == ["A1", "A3", "A2"]
    assert {(c["seq"], c["prevSeq"], c["eventId"]) for c in payload["cells"]} == {
        (1, None, payload["eventId"])
    }


async def test_a_batch_over_the_payload_budget_is_split_into_full_messages(
    school: School, pool: asyncpg.Pool
) -> None:
    pupils = await add_pupils(school, 12)
    for pupil in pupils:
        await school.submit("A1", pupil, {"text": "x" * 40})
    store = Store(pool, max_payload_bytes=2_500)
    result = await store.stage_batch(500)
    messages = await store.pending(100)
    assert result.staged == len(messages) > 1
    assert all(m.event == "result_cells" for m in messages)
    assert all(m.payload_bytes <= 2_500 for m in messages)
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    carried = [c["pupilId"] for m in messages for c in m.payload["cells"]]
    assert sorted(carried) == sorted(pupils)  # every cell exactly once
    assert result.cells == sum(m.cell_count for m in messages) == 12
    # full: no two neighbouring messages could have been merged
    for a, b in itertools.pairwise(messages):
        assert a.payload_bytes + len(encode_payload(b.payload["cells"][0])) > 2_500


async def test_too_many_messages_for_one_channel_become_one_refresh(
    school: School, pool: asyncpg.Pool
) -> None:
    pupils = await add_pupils(school, 12)
    for pupil in pupils:
        await school.submit("A1", pupil, {"text": "x" * 40})
    await school.submit("A1", school.p1, {"text": "also in G2"})
    store = Store(pool, max_payload_bytes=2_500, max_messages_per_channel=2)
    result = await store.stage_batch(500)
    messages = {m.channel: m for m in await store.pending(100)}
    assert (result.staged, result.refreshes) == (2, 1)
    refresh = messages[G1]
    assert refresh.event == "result_refresh"
    assert refresh.payload == {
        "assignmentId": "G1__L1",
        "groupId": "G1",
        "lessonId": "L1",
        "scope": "assignment",
        "pupilId": None,
        "activityId": None,
        "reason": "backlog",
        "eventId": f"{G1}:1",
        "seq": 1,
        "prevSeq": None,
    }
    assert messages[G2].event == "result_cell"  # the other channel is unaffected


async def test_seq_goes_up_by_one_per_channel_across_store_instances(
    school: School, pool: asyncpg.Pool
) -> None:
    seen: dict[str, list[tuple[int, int | None]]] = {G1: [], G2: []}
    for round_ in range(3):
        store = Store(pool, max_payload_bytes=200_000)  # a restarted daemon
        await school.submit("A1", school.p1, {"text": f"round {round_}"})  # G1 and G2
        await school.submit("A2", school.p2, {"text": f"round {round_}"})  # G1 only
        for message in await publish_all(store):
            seen[message.channel].append((message.seq, message.payload["prevSeq"]))
            assert message.payload["eventId"] == f"{message.channel}:{message.seq}"
    assert seen[G1] == [(1, None), (2, 1), (3, 2)]
    assert seen[G2] == [(1, None), (2, 1), (3, 2)]
    assert (
        await school.conn.fetchval(
            "select last_seq from results_realtime.channel_sequences where channel = $1", G1
        )
        == 3
    )


async def test_pending_is_redelivered_identically_until_acked(school: School, store: Store) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    await store.stage_batch(500)
    await school.submit("A1", school.p2, {"text": "b"})
    await store.stage_batch(500)
    first = await store.pending(10)
    again = await store.pending(10)
    assert first == again
    assert [m.seq for m in first] == [1, 2]
    assert [m.id for m in first] == sorted(m.id for m in first)
    assert await store.pending_depth() == 2
    await store.ack([first[0].id])
    assert [m.seq for m in await store.pending(10)] == [2]
    await store.ack([])  # nothing to do


async def test_pending_after_an_id_is_not_hidden_by_published_messages_awaiting_their_ack(
    school: School, store: Store
) -> None:
    """Catch-up pages past what it published: the acks may still be on their way (the stager
    applies them with its next staging), and they must not fill the page."""
    for text in "abcde":
        await school.submit("A1", school.p2, {"text": text})
        await store.stage_batch(500)
    staged = await store.pending(10)
    assert [m.seq for m in staged] == [1, 2, 3, 4, 5]
    published_through = staged[2].id  # three published, none acked yet
    rest = await store.pending(2, after_id=published_through)
    assert [m.seq for m in rest] == [4, 5]
    assert await store.pending(2, after_id=staged[-1].id) == []


async def test_a_failed_staging_keeps_the_raw_changes_and_the_sequence(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    await school.conn.execute(
        "alter table results_realtime.outbox_messages add constraint t_fail check (seq < 0)"
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await store.stage_batch(500)
    assert await store.outbox_depth() == 1
    assert (
        await school.conn.fetchval("select count(*) from results_realtime.channel_sequences") == 0
    )
    await school.conn.execute("alter table results_realtime.outbox_messages drop constraint t_fail")
    assert (await store.stage_batch(500)).staged == 1
    [message] = await store.pending(10)
    assert message.seq == 1


async def test_claim_is_bounded_even_with_a_plan_cached_on_an_empty_outbox(
    school: School, database_url: str
) -> None:
    """measurements.md 4.2: the IN (SELECT ... LIMIT) form claimed a whole 20,000-row backlog."""
    async with asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=1,
        server_settings={"plan_cache_mode": "force_generic_plan"},
    ) as generic:
        store = Store(generic, max_payload_bytes=200_000)
        await school.conn.execute("vacuum analyze results_realtime.outbox")  # known to be empty
        assert (await store.stage_batch(500)).claimed == 0  # planned and cached while empty
        await school.conn.execute(
            "insert into results_realtime.outbox (activity_id, pupil_id, op, source)"
            " select 'A1', gen_random_uuid(), 'insert', 'pupil' from generate_series(1, 20000)"
        )
        result = await store.stage_batch(500)
        assert result.claimed == 500
        assert await store.outbox_depth() == 19_500
        ids = await school.conn.fetchval("select min(id) from results_realtime.outbox")
        assert ids == 501  # the oldest went first


async def _adapter_bug_for_a3(school: School, a3_state: str) -> None:
    """Wraps the schema adapter so that cells of activity A3 get `a3_state` as their state."""
    await school.conn.execute(
        f"""
        alter function results_realtime.cell_state_v2(text[], uuid[]) rename to cell_state_real;
        create function results_realtime.cell_state_v2(activity_ids text[], pupil_ids uuid[])
        returns table (group_id text, lesson_id text, activity_id text, pupil_id uuid, state json)
        language sql stable as $$
            select s.group_id, s.lesson_id, s.activity_id, s.pupil_id,
                   case when s.activity_id = 'A3' then {a3_state} else s.state end
            from results_realtime.cell_state_real(activity_ids, pupil_ids) as s
        $$;
        """
    )


@pytest.fixture
async def cell_state_failing_for_a3(school: School) -> None:
    """A test-only adapter bug: enriching any cell of activity A3 raises division_by_zero."""
    await _adapter_bug_for_a3(school, "json_build_object('x', 1 / (length(s.activity_id) - 2))")


@pytest.mark.usefixtures("cell_state_failing_for_a3")
async def test_an_unenrichable_cell_becomes_a_cell_refresh_and_the_rest_goes_on(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "fine"})
    await school.submit("A3", school.p2, {"choice": "a"})  # cannot be enriched, channel G1
    await school.submit("A3", school.p3, {"choice": "a"})  # cannot be enriched, no channel
    await school.submit("A2", school.p1, {"text": "fine"})  # G1 and G2
    result = await store.stage_batch(500)
    assert (result.claimed, result.skipped, result.refreshes) == (4, 1, 1)
    messages = await store.pending(10)
    by_channel: dict[str, list[OutgoingMessage]] = {}
    for message in messages:
        by_channel.setdefault(message.channel, []).append(message)
    g1 = by_channel[G1]
    assert [m.event for m in g1] == ["result_cells", "result_refresh"]
    assert [c["activityId"] for c in g1[0].payload["cells"]] == ["A1", "A2"]
    refresh = g1[1].payload
    assert (refresh["scope"], refresh["reason"]) == ("cell", "enrich_failed")
    assert (refresh["pupilId"], refresh["activityId"]) == (school.p2, "A3")
    assert (refresh["seq"], refresh["prevSeq"]) == (2, 1)
    assert [m.event for m in by_channel[G2]] == ["result_cell"]
    assert await store.outbox_depth() == 0


@pytest.fixture(params=["'[1, 2]'::json", "null::json"], ids=["array", "null"])
async def cell_state_not_an_object_for_a3(school: School, request: pytest.FixtureRequest) -> None:
    """A test-only adapter bug: the state of any cell of activity A3 is no JSON object."""
    await _adapter_bug_for_a3(school, request.param)


@pytest.mark.usefixtures("cell_state_not_an_object_for_a3")
async def test_a_state_that_is_no_object_becomes_a_cell_refresh_and_the_rest_goes_on(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "fine"})
    await school.submit("A3", school.p2, {"choice": "a"})
    with capture_logs() as logs:
        result = await store.stage_batch(500)
    assert (result.claimed, result.refreshes) == (2, 1)
    cell, refresh = await store.pending(10)
    assert (cell.event, cell.payload["activityId"], cell.payload["seq"]) == ("result_cell", "A1", 1)
    assert (refresh.event, refresh.seq) == ("result_refresh", 2)
    refresh_payload = refresh.payload
    assert (refresh_payload["scope"], refresh_payload["reason"]) == ("cell", "enrich_failed")
    assert (refresh_payload["pupilId"], refresh_payload["activityId"]) == (school.p2, "A3")
    [warning] = [e for e in logs if e["event"] == "store.cell_state_invalid"]
    assert warning["key"] == f"A3/{school.p2}"


async def test_dead_letter_moves_the_message_aside_and_stages_a_refresh_after_it(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    await school.submit("A1", school.p1, {"text": "a"})
    await store.stage_batch(500)
    messages = await store.pending(10)
    rejected = next(m for m in messages if m.channel == G2)
    await store.mark_attempt([rejected.id])
    [refresh] = await store.dead_letter([rejected], status=422, body="bad topic" + "!" * 20_000)
    assert [(m.channel, m.seq) for m in await store.pending(10)] == [(G1, 1), (G2, 2)]
    row = await school.conn.fetchrow("select * from results_realtime.dead_letters")
    assert row is not None
    assert (row["message_id"], row["channel"], row["seq"], row["http_status"]) == (
        rejected.id,
        G2,
        1,
        422,
    )
    assert row["attempts"] == 1
    assert row["response_body"].startswith("bad topic")
    assert len(row["response_body"]) == 10_000
    # What the refused message carried reaches the clients as a refetch of its assignment.
    assert (refresh.channel, refresh.seq, refresh.event) == (G2, 2, "result_refresh")
    assert refresh.payload == {
        "assignmentId": "G2__L1",
        "groupId": "G2",
        "lessonId": "L1",
        "scope": "assignment",
        "pupilId": None,
        "activityId": None,
        "reason": "rejected",
        "eventId": f"{G2}:2",
        "seq": 2,
        "prevSeq": 1,
    }
    assert refresh.oldest_change_at == rejected.oldest_change_at
    assert await store.dead_letter([], status=None, body="") == ()


async def test_a_refused_message_with_a_later_one_on_its_channel_needs_no_refresh(
    school: School, store: Store
) -> None:
    """The later message's prevSeq shows the clients the refused seq's gap: they refetch."""
    await school.submit("A1", school.p2, {"text": "a"})
    await store.stage_batch(500)
    await school.submit("A3", school.p2, {"choice": "b"})
    await store.stage_batch(500)
    first, second = await store.pending(10)
    assert [(m.channel, m.seq) for m in (first, second)] == [(G1, 1), (G1, 2)]  # p2: G1 only
    assert await store.dead_letter([first], status=422, body="no") == ()
    [refresh] = await store.dead_letter([second], status=422, body="no")
    assert (refresh.channel, refresh.seq, refresh.payload["reason"]) == (G1, 3, "rejected")


async def test_a_refused_refresh_is_followed_by_nothing(school: School, store: Store) -> None:
    """A refresh is small: Realtime refusing it refuses the channel, so no loop of refreshes."""
    await school.submit("A1", school.p2, {"text": "a"})
    await store.stage_batch(500)
    [message] = await store.pending(10)
    [refresh] = await store.dead_letter([message], status=422, body="no")
    assert await store.dead_letter([refresh], status=422, body="no") == ()
    assert await store.pending(10) == []
    seqs = await school.conn.fetch("select seq from results_realtime.dead_letters order by seq")
    assert [r["seq"] for r in seqs] == [1, 2]


async def test_depths_and_the_age_of_the_oldest_waiting_change(
    school: School, store: Store
) -> None:
    assert (await store.outbox_depth(), await store.pending_depth()) == (0, 0)
    assert await store.oldest_waiting_age_s() is None
    await school.submit("A1", school.p2, {"text": "a"})
    await school.submit("A3", school.p2, {"choice": "a"})
    assert await store.outbox_depth() == 2
    raw_age = await store.oldest_waiting_age_s()
    assert raw_age is not None
    assert raw_age >= 0
    await store.stage_batch(500)
    assert (await store.outbox_depth(), await store.pending_depth()) == (0, 1)
    staged_age = await store.oldest_waiting_age_s()
    assert staged_age is not None
    assert staged_age >= raw_age
    await store.ack([m.id for m in await store.pending(10)])
    assert await store.oldest_waiting_age_s() is None


async def test_channels_are_staged_in_the_order_they_first_changed(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "G1 first"})
    await school.submit("A1", school.p1, {"text": "then G1 and G2"})
    await store.stage_batch(500)
    assert [m.channel for m in await store.pending(10)] == [G1, G2]
    assert Counter(m.seq for m in await store.pending(10)) == Counter({1: 2})


def test_store_refuses_nonsense_budgets() -> None:
    with pytest.raises(ValueError, match="max_payload_bytes"):
        Store(None, max_payload_bytes=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_messages_per_channel"):
        Store(None, max_payload_bytes=2048, max_messages_per_channel=0)  # type: ignore[arg-type]


async def test_concurrent_stagers_keep_seqs_gapless_and_the_latest_state_last(
    school: School, pool: asyncpg.Pool
) -> None:
    """Stagers racing each other and the writers (the leader lock should prevent it): per
    channel, seqs have no gap and the highest seq of each cell carries its final state."""
    pupils = [*await add_pupils(school, 20), school.p1]
    for pupil in pupils:
        await school.submit("A1", pupil, {"text": "answer"})
    rounds = 5
    writing_done = asyncio.Event()

    async def write() -> None:
        for score in range(1, rounds + 1):
            for pupil in pupils:
                await school.ai_mark("A1", pupil, score)
        writing_done.set()

    async def drain(store: Store) -> None:
        while True:
            finished = writing_done.is_set()
            if not (await store.stage_batch(7)).claimed and finished:
                return

    stores = [Store(pool, max_payload_bytes=3_000) for _ in range(3)]
    await asyncio.gather(write(), *(drain(s) for s in stores))
    messages = await stores[0].pending(10_000)
    latest: dict[tuple[str, str], tuple[int, float]] = {}
    for channel in (G1, G2):
        seqs = [m.seq for m in messages if m.channel == channel]
        assert seqs == list(range(1, len(seqs) + 1)), channel
    for m in messages:
        for cell in [m.payload] if m.event == "result_cell" else m.payload["cells"]:
            key = (m.channel, cell["pupilId"])
            if key not in latest or latest[key][0] < m.seq:
                latest[key] = (m.seq, cell["aiScore"])
    assert len(latest) == len(pupils) + 1  # every pupil in G1, and P1 in G2 as well
    assert {score for _, score in latest.values()} == {rounds}


async def test_a_second_stager_waits_until_the_first_commits(
    school: School, store: Store, database_url: str
) -> None:
    """Staging is serialized, so seq order is always enrichment order (newer state, higher seq)."""
    await school.submit("A1", school.p2, {"text": "a"})
    first = await asyncpg.connect(database_url)
    try:
        transaction = first.transaction()
        await transaction.start()
        await first.execute(query("store_stage_lock"), _STAGE_LOCK_KEY)  # as stage_batch does
        second = asyncio.create_task(store.stage_batch(10))
        await eventually(
            lambda: school.conn.fetchval(
                "select count(*) = 1 from pg_locks where locktype = 'advisory' and not granted"
            ),
            what="the second stager waiting for the staging lock",
        )
        assert not second.done()
        assert await store.outbox_depth() == 1
        await transaction.rollback()
        result = await asyncio.wait_for(second, timeout=10)
        assert result.claimed == 1
    finally:
        await first.close()


async def _stage_while_another_session_stages(
    school: School, store: Store, database_url: str, meanwhile: str
) -> tuple[int, int]:
    """Let stage_batch read the outbox, then run `meanwhile` (SQL) and commit before it does.

    Returns (outbox rows it claimed, the seq of its one message; 0 when it staged none).
    """
    other = await asyncpg.connect(database_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(query("store_stage_lock"), _STAGE_LOCK_KEY)
        staging = asyncio.create_task(store.stage_batch(10))
        await eventually(  # it has read and enriched, and waits to commit under the lock
            lambda: school.conn.fetchval(
                "select count(*) = 1 from pg_locks where locktype = 'advisory' and not granted"
            ),
            what="the stager waiting to commit",
        )
        await other.execute(meanwhile)
        await transaction.commit()
        result = await asyncio.wait_for(staging, timeout=10)
    finally:
        await other.close()
    return result.claimed, (result.messages[0].seq if result.messages else 0)


async def test_rows_staged_by_another_session_meanwhile_are_not_staged_twice(
    school: School, store: Store, database_url: str
) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    claimed, seq = await _stage_while_another_session_stages(
        school, store, database_url, "delete from results_realtime.outbox"
    )
    assert (claimed, seq) == (0, 0)  # its commit changed nothing; the careful path found none
    assert await store.pending_depth() == 0
    assert (
        await school.conn.fetchval("select count(*) from results_realtime.channel_sequences") == 0
    )


async def test_a_channel_staged_by_another_session_meanwhile_keeps_its_seqs_in_order(
    school: School, store: Store, database_url: str
) -> None:
    await school.submit("A1", school.p2, {"text": "a"})  # p2 is in G1 only
    claimed, seq = await _stage_while_another_session_stages(
        school,
        store,
        database_url,
        f"insert into results_realtime.channel_sequences values ('{G1}', 1)",
    )
    assert (claimed, seq) == (1, 2)  # staged again after the other session's seq 1
    [message] = await store.pending(10)
    assert (message.channel, message.seq, message.payload["prevSeq"]) == (G1, 2, 1)
    assert await store.outbox_depth() == 0


async def test_stage_batch_returns_the_messages_exactly_as_staged(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p1, {"text": "a"})
    await school.submit("A3", school.p2, {"choice": "b"})
    result = await store.stage_batch(500)
    staged = await store.pending(10)
    assert [(m.id, m.channel, m.seq, m.event, m.cell_count) for m in result.messages] == [
        (m.id, m.channel, m.seq, m.event, m.cell_count) for m in staged
    ]
    for sent, stored in zip(result.messages, staged, strict=True):
        assert sent.payload_json == stored.payload_json  # a redelivery is byte-for-byte the same
        assert sent.payload_json == encode_payload(sent.payload)  # compact, encoded once


async def test_acks_and_the_disarm_ride_along_with_the_next_staging(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p1, {"text": "first"})
    first = await store.stage_batch(500)
    await store.arm_doorbell()
    await school.submit("A1", school.p2, {"text": "second"})
    second = await store.stage_batch(500, ack=[m.id for m in first.messages], disarm=True)
    assert [m.id for m in await store.pending(10)] == [m.id for m in second.messages]
    armed = "select doorbell_armed from results_realtime.runtime_state"
    assert await school.conn.fetchval(armed) is False
    await store.arm_doorbell(ack=[m.id for m in second.messages])
    assert await store.pending_depth() == 0
    assert await school.conn.fetchval(armed) is True


async def test_a_server_restart_leaves_a_seq_gap_that_clients_detect(
    school: School, store: Store
) -> None:
    assert await store.check_server_restart() is False  # first check: records the instance
    await school.submit("A1", school.p2, {"text": "before"})
    [before] = (await store.stage_batch(500)).messages
    assert (before.channel, before.seq) == (G1, 1)
    assert await store.check_server_restart() is False  # same server: no gap
    # Simulate a restart: the recorded server instance is no longer the current one.
    await school.conn.execute(
        "update results_realtime.runtime_state set server_instance = 'an earlier start'"
    )
    assert await store.check_server_restart() is True
    assert await store.check_server_restart() is False  # once per restart
    await school.submit("A1", school.p2, {"text": "after"})
    [after] = (await store.stage_batch(500)).messages
    # No seq that a crash could have lost (published, then rolled back) is ever used again.
    assert after.seq == before.seq + 10_001
    assert after.payload["prevSeq"] != before.seq  # a client that applied seq 1 refetches
    assert after.payload["eventId"] == f"{G1}:{after.seq}"
