-- Whether a role skips row level security (service_role does, on Supabase and in 0001). Its RLS
-- write check can only succeed, so the hub answers it from this (cached) fact instead.
select coalesce((select rolbypassrls or rolsuper from pg_roles where rolname = $1), false)
