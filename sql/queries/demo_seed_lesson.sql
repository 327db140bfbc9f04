-- Demo seed: a lesson ($1 id, $2 title).
insert into public.lessons (id, title) values ($1, $2) on conflict (id) do update set title = excluded.title
