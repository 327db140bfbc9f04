-- A cheaper flag read for the writers' triggers: runtime_state's two flags, mirrored into a
-- sequence at every commit that changes the row.
--
-- Every insert into submissions read `enabled` and `doorbell_armed` with a query of
-- runtime_state; an executor run for one row is a large share of what the trigger costs the app's
-- writer. Reading a sequence is one function call instead (pg_sequence_last_value, a PL/pgSQL
-- simple expression): 8 writers inserting one submission per transaction committed 3.5-4 % more
-- (pgbench: 7,750/s against 7,487/s, bare 9,474/s; asyncpg writers: 7,763/s against 7,464/s;
-- 6 alternated rounds each; bench/RESULTS.md, runs X-Z).
--
-- runtime_state stays the one place the flags are written and read by people and by the daemon;
-- the sequence is a copy for the triggers only (bit 1: enabled, bit 2: doorbell armed). A sequence
-- is not transactional, so the copy is written by a deferred constraint trigger, at the commit of
-- the transaction that changed the row: a rolled-back change never reaches it, and the row lock
-- orders the copies of concurrent changes as it orders the changes. Every write of the row
-- rewrites the copy, and the daemon writes it at each start and after each server restart, so a
-- copy that a crash kept while losing its commit is corrected then.

create sequence results_realtime.runtime_flags as smallint minvalue 0 maxvalue 3 no cycle;

revoke all on sequence results_realtime.runtime_flags from public;

create or replace function results_realtime.runtime_flag_bits_v1(
    enabled boolean, doorbell_armed boolean
)
returns int
language sql immutable
as $$
    select case when coalesce(enabled, false) then 1 else 0 end
         | case when coalesce(doorbell_armed, false) then 2 else 0 end
$$;

-- No row (deleted or truncated) means disabled, as it did for the triggers' query.
create or replace function results_realtime.mirror_runtime_flags_v1()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    perform setval('results_realtime.runtime_flags',
                   case when tg_op in ('DELETE', 'TRUNCATE') then 0
                        else results_realtime.runtime_flag_bits_v1(new.enabled, new.doorbell_armed)
                   end,
                   true);
    return null;
end
$$;

create constraint trigger results_realtime_mirror_flags_v1
after insert or update or delete on results_realtime.runtime_state
deferrable initially deferred
for each row execute function results_realtime.mirror_runtime_flags_v1();

create trigger results_realtime_mirror_flags_truncate_v1
after truncate on results_realtime.runtime_state
for each statement execute function results_realtime.mirror_runtime_flags_v1();

select setval(
    'results_realtime.runtime_flags',
    coalesce((select results_realtime.runtime_flag_bits_v1(r.enabled, r.doorbell_armed)
              from results_realtime.runtime_state as r), 0),
    true
);
