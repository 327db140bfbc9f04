-- Whether sql/triggers.sql needs applying: the checksum recorded when it was last applied, and how
-- many of its triggers ($2 tables, $3 names) exist (one dropped by hand, or by the benchmark's
-- baseline, is restored by the next `migrate`).
select (select r.checksum from results_realtime.repeatable_files as r where r.name = $1)
           as recorded,
       (select count(*)
        from unnest($2::text[], $3::text[]) as w (table_name, trigger_name)
        join pg_catalog.pg_trigger as t
            on t.tgrelid = to_regclass(w.table_name) and t.tgname = w.trigger_name) as present
