-- Who holds the leader lock (a standby says so once): its backend pid and application_name.
select l.pid, a.application_name, a.client_addr::text as client_addr
from pg_locks as l
left join pg_stat_activity as a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted
    and l.objsubid = 1
    and ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint
limit 1
