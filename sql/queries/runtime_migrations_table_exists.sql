-- `check`: has `migrate` ever run on this database?
select to_regclass('results_realtime.schema_migrations') is not null
