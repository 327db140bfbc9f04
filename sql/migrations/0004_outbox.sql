-- The durable path of a change: trigger -> outbox -> (staging) -> outbox_messages -> Realtime.
--
-- outbox            one row per changed cell key, written by the triggers in the writer's own
--                   transaction (ids, op and source only; the state is read later, in batches).
-- outbox_messages   fully built broadcast messages with their channel seq, written by the daemon
--                   in the same transaction that deletes the outbox rows they carry; deleted only
--                   after Realtime accepted them. A redelivery therefore has the same seq/eventId.
-- dead_letters      messages Realtime rejected for good (4xx other than 429), kept for people.
-- channel_sequences the last seq staged per channel (gap-free, survives restarts).
-- runtime_state     one row: the feature flag mirrored from the daemon's config, the doorbell, and
--                   the server instance the daemon last staged on.

create schema if not exists results_realtime;

create table results_realtime.runtime_state (
    singleton boolean primary key default true check (singleton),
    -- Triggers record changes only while enabled (RESULTS_REALTIME_ENABLED mirrored by the daemon).
    enabled boolean not null default true,
    -- Triggers NOTIFY only while armed: the daemon disarms it while it is busy draining (it polls
    -- then) so that concurrent writers do not queue on the cluster-wide NOTIFY commit lock.
    doorbell_armed boolean not null default true,
    -- The server instance the daemon last staged on (sql/queries/store_server_restart.sql):
    -- staging commits asynchronously, so after a server restart or crash recovery the daemon
    -- advances every channel's seq by 10,000 (see daemon/pipeline/store.py).
    server_instance text,
    updated_at timestamptz not null default now()
) with (fillfactor = 50);

insert into results_realtime.runtime_state (singleton) values (true);

create table results_realtime.outbox (
    id bigserial primary key,
    activity_id text not null,
    pupil_id uuid not null,
    op text not null,
    source text not null,
    object_name text,
    -- clock_timestamp(), not now(): the time of the change itself, which in a long transaction is
    -- much closer to its commit than the transaction's start. Used for changedAt and the lag metric.
    created_at timestamptz not null default clock_timestamp()
);

create table results_realtime.channel_sequences (
    channel text primary key,
    last_seq bigint not null check (last_seq > 0)
);

create table results_realtime.outbox_messages (
    id bigserial primary key,
    channel text not null,
    seq bigint not null,
    event text not null check (event in ('result_cell', 'result_cells', 'result_refresh')),
    -- The compact JSON exactly as sent: a redelivery is byte-for-byte the first delivery, and
    -- staging does not parse it into jsonb (dead_letters keeps jsonb, for people to query).
    payload text not null,
    oldest_change_at timestamptz not null,
    cell_count int not null,
    attempts int not null default 0,
    created_at timestamptz not null default now(),
    unique (channel, seq)
);

create table results_realtime.dead_letters (
    id bigserial primary key,
    message_id bigint not null,
    channel text not null,
    seq bigint not null,
    event text not null,
    payload jsonb not null,
    oldest_change_at timestamptz not null,
    cell_count int not null,
    attempts int not null,
    http_status int,
    response_body text not null,
    failed_at timestamptz not null default now()
);

-- Only the owner (the daemon's role, the SECURITY DEFINER triggers) touches these tables. RLS
-- with no policy keeps them closed even if a later default privilege grants something.
do $$
declare
    t text;
begin
    foreach t in array array['runtime_state', 'outbox', 'channel_sequences', 'outbox_messages',
                             'dead_letters']
    loop
        execute format('revoke all on table results_realtime.%I from public', t);
        execute format('alter table results_realtime.%I enable row level security', t);
    end loop;
end
$$;

-- The channel of an assignment; the daemon, the read function and the tests agree on it here.
create or replace function results_realtime.channel_name_v1(group_id text, lesson_id text)
returns text
language sql immutable
as $$ select 'assignment_results:' || group_id || ':' || lesson_id $$;

-- ISO-8601 UTC with microseconds and a 'Z', the timestamp format of every payload. STABLE like
-- to_char, so that it is inlined.
create or replace function results_realtime.iso_utc_v1(ts timestamptz)
returns text
language sql stable
as $$ select to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
