-- A deliberate gap of one seq on every channel: messages staged just before a server crash may
-- have been published yet lost with the crash, and their seqs must never carry other content.
update results_realtime.channel_sequences set last_seq = last_seq + 1
