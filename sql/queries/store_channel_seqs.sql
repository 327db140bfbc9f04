-- The last seq staged on each of these channels (read under the staging lock).
select channel, last_seq from results_realtime.channel_sequences where channel = any($1::text[])
