-- Demo seed: an activity ($1 id, $2 lesson, $3 title, $4 kind, $5 position).
insert into public.activities (id, lesson_id, title, kind, position) values ($1, $2, $3, $4, $5)
on conflict (id) do update
    set lesson_id = excluded.lesson_id, title = excluded.title, kind = excluded.kind,
        position = excluded.position
