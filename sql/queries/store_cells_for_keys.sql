select channel, group_id, lesson_id, activity_id, pupil_id::text as pupil_id, cell::text as cell
from results_realtime.cells_for_keys_v1(
    $1::text[], $2::text[]::uuid[], $3::text[], $4::text[], $5::timestamptz[]
)
