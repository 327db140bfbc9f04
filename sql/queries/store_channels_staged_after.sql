-- Of these refused messages (channel, seq), the channels on which a later message is staged: it
-- will show the clients the refused seq's gap, so they refetch without a refresh of their own.
select distinct m.channel
from unnest($1::text[], $2::bigint[]) as refused (channel, seq)
join results_realtime.outbox_messages as m on m.channel = refused.channel and m.seq > refused.seq
