-- The state row rewritten as it is: its commit rewrites the triggers' copy of the flags
-- (migration 0011), repairing a copy that no longer says what the row says.
update results_realtime.runtime_state set updated_at = now()
