-- For writes that must be durable before anything depends on them (the gap after a restart).
select set_config('synchronous_commit', 'on', true)
