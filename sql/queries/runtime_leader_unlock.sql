-- Leader step-down on a clean shutdown (a dead session releases the lock by itself).
select pg_advisory_unlock($1::bigint)
