-- Is a transaction that wrote outbox rows still open? Its triggers may have found the doorbell
-- disarmed (the flags are read after the row is written, so a granted lock on the outbox predates
-- that read), and then its commit rings nothing. Run after arming the doorbell and before looking
-- at the outbox: a writer that ends in between has committed its rows by then. pg_locks is
-- readable by every role; the work connection's own locks do not count.
select exists (
    select 1
    from pg_catalog.pg_locks as l
    where l.locktype = 'relation'
      and l.database = (select d.oid from pg_catalog.pg_database as d
                        where d.datname = pg_catalog.current_database())
      and l.relation = 'results_realtime.outbox'::regclass
      and l.mode = 'RowExclusiveLock'
      and l.granted
      and l.pid <> pg_catalog.pg_backend_pid()
)
