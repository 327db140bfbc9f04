-- The careful path's claim (after store_stage_lock): one row per changed key, coalesced;
-- changed_at also as the payloads' ISO-8601 text.
select activity_id, pupil_id::text as pupil_id, op, source, changed_at,
       results_realtime.iso_utc_v1(changed_at) as changed_at_text, oldest_change_at,
       first_id, claimed
from results_realtime.claim_changes_v1($1::int, $2::bigint[], $3::boolean)
