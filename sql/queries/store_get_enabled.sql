select coalesce((select enabled from results_realtime.runtime_state), false)
