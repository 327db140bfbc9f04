-- Mirror the configured flag at start. Always writes the row, even when the flag is unchanged:
-- each write also rewrites the triggers' copy of the flags (migration 0011), so a daemon start
-- repairs a copy that a crash could have left ahead of the row.
insert into results_realtime.runtime_state as rs (singleton, enabled) values (true, $1::boolean)
on conflict (singleton) do update set enabled = excluded.enabled, updated_at = now()
