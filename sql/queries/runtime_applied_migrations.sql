-- `check`: the numbered migrations this database has, in order.
select version from results_realtime.schema_migrations order by version
