-- In array order, so outbox_messages.id order is seq order within each channel.
insert into results_realtime.outbox_messages
    (channel, seq, event, payload, oldest_change_at, cell_count)
select u.channel, u.seq, u.event, u.payload, u.oldest_change_at, u.cell_count
from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::int[])
    with ordinality as u (channel, seq, event, payload, oldest_change_at, cell_count, ord)
order by u.ord
returning id, channel, seq
