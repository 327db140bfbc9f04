-- One lesson with $1 activities (the columns of every assignment's matrix).
with lesson as (
    insert into public.lessons (id, title) values ('bench-lesson', 'Benchmark lesson') returning id
)
insert into public.activities (id, lesson_id, title, kind, position)
select 'act-' || lpad(n::text, 4, '0'), lesson.id, 'Activity ' || n, 'text', n
from lesson, generate_series(1, $1) as n
