-- Inserts the staged messages, in array order (so outbox_messages.id order is seq order within
-- each channel), and records each channel's new last seq ($7, $8). The daemon numbered the
-- messages from the seqs it read under the staging lock, which it still holds. Channel rows are
-- written in channel order so that concurrent stagers could never deadlock.
with advanced as (
    insert into results_realtime.channel_sequences as cs (channel, last_seq)
    select s.channel, s.last_seq
    from unnest($7::text[], $8::bigint[]) as s (channel, last_seq)
    order by s.channel
    on conflict (channel) do update set last_seq = excluded.last_seq
)
insert into results_realtime.outbox_messages
    (channel, seq, event, payload, oldest_change_at, cell_count)
select u.channel, u.seq, u.event, u.payload, u.oldest_change_at, u.cell_count
from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::int[])
    with ordinality as u (channel, seq, event, payload, oldest_change_at, cell_count, ord)
order by u.ord
returning id, channel, seq
