-- Records the server instance; returns the one recorded before when it differs (a restart or a
-- crash recovery since the last check), no row when it is the same. Run under the staging lock.
-- A crash recovery keeps pg_postmaster_start_time() but resets the cumulative statistics, so the
-- instance is both times (a manual reset of the bgwriter statistics only costs one refetch).
with previous as (
    select server_instance from results_realtime.runtime_state for update
), current_instance as (
    select pg_postmaster_start_time()::text || ' / ' || coalesce(stats_reset::text, '-')
        as instance
    from pg_stat_bgwriter
)
update results_realtime.runtime_state as rs
set server_instance = current_instance.instance, updated_at = now()
from previous, current_instance
where previous.server_instance is distinct from current_instance.instance
returning previous.server_instance as previous
