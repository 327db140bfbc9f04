-- Staging in two autocommit statements instead of a four-round-trip transaction (BEGIN, the
-- database half, the insert, COMMIT). Under load every round trip waits for a CPU on both ends,
-- so the round trips were a large share of a staging's time, and BEGIN and COMMIT carried nothing.
--
-- 1. peek_cells_v1 reads (does not delete) the oldest outbox rows, coalesces and enriches them and
--    reads the channels' last seqs, and applies the acks and the disarm on the way. It returns the
--    ids of the rows it read.
-- 2. The daemon plans and numbers the messages, then commit_stage_v1 deletes exactly the rows it
--    read, advances each channel's seq only if it is still the one read in step 1, and inserts
--    the messages, in one transaction under the staging lock. If another session staged any of
--    those rows or any of those channels in between, it raises serialization_failure and changes
--    nothing; the daemon then stages the same rows again on the careful path (0007's locking
--    claim), so seq order stays enrichment order.
-- The rows stay in the outbox until step 2 commits: a crash between the two loses nothing.
-- It replaces stage_cells_v1 (0007), which claimed, enriched and numbered in one transaction;
-- claim_changes_v1 (0007) stays, for the careful path.
drop function if exists results_realtime.stage_cells_v1(bigint, int, bigint[], boolean);

-- Step 1. One row per (changed key, channel): the key's last op, source and change time, its
-- earliest change time and first outbox id, the channel, the cell as JSON text and the channel's
-- last seq (null before its first message); a key that belongs to no channel gives one row with
-- a null channel. read_ids, on the first row only: every outbox id read. No rows when the outbox
-- is empty. If the enrichment raises, the statement fails and the daemon takes the careful path.
-- PL/pgSQL on purpose: its plans are cached for the session, and each statement takes a new
-- snapshot, so the enrichment reads a state at least as new as every change read before it (in
-- one SQL statement a change committed meanwhile could be read but enriched from the state
-- before it, and nothing would follow to correct it).
create or replace function results_realtime.peek_cells_v1(
    p_limit int, p_acked bigint[], p_disarm boolean
)
returns table (
    read_ids bigint[], first_id bigint, op text, source text, changed_at timestamptz,
    oldest_change_at timestamptz, activity_id text, pupil_id text, channel text,
    group_id text, lesson_id text, cell text, last_seq bigint
)
language plpgsql volatile
as $$
declare
    v_ids bigint[];
    v_first_ids bigint[];
    v_activity_ids text[];
    v_pupil_ids uuid[];
    v_ops text[];
    v_sources text[];
    v_changed_ats timestamptz[];
    v_oldest timestamptz[];
begin
    perform set_config('synchronous_commit', 'off', true);
    if cardinality(p_acked) > 0 then
        delete from results_realtime.outbox_messages as m where m.id = any(p_acked);
    end if;
    if p_disarm then
        update results_realtime.runtime_state as rs
        set doorbell_armed = false, updated_at = now()
        where rs.doorbell_armed;
    end if;
    -- The oldest rows, then one entry per key: the last change's op, source and time win; the
    -- earliest time and the first id are kept (the lag metric, and the order cells go out in).
    -- Two sorts in all: no aggregate has its own ORDER BY (each would sort on every call). The
    -- arrays come from one pass over the same rows, so they stay parallel; their order does not
    -- matter, the rows returned below are sorted.
    with peeked as materialized (
        select q.id, q.activity_id, q.pupil_id, q.op, q.source, q.created_at
        from results_realtime.outbox as q
        order by q.id
        limit p_limit
    ), keys as (
        select distinct on (p.activity_id, p.pupil_id)
               p.activity_id, p.pupil_id, p.op, p.source, p.created_at as changed_at,
               min(p.created_at) over per_key as oldest_change_at,
               min(p.id) over per_key as first_id
        from peeked as p
        window per_key as (partition by p.activity_id, p.pupil_id order by p.id desc
                           rows between unbounded preceding and unbounded following)
        order by p.activity_id, p.pupil_id, p.id desc
    )
    select (select array_agg(p.id) from peeked as p),
           array_agg(k.first_id), array_agg(k.activity_id), array_agg(k.pupil_id),
           array_agg(k.op), array_agg(k.source), array_agg(k.changed_at),
           array_agg(k.oldest_change_at)
    into v_ids, v_first_ids, v_activity_ids, v_pupil_ids, v_ops, v_sources, v_changed_ats,
         v_oldest
    from keys as k;
    if v_ids is null then
        return;
    end if;
    -- A new statement, so a new snapshot: the enrichment reads a state at least as new as every
    -- change read above.
    return query
        select case when row_number() over (order by k.first_id, e.channel) = 1 then v_ids end,
               k.first_id, k.op, k.source, k.changed_at,
               k.oldest_change_at, k.activity_id, k.pupil_id::text, e.channel, e.group_id,
               e.lesson_id, e.cell::text, cs.last_seq
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

-- Step 2. p_read_ids: the outbox rows read in step 1. p_seq_*: every channel that gets messages,
-- the last seq read in step 1 (0: the channel had none) and its new last seq. p_* (messages): as
-- store_insert_messages.sql, in array order (so outbox_messages.id order is seq order within each
-- channel). Returns the messages' ids.
create or replace function results_realtime.commit_stage_v1(
    p_lock_key bigint, p_read_ids bigint[],
    p_seq_channels text[], p_seq_expected bigint[], p_seq_last bigint[],
    p_channels text[], p_seqs bigint[], p_events text[], p_payloads text[],
    p_oldest timestamptz[], p_cell_counts int[]
)
returns table (staged_id bigint, staged_channel text, staged_seq bigint)
language plpgsql volatile
as $$
declare
    v_count bigint;
begin
    perform pg_advisory_xact_lock(p_lock_key), set_config('synchronous_commit', 'off', true);
    delete from results_realtime.outbox as o where o.id = any(p_read_ids);
    get diagnostics v_count = row_count;
    if v_count <> cardinality(p_read_ids) then
        raise exception using
            errcode = 'serialization_failure',
            message = format('results_realtime: %s of the %s changes read for staging were '
                             'staged by another session meanwhile',
                             cardinality(p_read_ids) - v_count, cardinality(p_read_ids));
    end if;
    with wanted as (
        select s.channel, s.expected, s.last_seq
        from unnest(p_seq_channels, p_seq_expected, p_seq_last) as s (channel, expected, last_seq)
    ), moved as (
        update results_realtime.channel_sequences as cs
        set last_seq = w.last_seq
        from wanted as w
        where cs.channel = w.channel and cs.last_seq = w.expected
        returning cs.channel
    ), created as (
        insert into results_realtime.channel_sequences as cs (channel, last_seq)
        select w.channel, w.last_seq from wanted as w where w.expected = 0 order by w.channel
        on conflict (channel) do nothing
        returning cs.channel
    )
    select (select count(*) from moved) + (select count(*) from created) into v_count;
    if v_count <> cardinality(p_seq_channels) then
        raise exception using
            errcode = 'serialization_failure',
            message = format('results_realtime: %s of %s channels were staged by another session '
                             'meanwhile', cardinality(p_seq_channels) - v_count,
                             cardinality(p_seq_channels));
    end if;
    return query
        insert into results_realtime.outbox_messages as m
            (channel, seq, event, payload, oldest_change_at, cell_count)
        select u.channel, u.seq, u.event, u.payload, u.oldest_change_at, u.cell_count
        from unnest(p_channels, p_seqs, p_events, p_payloads, p_oldest, p_cell_counts)
            with ordinality as u (channel, seq, event, payload, oldest_change_at, cell_count, ord)
        order by u.ord
        returning m.id, m.channel, m.seq;
end
$$;

revoke all on function results_realtime.peek_cells_v1(int, bigint[], boolean) from public;
revoke all on function results_realtime.commit_stage_v1(
    bigint, bigint[], text[], bigint[], bigint[], text[], bigint[], text[], text[],
    timestamptz[], int[]) from public;
