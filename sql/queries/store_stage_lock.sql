-- Serializes staging for the rest of the transaction, so seq order is enrichment order even if
-- two stagers ever ran at once (the leader lock should already prevent that).
select pg_advisory_xact_lock($1::bigint)
