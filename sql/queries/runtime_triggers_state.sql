-- Whether sql/triggers.sql needs applying: for each of its triggers ($2 tables, $3 names), whether
-- it exists (one dropped by hand, or by the benchmark's baseline, is restored by the next
-- `migrate`), with the checksum recorded when the file was last applied on every row.
select w.table_name, w.trigger_name,
       exists (select from pg_catalog.pg_trigger as t
               where t.tgrelid = to_regclass(w.table_name) and t.tgname = w.trigger_name)
           as present,
       (select r.checksum from results_realtime.repeatable_files as r where r.name = $1)
           as recorded
from unnest($2::text[], $3::text[]) as w (table_name, trigger_name)
