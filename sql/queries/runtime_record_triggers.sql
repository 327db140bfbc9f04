-- sql/triggers.sql was applied: remember its checksum (in the transaction that applied it).
insert into results_realtime.repeatable_files as r (name, checksum) values ($1, $2)
on conflict (name) do update set checksum = excluded.checksum, applied_at = now()
