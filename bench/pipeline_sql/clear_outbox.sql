-- Forget the changes recorded while the burst's starting state was written (no daemon yet).
delete from results_realtime.outbox
