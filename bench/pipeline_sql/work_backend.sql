-- The backend of a session by its application_name (the daemon names each of its sessions).
select pid from pg_stat_activity where application_name = $1 order by backend_start limit 1
