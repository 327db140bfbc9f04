-- Opens a staging transaction. The advisory lock serializes staging for the rest of the
-- transaction, so seq order is enrichment order even if two stagers ever ran at once (the leader
-- lock should already prevent that). The commit is asynchronous: see Store (a server crash is
-- covered by store_server_restart).
select pg_advisory_xact_lock($1::bigint), set_config('synchronous_commit', 'off', true)
