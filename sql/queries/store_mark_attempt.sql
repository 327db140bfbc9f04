update results_realtime.outbox_messages set attempts = attempts + 1 where id = any($1::bigint[])
