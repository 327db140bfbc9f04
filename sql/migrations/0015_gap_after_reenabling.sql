-- Turning realtime back on leaves a gap in every channel's seq.
--
-- While the flag is off the triggers record nothing. A page that stays subscribed through the off
-- period (its own switch is read when it loads) would keep the cells changed meanwhile stale for
-- good: the next message would follow the last one without a gap. With a gap, every such client
-- refetches the assignment once (PAYLOAD.md), as after a server restart (store_skip_seq.sql).
--
-- A trigger on runtime_state, so that every way of turning realtime on counts: a daemon started
-- with the flag on, an UPDATE by hand, the row inserted again after a DELETE. A staging that read
-- the seqs before the gap fails commit_stage_v1's check of them and stages again. A channel that
-- has never carried a message has no seq to advance: its clients' first message has prevSeq null,
-- so a page opened on such an assignment before realtime went off still misses the changes made
-- while it was off.

create or replace function results_realtime.gap_after_reenabling_v1()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if new.enabled and (tg_op = 'INSERT' or old.enabled is distinct from true) then
        update results_realtime.channel_sequences set last_seq = last_seq + 10000;
    end if;
    return null;
end
$$;

revoke all on function results_realtime.gap_after_reenabling_v1() from public;

create trigger results_realtime_gap_after_reenabling_v1
    after insert or update of enabled on results_realtime.runtime_state
    for each row execute function results_realtime.gap_after_reenabling_v1();
