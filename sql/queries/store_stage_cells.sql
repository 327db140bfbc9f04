-- The database half of one staging in one round trip (sql/migrations/0007_staging.sql): lock,
-- async commit, acks ($3), disarm ($4), claim up to $2 rows, coalesce, enrich, the channels' seqs.
select claimed, first_id, op, source, changed_at, oldest_change_at, activity_id, pupil_id,
       channel, group_id, lesson_id, cell, last_seq
from results_realtime.stage_cells_v1($1::bigint, $2::int, $3::bigint[], $4::boolean)
