-- Demo: claim its own database for this run (a session-level advisory lock, freed when the
-- session ends), so that a second demo on the same server refuses instead of sharing it.
select pg_try_advisory_lock($1::bigint)
