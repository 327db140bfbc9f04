-- $1 groups, each assigned the benchmark lesson, with one teacher and $2 pupils.
with groups as (
    insert into public.groups (id, name)
    select 'grp-' || lpad(g::text, 3, '0'), 'Group ' || g from generate_series(1, $1) as g
    returning id
),
assigned as (
    insert into public.assignments (group_id, lesson_id)
    select id, 'bench-lesson' from groups
    returning group_id
)
insert into public.group_members (group_id, user_id, role)
select a.group_id, gen_random_uuid(), m.role
from assigned as a
cross join lateral (
    select 'teacher' as role
    union all
    select 'pupil' from generate_series(1, $2)
) as m
