select (select count(*) from results_realtime.outbox)
     + (select count(*) from results_realtime.outbox_messages)
