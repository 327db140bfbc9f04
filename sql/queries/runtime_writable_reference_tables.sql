-- `check`: tables of the app the channel policy and the reads rely on ($1: group_members decides
-- who teaches a group) that anon or authenticated may write while row level security is off:
-- anybody holding the anon key could make themselves a teacher. (Before 0002 was rewritten,
-- migrate created the reference tables that way on a Supabase project whose tables have other
-- names: Supabase grants both roles every privilege on new tables in public.)
select c.relname
from pg_catalog.pg_class as c
where c.relnamespace = 'public'::regnamespace
  and c.relname = any($1::text[])
  and not c.relrowsecurity
  and exists (
      select
      from pg_catalog.pg_roles as r
      where r.rolname in ('anon', 'authenticated')
        and pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE')
  )
order by c.relname
