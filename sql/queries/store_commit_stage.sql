-- Step 2 of a staging, autocommit: under the staging lock ($1), delete the rows read ($2), advance
-- the channels' seqs if nobody else did ($3-$5), insert the messages ($6-$11). Raises
-- serialization_failure, changing nothing, when another session staged any of them meanwhile.
select staged_id as id, staged_channel as channel, staged_seq as seq
from results_realtime.commit_stage_v1(
    $1::bigint, $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
    $6::text[], $7::bigint[], $8::text[], $9::text[], $10::timestamptz[], $11::int[]
)
