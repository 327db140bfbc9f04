-- The reference application schema (SCHEMA.md). A real app already has these tables: each is
-- created only when missing, and nothing here alters an existing table.
--
-- A table created here has row level security on and no policy: only its owner and roles that
-- bypass RLS (the daemon, the service role) see its rows until the app adds policies. On a
-- Supabase project whose tables have other names these tables are created empty, and Supabase's
-- default privileges grant anon and authenticated everything on new tables in public: without
-- RLS anybody holding the anon key could have made themselves a teacher in group_members, which
-- is_group_teacher_v1 reads.
--
-- This file was rewritten after its first release (which created the tables without RLS);
-- where that version applied, this one finds every table and would change nothing, so a
-- database that recorded it is up to date (daemon/migrate.py). Tables the first version created
-- keep RLS off: `results-realtime check` says which.
-- replaces: bf4bb5c9cf30c78112cba33b1a60ecd8d6b8f53806367b19a1f0e992e7af5376

do $$
begin
    if to_regclass('public.groups') is null then
        create table public.groups (
            id text primary key,
            name text not null
        );
        alter table public.groups enable row level security;
    end if;

    if to_regclass('public.lessons') is null then
        create table public.lessons (
            id text primary key,
            title text not null
        );
        alter table public.lessons enable row level security;
    end if;

    if to_regclass('public.activities') is null then
        create table public.activities (
            id text primary key,
            lesson_id text not null references public.lessons,
            title text not null,
            kind text not null check (kind in ('text', 'upload', 'choice')),
            position int not null default 0
        );
        alter table public.activities enable row level security;
    end if;

    if to_regclass('public.group_members') is null then
        create table public.group_members (
            group_id text references public.groups,
            user_id uuid not null,
            role text not null check (role in ('pupil', 'teacher')),
            primary key (group_id, user_id)
        );
        alter table public.group_members enable row level security;
    end if;

    if to_regclass('public.assignments') is null then
        create table public.assignments (
            group_id text references public.groups,
            lesson_id text references public.lessons,
            primary key (group_id, lesson_id)
        );
        alter table public.assignments enable row level security;
    end if;

    if to_regclass('public.submissions') is null then
        create table public.submissions (
            id uuid primary key default gen_random_uuid(),
            activity_id text not null references public.activities,
            user_id uuid not null,
            body jsonb not null default '{}',
            submitted_at timestamptz not null default now(),
            ai_score numeric,
            ai_model text,
            ai_feedback text,
            ai_marked_at timestamptz,
            teacher_score numeric,
            teacher_feedback text,
            teacher_marked_at timestamptz,
            updated_at timestamptz not null default now(),
            unique (activity_id, user_id)
        );
        alter table public.submissions enable row level security;
    end if;
end
$$;
