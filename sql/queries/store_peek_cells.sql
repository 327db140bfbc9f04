-- Step 1 of a staging (sql/migrations/0008_optimistic_staging.sql), autocommit: acks ($2),
-- disarm ($3), read up to $1 outbox rows, coalesce, enrich, the channels' seqs.
select read_ids, first_id, op, source, changed_at, oldest_change_at, activity_id, pupil_id,
       channel, group_id, lesson_id, cell, last_seq
from results_realtime.peek_cells_v1($1::int, $2::bigint[], $3::boolean)
