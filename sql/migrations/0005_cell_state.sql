-- THE SCHEMA ADAPTER: the only SQL an adopting team changes for its own tables.
--
-- Set-based and linear in the batch: uploads are counted in one pass per batch, and per-batch
-- lookups go through one jsonb object rather than joins between derived key sets, whose size the
-- planner cannot know (it assumes ~10 rows for an unnested array parameter and would pick a nested
-- loop, quadratic in the batch size). Measured: 500 keys over 5,000 objects and 20,000
-- submissions in a few ms, against 1.7 s for a straightforward per-cell version.
--
-- Everything else (triggers, staging, read_assignment_results, the payload envelope) calls the
-- three functions below and never reads the application's tables itself:
--
--   results_realtime.cell_channels_v1(activity_ids, pupil_ids)
--       which assignments (group, lesson) a changed (activity, pupil) key belongs to;
--   results_realtime.cell_state_v1(activity_ids, pupil_ids)
--       the marking state of each (group, lesson, activity, pupil) cell, as the jsonb keys of
--       PAYLOAD.md's Cell that depend on the application's schema;
--   results_realtime.object_cell_v1(bucket_id, name)
--       which cell a Storage object belongs to (nulls: none, no event).
--
-- How to adapt: copy this file to a new migration numbered after the last one, keep the three
-- signatures and output columns, and rewrite the bodies (`create or replace function`) for your
-- tables. Keep them set-based (one query per batch of keys, linear in its size) and STABLE. The
-- triggers on your submissions table live in sql/triggers.sql (repeatable): adapt the column
-- names there too. tests/test_sql_cells.py and tests/test_sql_triggers.py show the expected
-- behaviour case by case; run them against your schema.
--
-- The reference rules (SCHEMA.md, PAYLOAD.md):
--   a cell belongs to every assignment (group_id, lesson_id) whose lesson is the activity's and
--   where the pupil is a 'pupil' member of the group;
--   an answer is a non-blank body.text or a non-empty body.choice; uploads are the objects of
--   bucket 'submissions' named '{lessonId}/{activityId}/{pupilId}/{filename}' (Storage's
--   '.emptyFolderPlaceholder' excluded);
--   submitted = an answer or at least one upload; status = teacher_marked (teacher score or
--   mark time) > ai_marked (AI score or mark time) > submitted > not_submitted;
--   score = teacher_score, else ai_score; needsMarking = status is submitted;
--   submittedAt = the latest of the answer's submitted_at and the uploads' times, null when
--   not submitted.

create or replace function results_realtime.cell_channels_v1(
    activity_ids text[], pupil_ids uuid[]
)
returns table (group_id text, lesson_id text, activity_id text, pupil_id uuid)
language sql stable
as $$
    select m.group_id, act.lesson_id, act.id, m.user_id
    from (
        select distinct k.activity_id, k.pupil_id
        from unnest(activity_ids, pupil_ids) as k (activity_id, pupil_id)
        where k.activity_id is not null and k.pupil_id is not null
    ) as k
    join public.activities as act on act.id = k.activity_id
    join public.group_members as m on m.user_id = k.pupil_id and m.role = 'pupil'
    join public.assignments as asg on asg.group_id = m.group_id and asg.lesson_id = act.lesson_id
$$;

-- A non-blank text or a non-empty choice is an answer; {} (an upload's placeholder row) is not.
create or replace function results_realtime.has_answer_v1(body jsonb)
returns boolean
language sql immutable
as $$
    select coalesce(btrim(body ->> 'text'), '') <> ''
        or coalesce(body -> 'choice' not in ('null', '""', '[]', '{}'), false)
$$;

-- One row per (group, lesson, activity, pupil) cell of the given keys. `state` carries these Cell
-- keys: submissionId, status, score, aiScore, teacherScore, ai, submittedAt, uploadCount,
-- hasUpload, needsMarking. (The coordinates, op, source, changedAt, eventId, seq and prevSeq are
-- added by results_realtime.make_cell_v1.)
create or replace function results_realtime.cell_state_v1(
    activity_ids text[], pupil_ids uuid[]
)
returns table (group_id text, lesson_id text, activity_id text, pupil_id uuid, state jsonb)
language sql stable
as $$
    with cells as (
        select c.group_id, c.lesson_id, c.activity_id, c.pupil_id,
               c.lesson_id || '/' || c.activity_id || '/' || c.pupil_id::text as folder
        from results_realtime.cell_channels_v1(activity_ids, pupil_ids) as c
    ),
    uploads as materialized (
        -- folder -> [count, latest upload time], for the whole batch. The equality on the first
        -- three path segments lets the planner hash-join one pass over the bucket; the byte-wise
        -- range lets it probe an index on name COLLATE "C" instead (Supabase Storage has one).
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
    select d.group_id, d.lesson_id, d.activity_id, d.pupil_id,
           jsonb_build_object(
               'submissionId', d.submission_id,
               'status', d.status,
               'score', coalesce(d.teacher_score, d.ai_score),
               'aiScore', d.ai_score,
               'teacherScore', d.teacher_score,
               'ai', case
                   when d.ai_score is null and d.ai_model is null and d.ai_feedback is null
                        and d.ai_marked_at is null then null
                   else jsonb_build_object(
                       'model', d.ai_model,
                       'feedbackAt', results_realtime.iso_utc_v1(d.ai_marked_at),
                       'hasFeedback', coalesce(btrim(d.ai_feedback), '') <> '')
               end,
               'submittedAt', case when d.submitted then results_realtime.iso_utc_v1(greatest(
                   case when d.has_answer then d.submitted_at end, d.last_upload_at)) end,
               'uploadCount', d.upload_count,
               'hasUpload', d.upload_count > 0,
               'needsMarking', d.status = 'submitted'
           ) as state
    from derived as d
$$;

-- '{lessonId}/{activityId}/{pupilId}/{filename}' in bucket 'submissions' -> its cell, else nulls.
-- Never raises: a foreign bucket, a wrong shape, a pupil id that is not a uuid, an unknown
-- activity or one of another lesson, and Storage's folder placeholders all map to nothing.
create or replace function results_realtime.object_cell_v1(
    bucket_id text, name text,
    out lesson_id text, out activity_id text, out pupil_id uuid
)
language sql stable
as $$
    select act.lesson_id, act.id, p.parts[3]::uuid
    from (select string_to_array(object_cell_v1.name, '/') as parts) as p
    join public.activities as act
        on act.id = p.parts[2] and act.lesson_id = p.parts[1]
    where object_cell_v1.bucket_id = 'submissions'
      and cardinality(p.parts) >= 4
      and p.parts[1] <> '' and p.parts[2] <> ''
      and p.parts[cardinality(p.parts)] not in ('', '.emptyFolderPlaceholder')
      and p.parts[3] ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;

revoke all on function results_realtime.cell_channels_v1(text[], uuid[]) from public;
revoke all on function results_realtime.cell_state_v1(text[], uuid[]) from public;
revoke all on function results_realtime.object_cell_v1(text, text) from public;
