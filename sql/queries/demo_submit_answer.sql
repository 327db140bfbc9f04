-- A pupil submits (or resubmits) an answer: $1 activity, $2 pupil, $3 body jsonb.
insert into public.submissions (activity_id, user_id, body, submitted_at, updated_at)
values ($1, $2, $3::jsonb, now(), now())
on conflict (activity_id, user_id) do update
    set body = excluded.body, submitted_at = now(), updated_at = now()
