-- The AI worker marks a cell: $1 activity, $2 pupil, $3 score, $4 model, $5 feedback. An upload
-- has no submissions row yet: the worker writes one with an empty body, as the app may do.
insert into public.submissions
    (activity_id, user_id, body, ai_score, ai_model, ai_feedback, ai_marked_at, updated_at)
values ($1, $2, '{}'::jsonb, $3, $4, $5, now(), now())
on conflict (activity_id, user_id) do update
    set ai_score = excluded.ai_score, ai_model = excluded.ai_model,
        ai_feedback = excluded.ai_feedback, ai_marked_at = now(), updated_at = now()
