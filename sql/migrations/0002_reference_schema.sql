-- The reference application schema (SCHEMA.md). A real app already has these tables: each is
-- created only when missing, and nothing here alters an existing table.

create table if not exists public.groups (
    id text primary key,
    name text not null
);

create table if not exists public.lessons (
    id text primary key,
    title text not null
);

create table if not exists public.activities (
    id text primary key,
    lesson_id text not null references public.lessons,
    title text not null,
    kind text not null check (kind in ('text', 'upload', 'choice')),
    position int not null default 0
);

create table if not exists public.group_members (
    group_id text references public.groups,
    user_id uuid not null,
    role text not null check (role in ('pupil', 'teacher')),
    primary key (group_id, user_id)
);

create table if not exists public.assignments (
    group_id text references public.groups,
    lesson_id text references public.lessons,
    primary key (group_id, lesson_id)
);

create table if not exists public.submissions (
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
