-- The doorbell as the daemon leaves it: armed while idle (writers NOTIFY), disarmed while busy.
update results_realtime.runtime_state set doorbell_armed = $1, updated_at = now()
