select count(*) from results_realtime.outbox_messages
