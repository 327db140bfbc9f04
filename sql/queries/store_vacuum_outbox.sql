-- The outbox's head: every staging deletes the oldest rows, and until they are vacuumed each
-- claim's index scan steps over their dead entries again (autovacuum visits a database once a
-- minute: at 1,000 changes/s that is 60,000 of them). SKIP_LOCKED: never wait for anyone.
-- TRUNCATE false: the writers refill the tail at once, and truncating takes an exclusive lock that
-- VACUUM keeps retrying for up to 5 s while they insert (seen in pg_stat_activity as
-- Timeout:VacuumTruncate); autovacuum still gives back the space after a backlog.
vacuum (skip_locked, truncate false) results_realtime.outbox
