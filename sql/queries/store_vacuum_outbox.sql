-- The outbox's head: every staging deletes the oldest rows, and until they are vacuumed each
-- claim's index scan steps over their dead entries again (autovacuum visits a database once a
-- minute: at 1,000 changes/s that is 60,000 of them). SKIP_LOCKED: never wait for anyone.
vacuum (skip_locked) results_realtime.outbox
