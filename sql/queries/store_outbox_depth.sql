select count(*) from results_realtime.outbox
