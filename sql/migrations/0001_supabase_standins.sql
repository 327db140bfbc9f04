-- Local stand-ins for the objects a Supabase project already has. Each is created only when it is
-- missing, so on a real project this migration changes nothing.

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
end
$$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

-- auth.jwt() / auth.uid() / auth.role(): read the claims Realtime and PostgREST put into the
-- transaction settings. Created only where absent (Supabase owns these on a real project).
do $$
begin
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

create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create table if not exists storage.objects (
    id uuid primary key default gen_random_uuid(),
    bucket_id text,
    name text,
    owner uuid,
    metadata jsonb,
    created_at timestamptz default now(),
    updated_at timestamptz default now()
);

create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;

-- realtime.messages as Supabase Realtime defines it: range-partitioned on inserted_at, RLS on.
-- Realtime creates daily partitions; the local stand-in keeps a default partition instead.
do $$
begin
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
end
$$;

do $$
begin
    if to_regprocedure('realtime.topic()') is null then
        create function realtime.topic() returns text
        language sql stable
        as $f$ select nullif(current_setting('realtime.topic', true), '') $f$;
    end if;
end
$$;
