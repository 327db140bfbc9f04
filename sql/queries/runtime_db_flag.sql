-- `check`: the feature flag as the triggers see it (their copy of runtime_state: migration 0011).
select coalesce(pg_sequence_last_value('results_realtime.runtime_flags') & 1 = 1, false)
