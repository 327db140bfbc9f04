-- Seconds since the oldest change that has not reached Realtime yet (raw or staged); null if none.
select extract(epoch from clock_timestamp() - least(
    (select created_at from results_realtime.outbox order by id limit 1),
    (select min(oldest_change_at) from results_realtime.outbox_messages)
))::float8
