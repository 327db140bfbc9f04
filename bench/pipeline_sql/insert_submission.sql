-- A pupil submits a text answer: the app's hot path (one autocommit transaction per call).
insert into public.submissions (activity_id, user_id, body) values ($1, $2::uuid, $3::jsonb)
