-- Demo seed: the lesson $2 assigned to group $1.
insert into public.assignments (group_id, lesson_id) values ($1, $2) on conflict do nothing
