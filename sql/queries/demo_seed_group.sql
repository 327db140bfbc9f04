-- Demo seed: a group ($1 id, $2 name).
insert into public.groups (id, name) values ($1, $2) on conflict (id) do update set name = excluded.name
