-- Every cell key, interleaved across groups so that any slice spreads over every channel.
select act.id as activity_id, m.user_id::text as pupil_id, m.group_id
from public.group_members as m
cross join public.activities as act
where m.role = 'pupil'
order by act.position, row_number() over (partition by m.group_id order by m.user_id), m.group_id
