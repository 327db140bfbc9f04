-- The teacher of each benchmark group (one per group: the subscriber of its channel).
select m.group_id, m.user_id::text as teacher_id
from public.group_members as m
where m.role = 'teacher'
order by m.group_id
