-- A deliberate gap on every channel after a server restart or crash recovery: the staging commits
-- of the last moments before a crash (asynchronous, so at most a few wal_writer_delay periods) may
-- have been published yet lost with the crash, and their seqs must never carry other content.
-- 10,000 is more than every channel together can be sent in that window, even at the highest
-- Supabase budget (2,500 messages/s); clients see prevSeq != their last seq and refetch once.
update results_realtime.channel_sequences set last_seq = last_seq + 10000
