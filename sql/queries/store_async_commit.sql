-- For writes whose loss in a crash is harmless (an ack redelivers, a doorbell is re-armed).
select set_config('synchronous_commit', 'off', true)
