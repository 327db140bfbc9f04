-- The bounded claim (measurements.md 4.2): the id list is an InitPlan, evaluated once and never
-- longer than $1, whatever plan is cached; `IN (SELECT ... LIMIT)` can claim the whole backlog.
-- In the same round trip: forget the messages Realtime accepted since the last claim ($2), and
-- disarm the doorbell when asked ($3; it writes only when the state actually changes).
with acked as (
    delete from results_realtime.outbox_messages where id = any($2::bigint[])
), disarmed as (
    update results_realtime.runtime_state
    set doorbell_armed = false, updated_at = now()
    where $3::boolean and doorbell_armed
)
delete from results_realtime.outbox
where id = any(array(
    select id from results_realtime.outbox
    order by id
    for update skip locked
    limit $1::int
))
returning id, activity_id, pupil_id::text as pupil_id, op, source, created_at
