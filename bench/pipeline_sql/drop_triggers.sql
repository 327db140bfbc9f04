-- The writer-cost baseline: the reference schema without any of the realtime triggers
-- (sql/triggers.sql: submissions and storage.objects).
drop trigger if exists results_realtime_insert_v1 on public.submissions;
drop trigger if exists results_realtime_update_v1 on public.submissions;
drop trigger if exists results_realtime_delete_v1 on public.submissions;
drop trigger if exists results_realtime_truncate_v1 on public.submissions;
drop trigger if exists results_realtime_insert_v1 on storage.objects;
drop trigger if exists results_realtime_update_v1 on storage.objects;
drop trigger if exists results_realtime_delete_v1 on storage.objects;
drop trigger if exists results_realtime_truncate_v1 on storage.objects;
