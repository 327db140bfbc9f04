-- Staged messages after id $2, oldest first (id order is seq order within each channel). The
-- bound is in the query, not applied to what it returns: messages already published but not yet
-- deleted (their acks wait for the next staging) must not fill the limit and hide the rest.
select id, channel, seq, event, payload, oldest_change_at, cell_count
from results_realtime.outbox_messages
where id > $2::bigint
order by id
limit $1::int
