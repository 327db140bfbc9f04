-- Writes (and so costs a commit) only when the state actually changes.
update results_realtime.runtime_state
set doorbell_armed = $1::boolean, updated_at = now()
where doorbell_armed is distinct from $1::boolean
