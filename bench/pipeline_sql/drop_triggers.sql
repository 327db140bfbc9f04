-- The writer-cost baseline: the reference schema without the realtime triggers on submissions.
drop trigger if exists results_realtime_insert_v1 on public.submissions;
drop trigger if exists results_realtime_update_v1 on public.submissions;
drop trigger if exists results_realtime_delete_v1 on public.submissions;
