-- Staging in one round trip. The daemon's staging transaction used to take seven round trips
-- (lock, claim, enrich, allocate seqs, insert, plus BEGIN and COMMIT); on a machine whose cores
-- are shared with the writers each one waits for a CPU, which made it the latency floor. These
-- functions do the database half of staging (lock, ack, disarm, claim, coalesce, enrich, read the
-- channels' seqs) in one call; the daemon then plans the messages and inserts them with their seqs
-- in one more statement (sql/queries/store_insert_messages.sql).

-- Claims up to p_limit outbox rows (the bounded form of measurements.md 4.2: the id list is an
-- InitPlan, evaluated once and never longer than p_limit whatever plan is cached) and returns one
-- row per changed (activity, pupil) key: the last change's op, source and time win, the earliest
-- time and first outbox id are kept (for the lag metric and the order cells go out in).
-- In the same statement: forget the messages Realtime accepted (p_acked) and disarm the doorbell
-- when asked (it writes only when the state actually changes). `claimed` is the number of outbox
-- rows claimed, on every row.
-- PL/pgSQL rather than SQL so that its plan is cached for the session (an SQL function that
-- writes is planned again on every call: half a millisecond per staging).
create or replace function results_realtime.claim_changes_v1(
    p_limit int, p_acked bigint[], p_disarm boolean
)
returns table (
    activity_id text, pupil_id uuid, op text, source text, changed_at timestamptz,
    oldest_change_at timestamptz, first_id bigint, claimed bigint
)
language plpgsql volatile
as $$
begin
    return query
    with acked as (
        delete from results_realtime.outbox_messages as m where m.id = any(p_acked)
    ), disarmed as (
        update results_realtime.runtime_state as rs
        set doorbell_armed = false, updated_at = now()
        where p_disarm and rs.doorbell_armed
    ), claimed as (
        delete from results_realtime.outbox as o
        where o.id = any(array(
            select q.id from results_realtime.outbox as q
            order by q.id
            for update skip locked
            limit p_limit
        ))
        returning o.id, o.activity_id, o.pupil_id, o.op, o.source, o.created_at
    )
    select c.activity_id, c.pupil_id,
           (array_agg(c.op order by c.id desc))[1],
           (array_agg(c.source order by c.id desc))[1],
           (array_agg(c.created_at order by c.id desc))[1],
           min(c.created_at), min(c.id),
           (select count(*) from claimed)
    from claimed as c
    group by c.activity_id, c.pupil_id
    order by min(c.id);
end
$$;

-- The whole database half of one staging, for the daemon's staging transaction: takes the staging
-- lock (p_lock_key), makes the commit asynchronous (see daemon/pipeline/store.py), claims, and
-- returns for every claimed key its cells, one row per channel, with the channel's last seq
-- (read under the lock, so the daemon can number the messages itself). A key that belongs to no
-- channel gives one row with a null channel. Nothing claimed, no row. If the enrichment raises,
-- the statement fails and the daemon runs the careful path (claim_changes_v1, then enrich with
-- savepoints to isolate the keys that fail).
-- PL/pgSQL on purpose: each statement takes a new snapshot, so the enrichment reads a state at
-- least as new as every change it claimed. (In one SQL statement the claim, a volatile function,
-- could see a change committed after the snapshot the enrichment reads: its cell would go out with
-- the state from before it, and nothing would follow to correct it.)
create or replace function results_realtime.stage_cells_v1(
    p_lock_key bigint, p_limit int, p_acked bigint[], p_disarm boolean
)
returns table (
    claimed bigint, first_id bigint, op text, source text, changed_at timestamptz,
    oldest_change_at timestamptz, activity_id text, pupil_id text, channel text,
    group_id text, lesson_id text, cell text, last_seq bigint
)
language plpgsql volatile
as $$
declare
    v_claimed bigint;
    v_first_ids bigint[];
    v_activity_ids text[];
    v_pupil_ids uuid[];
    v_ops text[];
    v_sources text[];
    v_changed_ats timestamptz[];
    v_oldest timestamptz[];
begin
    perform pg_advisory_xact_lock(p_lock_key), set_config('synchronous_commit', 'off', true);
    select max(c.claimed), array_agg(c.first_id order by c.first_id),
           array_agg(c.activity_id order by c.first_id), array_agg(c.pupil_id order by c.first_id),
           array_agg(c.op order by c.first_id), array_agg(c.source order by c.first_id),
           array_agg(c.changed_at order by c.first_id),
           array_agg(c.oldest_change_at order by c.first_id)
    into v_claimed, v_first_ids, v_activity_ids, v_pupil_ids, v_ops, v_sources, v_changed_ats,
         v_oldest
    from results_realtime.claim_changes_v1(p_limit, p_acked, p_disarm) as c;
    if v_claimed is null then
        return;
    end if;
    return query
        select v_claimed, k.first_id, k.op, k.source, k.changed_at, k.oldest_change_at,
               k.activity_id, k.pupil_id::text, e.channel, e.group_id, e.lesson_id, e.cell::text,
               cs.last_seq
        from unnest(v_first_ids, v_activity_ids, v_pupil_ids, v_ops, v_sources, v_changed_ats,
                    v_oldest)
             as k (first_id, activity_id, pupil_id, op, source, changed_at, oldest_change_at)
        left join results_realtime.cells_for_keys_v1(
            v_activity_ids, v_pupil_ids, v_ops, v_sources, v_changed_ats
        ) as e on e.activity_id = k.activity_id and e.pupil_id = k.pupil_id
        left join results_realtime.channel_sequences as cs on cs.channel = e.channel
        order by k.first_id, e.channel;
end
$$;

revoke all on function results_realtime.claim_changes_v1(int, bigint[], boolean) from public;
revoke all on function results_realtime.stage_cells_v1(bigint, int, bigint[], boolean) from public;
