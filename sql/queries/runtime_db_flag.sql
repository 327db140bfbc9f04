-- `check`: the feature flag as the triggers see it.
select enabled from results_realtime.runtime_state
