-- Demo seed: a group member ($1 group, $2 user id, $3 role 'pupil' or 'teacher').
insert into public.group_members (group_id, user_id, role) values ($1, $2, $3)
on conflict (group_id, user_id) do update set role = excluded.role
