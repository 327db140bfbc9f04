"""The triggers: every write becomes the right outbox row, the flag and the doorbell are obeyed,
and nothing we do can make the writer's statement fail."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from bench.common import sql as bench_sql
from daemon.pipeline.store import NOTIFY_CHANNEL, Store
from tests.fixtures.pipeline import School


async def test_text_submission_is_recorded_as_pupil_insert(school: School) -> None:
    await school.submit("A1", school.p1, {"text": "Gravity pulls"})
    assert await school.outbox() == [("A1", school.p1, "insert", "pupil")]


async def test_resubmission_ai_and_teacher_marks_and_delete_have_their_sources(
    school: School,
) -> None:
    await school.submit("A1", school.p1, {"text": "first"})
    await school.submit("A1", school.p1, {"text": "second"})
    await school.ai_mark("A1", school.p1, 6)
    await school.teacher_mark("A1", school.p1, 8)
    await school.delete("A1", school.p1)
    assert await school.outbox() == [
        ("A1", school.p1, "insert", "pupil"),
        ("A1", school.p1, "update", "pupil"),
        ("A1", school.p1, "update", "ai"),
        ("A1", school.p1, "update", "teacher"),
        ("A1", school.p1, "delete", "system"),
    ]


async def test_insert_that_already_carries_a_mark_is_attributed_to_the_marker(
    school: School,
) -> None:
    await school.conn.execute(
        "insert into public.submissions (activity_id, user_id, teacher_score) values ($1, $2, 5)",
        "A1",
        school.p1,
    )
    await school.conn.execute(
        "insert into public.submissions (activity_id, user_id, ai_score) values ($1, $2, 4)",
        "A2",
        school.p1,
    )
    assert await school.outbox() == [
        ("A1", school.p1, "insert", "teacher"),
        ("A2", school.p1, "insert", "ai"),
    ]


async def test_update_of_irrelevant_columns_only_records_nothing(school: School) -> None:
    await school.submit("A1", school.p1, {"text": "x"})
    await school.conn.execute("delete from results_realtime.outbox")
    await school.conn.execute("update public.submissions set updated_at = now() + interval '1 s'")
    assert await school.outbox() == []


async def test_moving_a_submission_records_both_cells(school: School) -> None:
    await school.submit("A1", school.p1, {"text": "x"})
    await school.conn.execute("delete from results_realtime.outbox")
    await school.conn.execute("update public.submissions set activity_id = 'A3'")
    assert sorted(await school.outbox()) == [
        ("A1", school.p1, "update", "system"),
        ("A3", school.p1, "update", "system"),
    ]


async def test_one_statement_over_many_rows_records_each_row(school: School) -> None:
    await school.conn.execute(
        "insert into public.submissions (activity_id, user_id, body)"
        " select 'A1', gen_random_uuid(), '{\"text\": \"x\"}' from generate_series(1, 300)"
    )
    await school.conn.execute("update public.submissions set ai_score = 3")
    counts = await school.conn.fetch(
        "select op, source, count(*) from results_realtime.outbox group by 1, 2 order by 1"
    )
    assert [tuple(r) for r in counts] == [("insert", "pupil", 300), ("update", "ai", 300)]


async def test_upsert_records_the_insert_then_the_update(school: School) -> None:
    for score in (5, 6):
        await school.conn.execute(
            "insert into public.submissions (activity_id, user_id, teacher_score)"
            " values ('A1', $1, $2) on conflict (activity_id, user_id)"
            " do update set teacher_score = excluded.teacher_score",
            school.p1,
            score,
        )
    assert await school.outbox() == [
        ("A1", school.p1, "insert", "teacher"),
        ("A1", school.p1, "update", "teacher"),
    ]


async def test_upload_insert_overwrite_move_and_delete(school: School) -> None:
    path = school.path("A2", school.p2)
    await school.upload(path)
    await school.conn.execute(
        "update storage.objects set updated_at = now() + interval '1 s' where name = $1", path
    )
    moved = school.path("A3", school.p2)
    await school.conn.execute("update storage.objects set name = $2 where name = $1", path, moved)
    await school.delete_upload(moved)
    assert await school.outbox() == [
        ("A2", school.p2, "insert", "upload"),
        ("A2", school.p2, "update", "upload"),
        ("A2", school.p2, "delete", "upload"),
        ("A3", school.p2, "insert", "upload"),
        ("A3", school.p2, "delete", "upload"),
    ]
    names = await school.conn.fetch("select object_name from results_realtime.outbox order by id")
    assert [r[0] for r in names] == [path, path, path, moved, moved]


@pytest.mark.parametrize(
    ("bucket", "name"),
    [
        ("avatars", "L1/A2/{p}/photo.png"),  # another bucket
        ("submissions", "L1/A2/photo.png"),  # too few parts
        ("submissions", "L1/A2/not-a-uuid/photo.png"),  # the pupil is not a uuid
        ("submissions", "L1/A2/{P}/photo.png"),  # not the pupil's id as spelt (lower case)
        ("submissions", "L1/NOPE/{p}/photo.png"),  # unknown activity
        ("submissions", "L2/A2/{p}/photo.png"),  # activity of another lesson
        ("submissions", "L1/A2/{p}/"),  # a folder, no file
        ("submissions", "L1/A2/{p}/.emptyFolderPlaceholder"),  # Storage's folder marker
        ("submissions", ""),
    ],
)
async def test_unmappable_object_records_nothing_and_raises_nothing(
    school: School, bucket: str, name: str
) -> None:
    await school.upload(name.format(p=school.p1, P=school.p1.upper()), bucket=bucket)
    await school.conn.execute("update storage.objects set metadata = '{}'")
    await school.conn.execute("delete from storage.objects")
    assert await school.outbox() == []


async def test_object_cell_maps_a_valid_path(school: School) -> None:
    row = await school.conn.fetchrow(
        "select * from results_realtime.object_cell_v1('submissions', $1)",
        school.path("A2", school.p1, "deep/er/file.pdf"),
    )
    assert row is not None
    assert tuple(row) == ("L1", "A2", uuid.UUID(school.p1))


async def test_realtime_turned_back_on_in_any_way_leaves_a_seq_gap(
    school: School, store: Store
) -> None:
    """Changes made while it was off were never recorded: open pages must see a gap, refetch."""
    conn = school.conn
    await conn.execute(
        "insert into results_realtime.channel_sequences (channel, last_seq)"
        " values ('assignment_results:G1:L1', 5)"
    )

    async def last_seq() -> int:
        value = await conn.fetchval("select last_seq from results_realtime.channel_sequences")
        assert isinstance(value, int)
        return value

    await store.set_enabled(True)  # on, and on again (a daemon's start): nothing was missed
    assert await last_seq() == 5
    await conn.execute("update results_realtime.runtime_state set enabled = false")
    assert await last_seq() == 5
    await conn.execute("update results_realtime.runtime_state set enabled = true")  # by hand
    assert await last_seq() == 10_005
    await store.set_enabled(False)
    await store.set_enabled(True)  # a daemon started with the flag on
    assert await last_seq() == 20_005
    await conn.execute("delete from results_realtime.runtime_state")  # off too
    await conn.execute(
        "insert into results_realtime.runtime_state (singleton, enabled) values (true, true)"
    )
    assert await last_seq() == 30_005


async def test_flag_off_records_nothing_and_on_again_records(school: School, store: Store) -> None:
    await store.set_enabled(False)
    assert (await store.flags_state()).enabled is False
    await school.submit("A1", school.p1, {"text": "while off"})
    await school.upload(school.path("A2", school.p1))
    assert await school.outbox() == []
    await store.set_enabled(True)
    assert (await store.flags_state()).enabled is True
    await school.submit("A1", school.p2, {"text": "on again"})
    assert await school.outbox() == [("A1", school.p2, "insert", "pupil")]


async def test_set_enabled_restores_a_missing_state_row(school: School, store: Store) -> None:
    await school.conn.execute("delete from results_realtime.runtime_state")
    assert (await store.flags_state()).enabled is False
    await school.submit("A1", school.p1, {"text": "no state row: recorded nowhere"})
    await store.set_enabled(True)
    await school.submit("A1", school.p2, {"text": "x"})
    assert await school.outbox() == [("A1", school.p2, "insert", "pupil")]


async def _listener(database_url: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    conn = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    return conn, heard


async def test_armed_doorbell_rings_once_per_writing_transaction(
    school: School, store: Store, database_url: str
) -> None:
    listener, heard = await _listener(database_url)
    try:
        await store.arm_doorbell()
        async with school.conn.transaction():
            await school.submit("A1", school.p1, {"text": "a"})
            await school.submit("A1", school.p2, {"text": "b"})
        assert await asyncio.wait_for(heard.get(), timeout=10) == ""
        await school.conn.execute("select pg_notify($1, 'sentinel')", NOTIFY_CHANNEL)
        assert await asyncio.wait_for(heard.get(), timeout=10) == "sentinel"
    finally:
        await listener.close()


async def test_disarmed_doorbell_stays_silent_but_the_change_is_recorded(
    school: School, store: Store, database_url: str
) -> None:
    listener, heard = await _listener(database_url)
    try:
        await store.disarm_doorbell()
        await store.disarm_doorbell()  # idempotent
        await school.submit("A1", school.p1, {"text": "quiet"})
        await school.upload(school.path("A2", school.p1))
        # Notifications arrive in commit order: the sentinel first means no doorbell was rung.
        await school.conn.execute("select pg_notify($1, 'sentinel')", NOTIFY_CHANNEL)
        assert await asyncio.wait_for(heard.get(), timeout=10) == "sentinel"
        assert len(await school.outbox()) == 2
        await store.arm_doorbell()
        await school.submit("A1", school.p2, {"text": "loud"})
        assert await asyncio.wait_for(heard.get(), timeout=10) == ""
    finally:
        await listener.close()


# Stands in for the daemon arming the doorbell at the worst moment: right after the trigger's
# first look at the flags, before its outbox row is written (the flags' copy is a sequence, so the
# arm is seen at once, as a committed arm is).
ARM_WHEN_THE_OUTBOX_IS_WRITTEN = """
create function public.test_arm_the_doorbell() returns trigger language plpgsql as $$
begin
    perform setval('results_realtime.runtime_flags', 3, true);
    return null;
end $$;
create trigger test_arm_the_doorbell after insert on results_realtime.outbox
for each statement execute function public.test_arm_the_doorbell();
"""


@pytest.mark.parametrize("write", ["insert", "update", "upload", "truncate"])
async def test_a_doorbell_armed_while_the_trigger_runs_still_rings(
    school: School, store: Store, database_url: str, write: str
) -> None:
    # The daemon's look for open writers after arming (store_outbox_writers.sql) can come before
    # the writer has locked the outbox; then only a second read of the flags rings the bell.
    if write in ("update", "truncate"):
        await school.submit("A1", school.p1, {"text": "before"})
    listener, heard = await _listener(database_url)
    try:
        await store.disarm_doorbell()
        await school.conn.execute(ARM_WHEN_THE_OUTBOX_IS_WRITTEN)
        if write == "insert":
            await school.submit("A1", school.p2, {"text": "armed meanwhile"})
        elif write == "update":
            await school.ai_mark("A1", school.p1, 5)
        elif write == "upload":
            await school.upload(school.path("A2", school.p1))
        else:
            await school.conn.execute("truncate public.submissions")
        assert await asyncio.wait_for(heard.get(), timeout=10) == ""
    finally:
        await listener.close()


async def test_a_broken_adapter_warns_and_the_upload_still_commits(school: School) -> None:
    await school.conn.execute(
        """
        create or replace function results_realtime.object_cell_v1(
            bucket_id text, name text,
            out lesson_id text, out activity_id text, out pupil_id uuid)
        language plpgsql stable as $$ begin raise exception 'adapter bug'; end $$
        """
    )
    warnings: list[str] = []
    school.conn.add_log_listener(lambda _conn, msg: warnings.append(str(msg)))
    await school.upload(school.path("A2", school.p1))
    assert await school.conn.fetchval("select count(*) from storage.objects") == 1
    assert await school.outbox() == []
    assert any("adapter bug" in w and "results_realtime_insert_v1" in w for w in warnings), warnings


async def test_rows_with_a_null_key_record_nothing_and_every_write_commits(school: School) -> None:
    """An app's own submissions may allow NULL keys; the outbox may not: such rows have no cell."""
    await school.conn.execute(
        "alter table public.submissions alter column user_id drop not null,"
        " alter column activity_id drop not null"
    )
    await school.conn.execute(
        "insert into public.submissions (activity_id, user_id) values ('A1', null), (null, $1)",
        school.p1,
    )
    await school.conn.execute("""update public.submissions set body = '{"text": "b"}'""")
    await school.conn.execute("delete from public.submissions")
    assert await school.conn.fetchval("select count(*) from public.submissions") == 0
    assert await school.outbox() == []


async def test_an_object_mapped_to_no_pupil_records_nothing_and_every_write_commits(
    school: School,
) -> None:
    """An adapted object_cell_v1 may name an activity but no pupil (a teacher's worksheet)."""
    await school.conn.execute(
        """
        create or replace function results_realtime.object_cell_v1(
            bucket_id text, name text,
            out lesson_id text, out activity_id text, out pupil_id uuid)
        language sql stable as $$ select 'L1', 'A2', null::uuid $$
        """
    )
    name = school.path("A2", school.p1)
    await school.upload(name)
    await school.conn.execute("update storage.objects set name = name || '.v2'")
    await school.delete_upload(name + ".v2")
    await school.upload(name)
    await school.conn.execute("truncate storage.objects")
    assert await school.conn.fetchval("select count(*) from storage.objects") == 0
    assert await school.outbox() == []


async def test_a_broken_schema_warns_and_the_submission_still_commits(school: School) -> None:
    await school.conn.execute("drop sequence results_realtime.runtime_flags")
    warnings: list[str] = []
    school.conn.add_log_listener(lambda _conn, msg: warnings.append(str(msg)))
    await school.submit("A1", school.p1, {"text": "still saved"})
    body = await school.conn.fetchval("select body::text from public.submissions")
    assert json.loads(body) == {"text": "still saved"}
    assert any("runtime_flags" in w for w in warnings), warnings


async def test_the_triggers_see_a_flag_change_once_it_commits(
    school: School, database_url: str
) -> None:
    """The triggers read a copy of runtime_state (0011), written at the changing commit only."""
    state = "update results_realtime.runtime_state set enabled = $1"
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute(state, False)
            await school.submit("A1", school.p1, {"text": "off, not yet committed"})
        await school.submit("A1", school.p2, {"text": "off, committed"})
        tx = other.transaction()
        await tx.start()
        await other.execute(state, True)
        await tx.rollback()
        await school.submit("A2", school.p1, {"text": "on again, rolled back"})
        await other.execute(state, True)
        await school.submit("A2", school.p2, {"text": "on again"})
    finally:
        await other.close()
    assert await school.outbox() == [
        ("A1", school.p1, "insert", "pupil"),
        ("A2", school.p2, "insert", "pupil"),
    ]


async def test_mirroring_the_flag_repairs_the_triggers_copy(school: School, store: Store) -> None:
    """The daemon's start rewrites the copy even when the row already holds the flag."""
    await school.conn.execute("select setval('results_realtime.runtime_flags', 0)")  # diverged
    await school.submit("A1", school.p1, {"text": "the copy says off"})
    await store.set_enabled(True)
    await school.submit("A1", school.p2, {"text": "repaired"})
    assert await school.outbox() == [("A1", school.p2, "insert", "pupil")]


async def test_an_emptied_state_table_means_disabled(school: School) -> None:
    await school.conn.execute("delete from results_realtime.runtime_state")
    await school.submit("A1", school.p1, {"text": "no state row"})
    assert await school.outbox() == []


async def test_the_state_table_cannot_be_truncated(school: School) -> None:
    """A truncate could not be mirrored at its commit: rolled back, it still silenced every
    trigger until the daemon noticed. It is refused, and says how to turn realtime off."""
    copy = "select pg_sequence_last_value('results_realtime.runtime_flags')"
    before = await school.conn.fetchval(copy)
    with pytest.raises(asyncpg.FeatureNotSupportedError) as refused:
        await school.conn.execute("truncate results_realtime.runtime_state")
    assert "cannot be truncated" in str(refused.value)
    assert "set enabled = false" in (refused.value.hint or "")
    assert await school.conn.fetchval(copy) == before
    await school.submit("A1", school.p1, {"text": "still recorded"})
    assert await school.outbox() == [("A1", school.p1, "insert", "pupil")]


async def test_writers_without_table_privileges_still_record(
    school: School, database_url: str
) -> None:
    """Supabase writers (authenticated, the storage admin) cannot touch our tables themselves."""
    await school.conn.execute(
        "grant select, insert, update on public.submissions to authenticated;"
        "grant select, insert on storage.objects to authenticated;"
        "create policy pupils_write on public.submissions for all to authenticated"
        " using (true) with check (true)"  # the app's own policy (the table has RLS on)
    )
    async with school.conn.transaction():
        await school.conn.execute("set local role authenticated")
        await school.submit("A1", school.p1, {"text": "as a pupil"})
        await school.upload(school.path("A2", school.p1))
    assert await school.outbox() == [
        ("A1", school.p1, "insert", "pupil"),
        ("A2", school.p1, "insert", "upload"),
    ]


# ---- TRUNCATE: recorded as the deletion of every row it removes ----------------------------------


async def _outbox_with_names(school: School) -> list[tuple[str, str, str, str, str | None]]:
    rows = await school.conn.fetch(
        "select activity_id, pupil_id::text, op, source, object_name from results_realtime.outbox"
    )
    return sorted(tuple(r) for r in rows)  # type: ignore[misc]


async def test_truncating_submissions_records_a_delete_for_every_cell(school: School) -> None:
    await school.submit("A1", school.p1, {"text": "one"})
    await school.submit("A2", school.p1, {"text": "two"})
    await school.submit("A1", school.p2, {"text": "three"})
    await school.submit("B1", school.p3, {"text": "a pupil of no group"})
    await school.conn.execute("delete from results_realtime.outbox")
    await school.conn.execute("truncate public.submissions")
    assert await school.conn.fetchval("select count(*) from public.submissions") == 0
    assert sorted(await school.outbox()) == sorted(
        [
            ("A1", school.p1, "delete", "system"),
            ("A2", school.p1, "delete", "system"),
            ("A1", school.p2, "delete", "system"),
            ("B1", school.p3, "delete", "system"),
        ]
    )


async def test_truncating_objects_records_deletes_of_mappable_submission_objects_only(
    school: School,
) -> None:
    first, second = school.path("A2", school.p1, "a.pdf"), school.path("A2", school.p1, "b.pdf")
    other = school.path("A3", school.p2)
    for name in (first, second, other):
        await school.upload(name)
    await school.upload(school.path("A2", school.p2), bucket="avatars")  # another bucket
    await school.upload(f"L1/A2/{school.p2}/.emptyFolderPlaceholder")  # Storage's folder marker
    await school.upload(f"L1/NOPE/{school.p2}/x.pdf")  # unknown activity
    await school.conn.execute("delete from results_realtime.outbox")
    await school.conn.execute("truncate storage.objects")
    assert await school.conn.fetchval("select count(*) from storage.objects") == 0
    assert await _outbox_with_names(school) == sorted(
        [
            ("A2", school.p1, "delete", "upload", first),
            ("A2", school.p1, "delete", "upload", second),
            ("A3", school.p2, "delete", "upload", other),
        ]
    )


async def test_one_truncate_of_both_tables_with_cascade_records_every_cell(school: School) -> None:
    """All BEFORE TRUNCATE triggers fire before any table is emptied: the submissions that CASCADE
    reaches are recorded, and the objects still map through the activities truncated with them."""
    await school.submit("A1", school.p1, {"text": "x"})
    upload = school.path("A2", school.p2)
    await school.upload(upload)
    await school.conn.execute("delete from results_realtime.outbox")
    await school.conn.execute("truncate storage.objects, public.lessons cascade")
    assert await school.conn.fetchval("select count(*) from public.submissions") == 0
    assert await _outbox_with_names(school) == sorted(
        [
            ("A1", school.p1, "delete", "system", None),
            ("A2", school.p2, "delete", "upload", upload),
        ]
    )


async def test_flag_off_a_truncate_records_nothing_and_on_again_records(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p1, {"text": "x"})
    await school.upload(school.path("A2", school.p1))
    await school.conn.execute("delete from results_realtime.outbox")
    await store.set_enabled(False)
    await school.conn.execute("truncate public.submissions, storage.objects")
    assert await school.outbox() == []
    await store.set_enabled(True)
    await school.conn.execute(
        "insert into public.submissions (activity_id, user_id) values ('A1', $1)", school.p2
    )
    await school.conn.execute("delete from results_realtime.outbox")
    await school.conn.execute("truncate public.submissions, storage.objects")
    assert await school.outbox() == [("A1", school.p2, "delete", "system")]


async def test_a_truncate_rings_the_armed_doorbell_only(
    school: School, store: Store, database_url: str
) -> None:
    listener, heard = await _listener(database_url)
    try:
        await store.disarm_doorbell()
        await school.submit("A1", school.p1, {"text": "x"})
        await school.upload(school.path("A2", school.p1))
        await school.conn.execute("truncate public.submissions")
        await school.conn.execute("select pg_notify($1, 'sentinel')", NOTIFY_CHANNEL)
        assert await asyncio.wait_for(heard.get(), timeout=10) == "sentinel"
        await store.arm_doorbell()
        await school.conn.execute("truncate storage.objects")
        assert await asyncio.wait_for(heard.get(), timeout=10) == ""
    finally:
        await listener.close()
    assert [op for *_, op, _source in await school.outbox()] == [
        "insert",
        "insert",
        "delete",
        "delete",
    ]


async def test_a_broken_adapter_warns_and_the_truncate_still_commits(school: School) -> None:
    await school.submit("A1", school.p1, {"text": "x"})
    await school.upload(school.path("A2", school.p1))
    await school.conn.execute(
        """
        create or replace function results_realtime.object_cell_v1(
            bucket_id text, name text,
            out lesson_id text, out activity_id text, out pupil_id uuid)
        language plpgsql stable as $$ begin raise exception 'adapter bug'; end $$
        """
    )
    await school.conn.execute("delete from results_realtime.outbox")
    warnings: list[str] = []
    school.conn.add_log_listener(lambda _conn, msg: warnings.append(str(msg)))
    await school.conn.execute("truncate public.submissions, storage.objects")
    assert await school.conn.fetchval("select count(*) from storage.objects") == 0
    assert await school.outbox() == [("A1", school.p1, "delete", "system")]
    assert any(
        "adapter bug" in w and "results_realtime_truncate_v1" in w and "objects" in w
        for w in warnings
    ), warnings


async def test_a_broken_schema_warns_and_a_truncate_of_either_table_still_commits(
    school: School,
) -> None:
    await school.submit("A1", school.p1, {"text": "x"})
    await school.upload(school.path("A2", school.p1))
    await school.conn.execute("drop sequence results_realtime.runtime_flags")
    warnings: list[str] = []
    school.conn.add_log_listener(lambda _conn, msg: warnings.append(str(msg)))
    await school.conn.execute("truncate public.submissions, storage.objects")
    counts = await school.conn.fetchrow(
        "select (select count(*) from public.submissions), (select count(*) from storage.objects)"
    )
    assert tuple(counts or ()) == (0, 0)
    truncate_warnings = [
        w for w in warnings if "results_realtime_truncate_v1" in w and "runtime_flags" in w
    ]
    assert len(truncate_warnings) == 2, warnings


async def test_a_truncate_the_owner_cannot_read_in_full_warns_instead_of_recording_a_part(
    school: School,
) -> None:
    """Should the functions' owner be subject to a row-level policy on the table, the truncate
    is not recorded as the deletion of only the rows that policy shows."""
    await school.submit("A1", school.p1, {"text": "hidden from the owner"})
    owner = f"rr_truncate_owner_{uuid.uuid4().hex[:12]}"  # roles are cluster-wide
    function = "results_realtime.record_submission_truncate_v1()"
    await school.conn.execute(
        f"""
        create role {owner} nologin;
        grant usage on schema results_realtime, public to {owner};
        grant insert on results_realtime.outbox to {owner};
        grant usage on sequence results_realtime.outbox_id_seq to {owner};
        grant select on sequence results_realtime.runtime_flags to {owner};
        grant select on public.submissions to {owner};
        alter function {function} owner to {owner};
        alter table public.submissions enable row level security;
        delete from results_realtime.outbox;
        """
    )
    try:
        warnings: list[str] = []
        school.conn.add_log_listener(lambda _conn, msg: warnings.append(str(msg)))
        await school.conn.execute("truncate public.submissions")
        assert await school.conn.fetchval("select count(*) from public.submissions") == 0
        assert await school.outbox() == []
        assert any(
            "results_realtime_truncate_v1" in w and "row-level security" in w for w in warnings
        ), warnings
    finally:
        await school.conn.execute(
            f"alter function {function} owner to current_user;"
            f"drop owned by {owner}; drop role {owner}"
        )


async def test_the_benchmark_baseline_drops_every_realtime_trigger(school: School) -> None:
    tables = "('public.submissions'::regclass, 'storage.objects'::regclass)"
    triggers = (
        f"select count(*) from pg_trigger where tgrelid in {tables} and not tgisinternal"
        " and tgname like 'results_realtime%'"
    )
    assert await school.conn.fetchval(triggers) == 8
    await school.conn.execute(bench_sql("drop_triggers"))
    assert await school.conn.fetchval(triggers) == 0
