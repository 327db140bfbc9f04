select id, channel, seq, event, payload, oldest_change_at, cell_count
from results_realtime.outbox_messages
order by id
limit $1::int
