-- Leader election: a session-level advisory lock; the server frees it when the session dies.
select pg_try_advisory_lock($1::bigint)
