-- The burst's starting state: one unmarked text submission per given key.
insert into public.submissions (activity_id, user_id, body)
select k.activity_id, k.pupil_id, '{"text": "answer"}'::jsonb
from unnest($1::text[], $2::uuid[]) as k (activity_id, pupil_id)
