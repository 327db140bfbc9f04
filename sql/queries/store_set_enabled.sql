insert into results_realtime.runtime_state as rs (singleton, enabled) values (true, $1::boolean)
on conflict (singleton) do update set enabled = excluded.enabled, updated_at = now()
where rs.enabled is distinct from excluded.enabled
