-- THE SCHEMA ADAPTER'S STATE FUNCTION, version 2: cell_state_v2 returns each cell's state as json
-- built by row_to_json (compact, keys in column order) instead of cell_state_v1's jsonb built by
-- jsonb_build_object. The daemon reads the state as text and adds the rest of the Cell to it, so
-- jsonb bought nothing but cost: building a 10-key jsonb object and printing it cost more than the
-- whole rest of the enrichment (200 keys: 2,700 against 1,800 us of backend CPU for the
-- adapter, 4.5 us per changed cell; bench/RESULTS.md, run N).
--
-- The adapter is now cell_channels_v1 and object_cell_v1 (0005) and cell_state_v2 (here); 0005's
-- header says how to adapt them, the reference rules are unchanged. An adopting team copies this
-- function too and keeps its output columns (state: a JSON object, one key per column of the
-- lateral row below). cell_state_v1 is dropped: everything that read it reads cell_state_v2.

create or replace function results_realtime.cell_state_v2(
    activity_ids text[], pupil_ids uuid[]
)
returns table (group_id text, lesson_id text, activity_id text, pupil_id uuid, state json)
language sql stable
as $$
    with cells as (
        select c.group_id, c.lesson_id, c.activity_id, c.pupil_id,
               c.lesson_id || '/' || c.activity_id || '/' || c.pupil_id::text as folder
        from results_realtime.cell_channels_v1(activity_ids, pupil_ids) as c
    ),
    uploads as materialized (
        -- folder -> [count, latest upload time], for the whole batch (the join's shape: 0005).
        select coalesce(jsonb_object_agg(f.folder, jsonb_build_array(f.n, f.last_at)), '{}')
               as by_folder
        from (
            select k.folder, count(*) as n, max(coalesce(o.updated_at, o.created_at)) as last_at
            from (select distinct cells.folder from cells) as k
            join storage.objects as o
                on split_part(o.name, '/', 1) || '/' || split_part(o.name, '/', 2) || '/'
                   || split_part(o.name, '/', 3) = k.folder
               and o.name collate "C" > k.folder || '/'
               and o.name collate "C" < k.folder || '0'
            where o.bucket_id = 'submissions'
              and o.name not like '%/.emptyFolderPlaceholder'
            group by k.folder
        ) as f
    ),
    facts as (
        select c.group_id, c.lesson_id, c.activity_id, c.pupil_id, s.id as submission_id,
               coalesce(results_realtime.has_answer_v1(s.body), false) as has_answer,
               s.submitted_at, s.ai_score, s.ai_model, s.ai_feedback, s.ai_marked_at,
               s.teacher_score, s.teacher_marked_at,
               coalesce((u.by_folder -> c.folder ->> 0)::int, 0) as upload_count,
               (u.by_folder -> c.folder ->> 1)::timestamptz as last_upload_at
        from cells as c
        cross join uploads as u
        left join public.submissions as s
            on s.activity_id = c.activity_id and s.user_id = c.pupil_id
    ),
    derived as (
        select f.*,
               f.has_answer or f.upload_count > 0 as submitted,
               case
                   when f.teacher_score is not null or f.teacher_marked_at is not null
                       then 'teacher_marked'
                   when f.ai_score is not null or f.ai_marked_at is not null then 'ai_marked'
                   when f.has_answer or f.upload_count > 0 then 'submitted'
                   else 'not_submitted'
               end as status
        from facts as f
    )
    -- One column per key of the state, in the order the keys are printed.
    select d.group_id, d.lesson_id, d.activity_id, d.pupil_id, row_to_json(c)
    from derived as d
    cross join lateral (
        select d.submission_id as "submissionId",
               d.status as "status",
               coalesce(d.teacher_score, d.ai_score) as "score",
               d.ai_score as "aiScore",
               d.teacher_score as "teacherScore",
               case
                   when d.ai_score is null and d.ai_model is null and d.ai_feedback is null
                        and d.ai_marked_at is null then null
                   else (select row_to_json(a) from (select
                       d.ai_model as "model",
                       results_realtime.iso_utc_v1(d.ai_marked_at) as "feedbackAt",
                       coalesce(btrim(d.ai_feedback), '') <> '' as "hasFeedback") as a)
               end as "ai",
               case when d.submitted then results_realtime.iso_utc_v1(greatest(
                   case when d.has_answer then d.submitted_at end, d.last_upload_at)) end
                   as "submittedAt",
               d.upload_count as "uploadCount",
               d.upload_count > 0 as "hasUpload",
               d.status = 'submitted' as "needsMarking"
    ) as c
$$;

revoke all on function results_realtime.cell_state_v2(text[], uuid[]) from public;

-- The daemon's staging read (0009), now on cell_state_v2; signature and output unchanged.
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
            from results_realtime.cell_state_v2(v_activity_ids, v_pupil_ids) as s
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

-- As in 0006, on cell_state_v2 (its state cast to jsonb for make_cell_v1).
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
        from results_realtime.cell_state_v2(activity_ids, pupil_ids) as s
        cross join changes as c
    )
    select results_realtime.channel_name_v1(s.group_id, s.lesson_id),
           s.group_id, s.lesson_id, s.activity_id, s.pupil_id,
           results_realtime.make_cell_v1(s.group_id, s.lesson_id, s.activity_id, s.pupil_id,
                                         s.state::jsonb, s.change ->> 0, s.change ->> 1,
                                         (s.change ->> 2)::timestamptz)
    from cells as s
$$;

revoke all on function results_realtime.cells_for_keys_v1(
    text[], uuid[], text[], text[], timestamptz[]) from public;

-- The client's refetch (0006), on cell_state_v2.
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
                   s.group_id, s.lesson_id, s.activity_id, s.pupil_id, s.state::jsonb,
                   'update', 'system', now())
               || jsonb_build_object(
                   'eventId', 'read:' || channel.name || ':' || coalesce(seq.last_seq, 0),
                   'seq', seq.last_seq) as cell
        from keys, channel, seq,
             results_realtime.cell_state_v2(keys.activity_ids, keys.pupil_ids) as s
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

drop function results_realtime.cell_state_v1(text[], uuid[]);
