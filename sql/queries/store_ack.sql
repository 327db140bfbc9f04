delete from results_realtime.outbox_messages where id = any($1::bigint[])
