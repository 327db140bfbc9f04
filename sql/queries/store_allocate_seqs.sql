-- Reserves $2[i] consecutive seqs on channel $1[i]; returns the last one reserved. Rows are
-- locked in channel order so concurrent stagers cannot deadlock.
insert into results_realtime.channel_sequences as cs (channel, last_seq)
select u.channel, u.n
from unnest($1::text[], $2::bigint[]) as u (channel, n)
order by u.channel
on conflict (channel) do update set last_seq = cs.last_seq + excluded.last_seq
returning channel, last_seq
