with moved as (
    delete from results_realtime.outbox_messages where id = any($1::bigint[]) returning *
)
insert into results_realtime.dead_letters
    (message_id, channel, seq, event, payload, oldest_change_at, cell_count, attempts,
     http_status, response_body)
select id, channel, seq, event, payload::jsonb, oldest_change_at, cell_count, attempts,
       $2::int, $3::text
from moved
