-- Cheaper stagings, for the writers' sake: the daemon shares the database's CPU with the app.
--
-- 1. peek_cells_v2 returns each cell's state as the adapter built it (cell_state_v1, as text)
--    instead of the finished Cell. The daemon already knows the rest of a Cell (coordinates, op,
--    source, changedAt) from the outbox rows it read, and adds it to the state's text itself,
--    with the seq. Building the finished Cell in SQL (cells_for_keys_v1: a jsonb map of the
--    changes, then make_cell_v1's jsonb_build_object and jsonb concatenation, which sorts the
--    keys) cost more than the adapter's whole enrichment: 8.4 ms of backend CPU for 256 keys
--    against 4.7 ms now (bench/RESULTS.md, run K, "Lean staging").
--    changedAt is formatted here, by iso_utc_v1, like every other timestamp of a payload.
-- 2. Staged payloads are compressed with lz4 where the server has it: pglz was the largest single
--    item of the staging backend's CPU profile (7 % of its samples), and an insert of 18 payloads
--    of 7.6 kB took 1.35 ms with pglz, 0.79 ms with lz4 and 1.43 ms stored uncompressed.
--
-- cells_for_keys_v1 and make_cell_v1 stay: read_assignment_results builds its cells with
-- make_cell_v1, and an adopting team's tests may call cells_for_keys_v1.

drop function if exists results_realtime.peek_cells_v1(int, bigint[], boolean);

-- One row per (changed key, channel): the key's last op, source and change time (ISO-8601 text),
-- its earliest change time and first outbox id, the channel, the cell's state as JSON text (an
-- object: cell_state_v1's `state`) and the channel's last seq (null before its first message); a
-- key that belongs to no channel gives one row with a null channel. read_ids, on the first row
-- only: every outbox id read. No rows when the outbox is empty. As peek_cells_v1 otherwise (0008):
-- the acks and the disarm ride along, and the enrichment runs in a statement of its own, so it
-- reads a state at least as new as every change read before it.
create or replace function results_realtime.peek_cells_v2(
    p_limit int, p_acked bigint[], p_disarm boolean
)
returns table (
    read_ids bigint[], first_id bigint, op text, source text, changed_at text,
    oldest_change_at timestamptz, activity_id text, pupil_id text, channel text,
    group_id text, lesson_id text, state text, last_seq bigint
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
    return query
        with cells as (
            select results_realtime.channel_name_v1(s.group_id, s.lesson_id) as channel,
                   s.group_id, s.lesson_id, s.activity_id, s.pupil_id, s.state
            from results_realtime.cell_state_v1(v_activity_ids, v_pupil_ids) as s
        )
        select case when row_number() over (order by k.first_id, e.channel) = 1 then v_ids end,
               k.first_id, k.op, k.source, results_realtime.iso_utc_v1(k.changed_at),
               k.oldest_change_at, k.activity_id, k.pupil_id::text, e.channel, e.group_id,
               e.lesson_id, e.state::text, cs.last_seq
        from unnest(v_first_ids, v_activity_ids, v_pupil_ids, v_ops, v_sources, v_changed_ats,
                    v_oldest)
             as k (first_id, activity_id, pupil_id, op, source, changed_at, oldest_change_at)
        left join cells as e on e.activity_id = k.activity_id and e.pupil_id = k.pupil_id
        left join results_realtime.channel_sequences as cs on cs.channel = e.channel
        order by k.first_id, e.channel;
end
$$;

revoke all on function results_realtime.peek_cells_v2(int, bigint[], boolean) from public;

-- lz4 needs PostgreSQL 14+ built with it (Supabase's is); elsewhere the default stays.
do $$
begin
    execute 'alter table results_realtime.outbox_messages alter column payload set compression lz4';
exception when feature_not_supported or syntax_error then
    raise notice 'results_realtime: lz4 is not available here; staged payloads keep the default '
                 'compression';
end
$$;
