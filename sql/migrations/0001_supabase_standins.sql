-- Local stand-ins for the objects a Supabase project already has. Each is created only when it is
-- missing, so on a real project this migration changes nothing: it creates, and grants on, only
-- what it created. Every check of existence comes before the statement that would need a
-- privilege, because PostgreSQL checks the privilege first: `create table if not exists
-- storage.objects` fails with "permission denied for schema storage" on a Supabase project,
-- where the postgres role may no longer create objects in auth, storage and realtime.
--
-- This file was rewritten after its first release (which ran those statements unguarded); where
-- that version applied, this one finds everything in place and would change nothing, so a
-- database that recorded it is up to date (daemon/migrate.py):
-- replaces: b69949d0d8b95bac918b1bebbf587602ea79e757cb2243b77730dea4bcadbcc2

do $$
begin
    if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not has_schema_privilege('anon', 'public', 'usage')
       or not has_schema_privilege('authenticated', 'public', 'usage')
       or not has_schema_privilege('service_role', 'public', 'usage') then
        grant usage on schema public to anon, authenticated, service_role;
    end if;
end
$$;

-- auth.jwt() / auth.uid() / auth.role(): read the claims Realtime and PostgREST put into the
-- transaction settings. Created only where absent (Supabase owns these on a real project).
do $$
begin
    if to_regnamespace('auth') is null then
        create schema auth;
        grant usage on schema auth to anon, authenticated, service_role;
    end if;
    if to_regprocedure('auth.jwt()') is null then
        create function auth.jwt() returns jsonb
        language sql stable
        as $f$
            select coalesce(
                nullif(current_setting('request.jwt.claims', true), '')::jsonb,
                '{}'::jsonb
            )
        $f$;
    end if;
    if to_regprocedure('auth.uid()') is null then
        create function auth.uid() returns uuid
        language sql stable
        as $f$
            select nullif(coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                auth.jwt() ->> 'sub'
            ), '')::uuid
        $f$;
    end if;
    if to_regprocedure('auth.role()') is null then
        create function auth.role() returns text
        language sql stable
        as $f$
            select coalesce(
                nullif(current_setting('request.jwt.claim.role', true), ''),
                auth.jwt() ->> 'role'
            )
        $f$;
    end if;
end
$$;

do $$
begin
    if to_regnamespace('storage') is null then
        create schema storage;
        grant usage on schema storage to anon, authenticated, service_role;
    end if;
    if to_regclass('storage.objects') is null then
        create table storage.objects (
            id uuid primary key default gen_random_uuid(),
            bucket_id text,
            name text,
            owner uuid,
            metadata jsonb,
            created_at timestamptz default now(),
            updated_at timestamptz default now()
        );
    end if;
end
$$;

-- realtime.messages as Supabase Realtime defines it: range-partitioned on inserted_at, RLS on.
-- Realtime creates daily partitions; the local stand-in keeps a default partition instead.
do $$
begin
    if to_regnamespace('realtime') is null then
        create schema realtime;
        grant usage on schema realtime to anon, authenticated, service_role;
    end if;
    if to_regclass('realtime.messages') is null then
        create table realtime.messages (
            topic text not null,
            extension text not null,
            payload jsonb,
            event text,
            private boolean default false,
            updated_at timestamp without time zone not null default now(),
            inserted_at timestamp without time zone not null default now(),
            id uuid not null default gen_random_uuid(),
            binary_payload bytea,
            constraint messages_pkey primary key (id, inserted_at),
            constraint messages_payload_exclusive
                check (payload is null or binary_payload is null)
        ) partition by range (inserted_at);
        create table realtime.messages_default partition of realtime.messages default;
        create index messages_inserted_at_topic_index
            on realtime.messages (inserted_at desc, topic)
            where extension = 'broadcast' and private is true;
        alter table realtime.messages enable row level security;
        grant select, insert, update on realtime.messages to anon, authenticated, service_role;
    end if;
    if to_regprocedure('realtime.topic()') is null then
        create function realtime.topic() returns text
        language sql stable
        as $f$ select nullif(current_setting('realtime.topic', true), '') $f$;
    end if;
end
$$;
