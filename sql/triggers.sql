-- Repeatable (applied by `migrate` whenever this file changed or one of its triggers is missing):
-- the triggers that turn writes into outbox rows.
--
-- Updates and deletes, and every change to storage objects: statement-level AFTER triggers with
-- transition tables, one call per statement however many rows it touched, so the AI worker's
-- 10,000-row UPDATE costs one set-based INSERT into the outbox instead of 10,000 PL/pgSQL calls.
-- Inserts into submissions: a row-level trigger. A pupil's answer is one row per statement and is
-- the app's hot path; for one row, building and scanning a transition table costs more than the
-- row-level call (pgbench, single-row inserts, 8 clients: 0.82-0.90 of the bare insert rate with
-- the row-level trigger, 0.77-0.79 with the statement-level one; bench/RESULTS.md).
-- A TRUNCATE of either table: a statement-level BEFORE TRUNCATE trigger that records the deletion
-- of every row the truncate removes (a truncate fires no delete trigger).
-- Each records ids, op and source only; the cell's state is read later by the daemon, in batches
-- (results_realtime.cells_for_keys_v1).
--
-- Never failing the writer: everything that can go wrong (the flag lookup, the source inference,
-- the adapter's object_cell_v1) runs in a guarded, read-only block; an error there becomes a
-- WARNING and the writer's statement commits without an event. Only the final INSERT of the
-- computed values into our own outbox is outside the guard: a guarded write would give each
-- writing statement a subtransaction id, and a transaction with more than 64 of those makes every
-- other session's snapshots slower (subxid cache overflow). That INSERT has no constraint that
-- the computed values could violate: every path keeps only keys whose activity and pupil are both
-- known (an app's own table may allow NULLs there, an adapted object_cell_v1 may map an object
-- to an activity without a pupil), which is also what the outbox's NOT NULL columns require.
--
-- The doorbell: pg_notify only while the daemon has armed it (runtime_state.doorbell_armed), so
-- concurrent writers do not serialize on the cluster-wide NOTIFY lock while the daemon is busy
-- polling anyway. The flags are read from the sequence that mirrors runtime_state at each commit
-- (migration 0011: bit 1 enabled, bit 2 armed): a function call, where a query of the table cost
-- the writer's insert 4 % of its rate. The payload is empty: a notification is a wake-up call,
-- the outbox is the truth. A trigger that found the doorbell disarmed reads it again after writing
-- its outbox rows: from then on the transaction holds a lock on the outbox, which the daemon looks
-- for after arming (sql/queries/store_outbox_writers.sql), so a writer either rings or is seen.

-- What a trigger says instead of failing the writer's statement.
create or replace function results_realtime.warn_unrecorded_change_v1(
    trigger_name text, table_schema text, table_name text, error_state text, error_message text
)
returns void
language plpgsql
as $$
begin
    raise warning using
        message = format('results_realtime: trigger %s on %I.%I could not record a change '
                         '(%s: %s); the write goes on without a realtime event',
                         trigger_name, table_schema, table_name, error_state, error_message),
        hint = 'Fix the function named in the error; changes made meanwhile reach clients '
               'on their next refetch.';
end
$$;

-- A row inserted into submissions -> its cell, op 'insert', source 'teacher' / 'ai' when the row
-- already carries a mark, else 'pupil'. Everything read from the row is read in the guarded block,
-- so a schema that does not match (a renamed column, another type) warns instead of failing.
create or replace function results_realtime.record_submission_insert_v1()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_flags bigint;
    v_activity_id text;
    v_pupil_id uuid;
    v_source text;
begin
    begin
        v_flags := pg_sequence_last_value('results_realtime.runtime_flags'::regclass);
        if coalesce(v_flags & 1, 0) = 0 then
            return null;
        end if;
        v_activity_id := new.activity_id;
        v_pupil_id := new.user_id;
        v_source := case
            when new.teacher_score is not null or new.teacher_marked_at is not null then 'teacher'
            when new.ai_score is not null or new.ai_marked_at is not null then 'ai'
            else 'pupil'
        end;
    exception when others then
        perform results_realtime.warn_unrecorded_change_v1(
            tg_name, tg_table_schema, tg_table_name, sqlstate, sqlerrm);
        return null;
    end;
    if v_activity_id is not null and v_pupil_id is not null then
        insert into results_realtime.outbox (activity_id, pupil_id, op, source)
        values (v_activity_id, v_pupil_id, 'insert', v_source);
        if v_flags & 2 = 0 then  -- read again now that the outbox is locked: see above
            v_flags := coalesce(
                pg_sequence_last_value('results_realtime.runtime_flags'::regclass), 0);
        end if;
        if v_flags & 2 <> 0 then
            perform pg_notify('results_realtime_v1', '');
        end if;
    end if;
    return null;
end
$$;

-- Updates and deletes of submissions (inserts: above) -> source: update -> 'pupil' (body or
-- submitted_at changed: a resubmission wins over marks reset with it), else 'teacher' (teacher_*
-- changed), else 'ai' (ai_* changed), else 'system' (the row moved to another cell: both cells are
-- recorded); an update that changes none of those columns (e.g. updated_at only) is not recorded,
-- since no cell changes. delete -> 'system': the row says nothing about who deleted it.
create or replace function results_realtime.record_submission_changes_v1()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_flags bigint;
    v_activity_ids text[];
    v_pupil_ids uuid[];
    v_ops text[];
    v_sources text[];
begin
    begin
        v_flags := pg_sequence_last_value('results_realtime.runtime_flags'::regclass);
        if coalesce(v_flags & 1, 0) = 0 then
            return null;
        end if;
        if tg_op = 'UPDATE' then
            with pairs as (
                select o.activity_id as old_activity_id, o.user_id as old_pupil_id,
                       n.activity_id as new_activity_id, n.user_id as new_pupil_id,
                       case
                           when o.id is null or n.id is null
                                or o.activity_id is distinct from n.activity_id
                                or o.user_id is distinct from n.user_id then 'system'
                           when o.body is distinct from n.body
                                or o.submitted_at is distinct from n.submitted_at then 'pupil'
                           when o.teacher_score is distinct from n.teacher_score
                                or o.teacher_feedback is distinct from n.teacher_feedback
                                or o.teacher_marked_at is distinct from n.teacher_marked_at
                               then 'teacher'
                           when o.ai_score is distinct from n.ai_score
                                or o.ai_model is distinct from n.ai_model
                                or o.ai_feedback is distinct from n.ai_feedback
                                or o.ai_marked_at is distinct from n.ai_marked_at then 'ai'
                       end as source
                from old_rows as o
                full join new_rows as n on n.id = o.id
            )
            select array_agg(k.activity_id), array_agg(k.pupil_id), array_agg('update'::text),
                   array_agg(p.source)
            into v_activity_ids, v_pupil_ids, v_ops, v_sources
            from pairs as p
            cross join lateral (
                select p.new_activity_id, p.new_pupil_id
                where p.new_activity_id is not null and p.new_pupil_id is not null
                union
                select p.old_activity_id, p.old_pupil_id
                where p.old_activity_id is not null and p.old_pupil_id is not null
            ) as k (activity_id, pupil_id)
            where p.source is not null;
        else
            select array_agg(o.activity_id), array_agg(o.user_id), array_agg('delete'::text),
                   array_agg('system'::text)
            into v_activity_ids, v_pupil_ids, v_ops, v_sources
            from old_rows as o
            where o.activity_id is not null and o.user_id is not null;
        end if;
    exception when others then
        perform results_realtime.warn_unrecorded_change_v1(
            tg_name, tg_table_schema, tg_table_name, sqlstate, sqlerrm);
        return null;
    end;
    if v_activity_ids is not null then
        insert into results_realtime.outbox (activity_id, pupil_id, op, source)
        select * from unnest(v_activity_ids, v_pupil_ids, v_ops, v_sources);
        if v_flags & 2 = 0 then  -- read again now that the outbox is locked: see above
            v_flags := coalesce(
                pg_sequence_last_value('results_realtime.runtime_flags'::regclass), 0);
        end if;
        if v_flags & 2 <> 0 then
            perform pg_notify('results_realtime_v1', '');
        end if;
    end if;
    return null;
end
$$;

-- storage.objects (bucket 'submissions') -> source 'upload'. insert -> op 'insert'; delete -> op
-- 'delete'; update in place (an overwrite) -> 'update'; a rename or move -> 'delete' for the old
-- cell and 'insert' for the new one. Objects that map to no cell are ignored without a warning.
create or replace function results_realtime.record_object_changes_v1()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_flags bigint;
    v_activity_ids text[];
    v_pupil_ids uuid[];
    v_ops text[];
    v_names text[];
begin
    begin
        v_flags := pg_sequence_last_value('results_realtime.runtime_flags'::regclass);
        if coalesce(v_flags & 1, 0) = 0 then
            return null;
        end if;
        if tg_op = 'INSERT' then
            select array_agg(c.activity_id), array_agg(c.pupil_id), array_agg('insert'::text),
                   array_agg(n.name)
            into v_activity_ids, v_pupil_ids, v_ops, v_names
            from new_rows as n
            cross join lateral results_realtime.object_cell_v1(n.bucket_id, n.name) as c
            where c.activity_id is not null and c.pupil_id is not null;
        elsif tg_op = 'UPDATE' then
            with pairs as (
                select o.bucket_id as old_bucket, o.name as old_name,
                       n.bucket_id as new_bucket, n.name as new_name,
                       (o.bucket_id, o.name) is distinct from (n.bucket_id, n.name) as moved
                from old_rows as o
                full join new_rows as n on n.id = o.id
            ),
            changes as (
                select c.activity_id, c.pupil_id, 'delete' as op, p.old_name as name
                from pairs as p
                cross join lateral results_realtime.object_cell_v1(p.old_bucket, p.old_name) as c
                where p.moved and c.activity_id is not null and c.pupil_id is not null
                union all
                select c.activity_id, c.pupil_id,
                       case when p.moved then 'insert' else 'update' end, p.new_name
                from pairs as p
                cross join lateral results_realtime.object_cell_v1(p.new_bucket, p.new_name) as c
                where c.activity_id is not null and c.pupil_id is not null
            )
            select array_agg(ch.activity_id), array_agg(ch.pupil_id), array_agg(ch.op),
                   array_agg(ch.name)
            into v_activity_ids, v_pupil_ids, v_ops, v_names
            from changes as ch;
        else
            select array_agg(c.activity_id), array_agg(c.pupil_id), array_agg('delete'::text),
                   array_agg(o.name)
            into v_activity_ids, v_pupil_ids, v_ops, v_names
            from old_rows as o
            cross join lateral results_realtime.object_cell_v1(o.bucket_id, o.name) as c
            where c.activity_id is not null and c.pupil_id is not null;
        end if;
    exception when others then
        perform results_realtime.warn_unrecorded_change_v1(
            tg_name, tg_table_schema, tg_table_name, sqlstate, sqlerrm);
        return null;
    end;
    if v_activity_ids is not null then
        insert into results_realtime.outbox (activity_id, pupil_id, op, source, object_name)
        select a, p, o, 'upload', n from unnest(v_activity_ids, v_pupil_ids, v_ops, v_names)
            as u (a, p, o, n);
        if v_flags & 2 = 0 then  -- read again now that the outbox is locked: see above
            v_flags := coalesce(
                pg_sequence_last_value('results_realtime.runtime_flags'::regclass), 0);
        end if;
        if v_flags & 2 <> 0 then
            perform pg_notify('results_realtime_v1', '');
        end if;
    end if;
    return null;
end
$$;

-- TRUNCATE empties every cell of the table without a DELETE, so it is recorded as the deletion of
-- every row it removes: what the delete triggers above record. A truncate has no transition
-- table, but a BEFORE TRUNCATE trigger still sees the rows; and when one statement truncates
-- several tables (a list, or CASCADE from a referenced table) PostgreSQL fires the BEFORE
-- TRUNCATE triggers of all of them before it empties any, so each trigger sees its whole table
-- and the adapter's object_cell_v1 still sees the activities. row_security off: should the
-- owner of these functions be subject to a policy on the table, the read fails (a warning, as
-- for any other error) instead of silently recording only the rows the policy shows.

-- Submissions -> one 'delete' by 'system' per (activity, pupil) the table held.
create or replace function results_realtime.record_submission_truncate_v1()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set row_security = off
as $$
declare
    v_flags bigint;
    v_activity_ids text[];
    v_pupil_ids uuid[];
begin
    begin
        v_flags := pg_sequence_last_value('results_realtime.runtime_flags'::regclass);
        if coalesce(v_flags & 1, 0) = 0 then
            return null;
        end if;
        select array_agg(k.activity_id), array_agg(k.user_id)
        into v_activity_ids, v_pupil_ids
        from (
            select distinct s.activity_id, s.user_id
            from public.submissions as s
            where s.activity_id is not null and s.user_id is not null
        ) as k;
    exception when others then
        perform results_realtime.warn_unrecorded_change_v1(
            tg_name, tg_table_schema, tg_table_name, sqlstate, sqlerrm);
        return null;
    end;
    if v_activity_ids is not null then
        insert into results_realtime.outbox (activity_id, pupil_id, op, source)
        select a, p, 'delete', 'system' from unnest(v_activity_ids, v_pupil_ids) as u (a, p);
        if v_flags & 2 = 0 then  -- read again now that the outbox is locked: see above
            v_flags := coalesce(
                pg_sequence_last_value('results_realtime.runtime_flags'::regclass), 0);
        end if;
        if v_flags & 2 <> 0 then
            perform pg_notify('results_realtime_v1', '');
        end if;
    end if;
    return null;
end
$$;

-- storage.objects -> one 'delete' by 'upload' per object that maps to a cell (object_cell_v1:
-- bucket 'submissions' in the reference adapter), as a DELETE of those objects records.
create or replace function results_realtime.record_object_truncate_v1()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set row_security = off
as $$
declare
    v_flags bigint;
    v_activity_ids text[];
    v_pupil_ids uuid[];
    v_names text[];
begin
    begin
        v_flags := pg_sequence_last_value('results_realtime.runtime_flags'::regclass);
        if coalesce(v_flags & 1, 0) = 0 then
            return null;
        end if;
        select array_agg(c.activity_id), array_agg(c.pupil_id), array_agg(o.name)
        into v_activity_ids, v_pupil_ids, v_names
        from storage.objects as o
        cross join lateral results_realtime.object_cell_v1(o.bucket_id, o.name) as c
        where c.activity_id is not null and c.pupil_id is not null;
    exception when others then
        perform results_realtime.warn_unrecorded_change_v1(
            tg_name, tg_table_schema, tg_table_name, sqlstate, sqlerrm);
        return null;
    end;
    if v_activity_ids is not null then
        insert into results_realtime.outbox (activity_id, pupil_id, op, source, object_name)
        select a, p, 'delete', 'upload', n from unnest(v_activity_ids, v_pupil_ids, v_names)
            as u (a, p, n);
        if v_flags & 2 = 0 then  -- read again now that the outbox is locked: see above
            v_flags := coalesce(
                pg_sequence_last_value('results_realtime.runtime_flags'::regclass), 0);
        end if;
        if v_flags & 2 <> 0 then
            perform pg_notify('results_realtime_v1', '');
        end if;
    end if;
    return null;
end
$$;

revoke all on function results_realtime.record_submission_insert_v1() from public;
revoke all on function results_realtime.record_submission_changes_v1() from public;
revoke all on function results_realtime.record_object_changes_v1() from public;
revoke all on function results_realtime.record_submission_truncate_v1() from public;
revoke all on function results_realtime.record_object_truncate_v1() from public;

create or replace trigger results_realtime_insert_v1
    after insert on public.submissions
    for each row execute function results_realtime.record_submission_insert_v1();

create or replace trigger results_realtime_update_v1
    after update on public.submissions
    referencing old table as old_rows new table as new_rows
    for each statement execute function results_realtime.record_submission_changes_v1();

create or replace trigger results_realtime_delete_v1
    after delete on public.submissions
    referencing old table as old_rows
    for each statement execute function results_realtime.record_submission_changes_v1();

create or replace trigger results_realtime_truncate_v1
    before truncate on public.submissions
    for each statement execute function results_realtime.record_submission_truncate_v1();

create or replace trigger results_realtime_insert_v1
    after insert on storage.objects
    referencing new table as new_rows
    for each statement execute function results_realtime.record_object_changes_v1();

create or replace trigger results_realtime_update_v1
    after update on storage.objects
    referencing old table as old_rows new table as new_rows
    for each statement execute function results_realtime.record_object_changes_v1();

create or replace trigger results_realtime_delete_v1
    after delete on storage.objects
    referencing old table as old_rows
    for each statement execute function results_realtime.record_object_changes_v1();

create or replace trigger results_realtime_truncate_v1
    before truncate on storage.objects
    for each statement execute function results_realtime.record_object_truncate_v1();
