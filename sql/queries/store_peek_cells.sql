-- Step 1 of a staging (sql/migrations/0009_lean_staging.sql), autocommit: acks ($2),
-- disarm ($3), read up to $1 outbox rows, coalesce, enrich (each cell's state as JSON text),
-- the channels' seqs.
select read_ids, first_id, op, source, changed_at, oldest_change_at, activity_id, pupil_id,
       channel, group_id, lesson_id, state, last_seq
from results_realtime.peek_cells_v2($1::int, $2::bigint[], $3::boolean)
