-- The careful path's enrichment (inside a savepoint): the state of every cell of the given
-- (activity, pupil) keys, one row per channel the key belongs to, the state as JSON text.
select results_realtime.channel_name_v1(group_id, lesson_id) as channel,
       group_id, lesson_id, activity_id, pupil_id::text as pupil_id, state::text as state
from results_realtime.cell_state_v2($1::text[], $2::text[]::uuid[])
