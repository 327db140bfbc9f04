-- Cells as PAYLOAD.md defines them, for the daemon (a batch of changed keys) and for clients
-- (read_assignment_results). Both build on results_realtime.cell_state_v1 (0005, the schema
-- adapter), so a cell looks the same whichever way it reaches the browser.

-- The full Cell: coordinates + the adapter's state + what happened. eventId, seq and prevSeq are
-- present and null here; the daemon fills them when it assigns the message its seq.
create or replace function results_realtime.make_cell_v1(
    group_id text, lesson_id text, activity_id text, pupil_id uuid, state jsonb,
    op text, source text, changed_at timestamptz
)
returns jsonb
language sql stable
as $$
    select state || jsonb_build_object(
        'assignmentId', group_id || '__' || lesson_id,
        'groupId', group_id,
        'lessonId', lesson_id,
        'activityId', activity_id,
        'pupilId', pupil_id::text,
        'op', op,
        'source', source,
        'changedAt', results_realtime.iso_utc_v1(changed_at),
        'eventId', null,
        'seq', null,
        'prevSeq', null
    )
$$;

-- The daemon's one enrichment call per batch. The arrays are parallel, one element per change;
-- when a key appears more than once the last element wins (its op, source and changedAt). One row
-- per (channel, key): a pupil in two groups that both have the lesson gives two rows. A key that
-- belongs to no assignment gives no row.
create or replace function results_realtime.cells_for_keys_v1(
    activity_ids text[], pupil_ids uuid[], ops text[], sources text[], changed_ats timestamptz[]
)
returns table (
    channel text, group_id text, lesson_id text, activity_id text, pupil_id uuid, cell jsonb
)
language sql stable
as $$
    with changes as materialized (
        -- key -> [op, source, changedAt]; for a key given more than once the last one wins.
        select coalesce(jsonb_object_agg(k.activity_id || '/' || k.pupil_id::text,
                                         jsonb_build_array(k.op, k.source, k.changed_at)
                                         order by k.ord), '{}') as by_key
        from unnest(activity_ids, pupil_ids, ops, sources, changed_ats)
             with ordinality as k (activity_id, pupil_id, op, source, changed_at, ord)
    ),
    cells as (
        select s.*, c.by_key -> (s.activity_id || '/' || s.pupil_id::text) as change
        from results_realtime.cell_state_v1(activity_ids, pupil_ids) as s
        cross join changes as c
    )
    select results_realtime.channel_name_v1(s.group_id, s.lesson_id),
           s.group_id, s.lesson_id, s.activity_id, s.pupil_id,
           results_realtime.make_cell_v1(s.group_id, s.lesson_id, s.activity_id, s.pupil_id,
                                         s.state, s.change ->> 0, s.change ->> 1,
                                         (s.change ->> 2)::timestamptz)
    from cells as s
$$;

revoke all on function results_realtime.make_cell_v1(
    text, text, text, uuid, jsonb, text, text, timestamptz) from public;
revoke all on function results_realtime.cells_for_keys_v1(
    text[], uuid[], text[], text[], timestamptz[]) from public;

-- May the caller read this group's results? The service role may; so may a session with no JWT
-- claims whose login role is a superuser or owns the database (the daemon, migrations, tests);
-- otherwise only a teacher of the group (the same predicate as the channel's RLS policy).
create or replace function results_realtime.may_read_results_v1(p_group_id text)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
    select case
        when coalesce(auth.jwt() ->> 'role', '') = 'service_role' then true
        when nullif(current_setting('request.jwt.claims', true), '') is null
             and exists (
                 select from pg_roles as r, pg_database as d
                 where r.rolname = session_user and d.datname = current_database()
                   and (r.rolsuper or pg_has_role(session_user, d.datdba, 'member'))
             ) then true
        else coalesce(results_realtime.is_group_teacher_v1(p_group_id, auth.uid()), false)
    end
$$;

revoke all on function results_realtime.may_read_results_v1(text) from public;

-- The whole assignment, or one row / column / cell of it, with the channel's current seq.
-- Cells of a read carry: op 'update' (a snapshot replaces the cell), source 'system', changedAt =
-- the time of the read (the snapshot's time), seq = the channel's last staged seq (null before
-- its first message), prevSeq null, eventId 'read:<channel>:<seq or 0>'. A client applies the
-- snapshot and then only messages with a higher seq: every message with seq <= the reported seq
-- was built from a state this snapshot already contains (both are read in one snapshot).
create or replace function results_realtime.assignment_results_v1(
    p_group_id text, p_lesson_id text, p_pupil_id uuid, p_activity_id text
)
returns jsonb
language sql stable
as $$
    with channel as (
        select results_realtime.channel_name_v1(p_group_id, p_lesson_id) as name
    ),
    seq as (
        select (select cs.last_seq from results_realtime.channel_sequences as cs, channel
                where cs.channel = channel.name) as last_seq
    ),
    acts as (
        select a.id, a.title, a.kind, a.position
        from public.activities as a
        where a.lesson_id = p_lesson_id and (p_activity_id is null or a.id = p_activity_id)
    ),
    pupils as (
        select m.user_id
        from public.group_members as m
        where m.group_id = p_group_id and m.role = 'pupil'
          and (p_pupil_id is null or m.user_id = p_pupil_id)
    ),
    keys as (
        select array_agg(a.id) as activity_ids, array_agg(p.user_id) as pupil_ids
        from acts as a cross join pupils as p
    ),
    cells as (
        select s.activity_id, s.pupil_id, results_realtime.make_cell_v1(
                   s.group_id, s.lesson_id, s.activity_id, s.pupil_id, s.state,
                   'update', 'system', now())
               || jsonb_build_object(
                   'eventId', 'read:' || channel.name || ':' || coalesce(seq.last_seq, 0),
                   'seq', seq.last_seq) as cell
        from keys, channel, seq,
             results_realtime.cell_state_v1(keys.activity_ids, keys.pupil_ids) as s
        where s.group_id = p_group_id and s.lesson_id = p_lesson_id
    )
    select jsonb_build_object(
        'assignmentId', p_group_id || '__' || p_lesson_id,
        'groupId', p_group_id,
        'lessonId', p_lesson_id,
        'seq', (select last_seq from seq),
        'activities', coalesce((
            select jsonb_agg(jsonb_build_object('activityId', a.id, 'title', a.title,
                                                'kind', a.kind, 'position', a.position)
                             order by a.position, a.id)
            from acts as a), '[]'::jsonb),
        'pupilIds', coalesce((
            select jsonb_agg(p.user_id::text order by p.user_id) from pupils as p), '[]'::jsonb),
        'cells', coalesce((
            select jsonb_agg(c.cell order by c.pupil_id, a.position, a.id)
            from cells as c join acts as a on a.id = c.activity_id), '[]'::jsonb)
    )
$$;

revoke all on function results_realtime.assignment_results_v1(text, text, uuid, text) from public;

-- The client's refetch (a Supabase RPC: supabase.rpc('read_assignment_results', {group_id,
-- lesson_id, pupil_id?, activity_id?})). SECURITY DEFINER so that the app's own RLS on its
-- tables does not hide rows from a teacher; the authorization is explicit instead.
create or replace function public.read_assignment_results(
    group_id text, lesson_id text, pupil_id uuid default null, activity_id text default null
)
returns jsonb
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if read_assignment_results.group_id is null or read_assignment_results.lesson_id is null then
        raise exception 'read_assignment_results: group_id and lesson_id are required'
            using errcode = 'invalid_parameter_value';
    end if;
    if not results_realtime.may_read_results_v1(read_assignment_results.group_id) then
        raise exception 'read_assignment_results: not allowed to read the results of group %',
                read_assignment_results.group_id
            using errcode = 'insufficient_privilege',
                  hint = 'Only teachers of the group (or the service role) may read its results.';
    end if;
    if not exists (
        select from public.assignments as a
        where a.group_id = read_assignment_results.group_id
          and a.lesson_id = read_assignment_results.lesson_id
    ) then
        raise exception 'read_assignment_results: lesson % is not assigned to group %',
                read_assignment_results.lesson_id, read_assignment_results.group_id
            using errcode = 'no_data_found';
    end if;
    return results_realtime.assignment_results_v1(
        read_assignment_results.group_id, read_assignment_results.lesson_id,
        read_assignment_results.pupil_id, read_assignment_results.activity_id);
end
$$;

revoke all on function public.read_assignment_results(text, text, uuid, text) from public, anon;
grant execute on function public.read_assignment_results(text, text, uuid, text)
    to authenticated, service_role;
