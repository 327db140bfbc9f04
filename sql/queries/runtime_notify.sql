-- The listener's self-probe and the doorbell test of `check`: a NOTIFY with a bound channel name.
select pg_notify($1::text, $2::text)
