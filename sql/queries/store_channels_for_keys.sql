select results_realtime.channel_name_v1(group_id, lesson_id) as channel,
       group_id, lesson_id, activity_id, pupil_id::text as pupil_id
from results_realtime.cell_channels_v1($1::text[], $2::text[]::uuid[])
