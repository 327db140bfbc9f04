-- Is this session still the leader? (pg_locks shows the advisory lock of our own backend.)
select exists (
    select 1 from pg_locks
    where locktype = 'advisory' and pid = pg_backend_pid() and granted
        and objsubid = 1
        and ((classid::bigint << 32) | objid::bigint) = $1::bigint
)
