-- The careful path's claim (after store_stage_lock): one row per changed key, coalesced.
select activity_id, pupil_id::text as pupil_id, op, source, changed_at, oldest_change_at,
       first_id, claimed
from results_realtime.claim_changes_v1($1::int, $2::bigint[], $3::boolean)
