-- A teacher overrides the score: $1 activity, $2 pupil, $3 score, $4 feedback.
update public.submissions
set teacher_score = $3, teacher_feedback = $4, teacher_marked_at = now(), updated_at = now()
where activity_id = $1 and user_id = $2
