-- TRUNCATE of runtime_state is refused.
--
-- The triggers read a copy of the row's flags kept in the sequence results_realtime.runtime_flags
-- (0011). Inserts, updates and deletes of the row reach the copy at their commit, through a
-- deferred constraint trigger, so a rolled-back change never does. TRUNCATE cannot have a
-- deferred trigger: 0011 copied "no row" (0: off) at once, and a sequence keeps that through a
-- rollback. Every trigger then stopped recording changes until the daemon's next look at the copy
-- (a quiet idle poll, or arming the doorbell): changes made meanwhile were lost. Refusing the
-- TRUNCATE closes that window. DELETE of the row still turns realtime off, transactionally.

drop trigger if exists results_realtime_mirror_flags_truncate_v1
    on results_realtime.runtime_state;

create or replace function results_realtime.refuse_state_truncate_v1()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using
        errcode = 'feature_not_supported',
        message = 'results_realtime.runtime_state cannot be truncated: the writers'' triggers '
                  'read a copy of its flags that a truncate would change before its commit',
        hint = 'To turn realtime off: update results_realtime.runtime_state set enabled = false '
               '(or RESULTS_REALTIME_ENABLED=false for the daemon). DELETE of the row also '
               'turns it off.';
end
$$;

revoke all on function results_realtime.refuse_state_truncate_v1() from public;

create trigger results_realtime_refuse_truncate_v1
before truncate on results_realtime.runtime_state
for each statement execute function results_realtime.refuse_state_truncate_v1();
