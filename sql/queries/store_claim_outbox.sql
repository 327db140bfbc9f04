-- The bounded claim (measurements.md 4.2): the id list is an InitPlan, evaluated once and never
-- longer than $1, whatever plan is cached; `IN (SELECT ... LIMIT)` can claim the whole backlog.
delete from results_realtime.outbox
where id = any(array(
    select id from results_realtime.outbox
    order by id
    for update skip locked
    limit $1::int
))
returning id, activity_id, pupil_id::text as pupil_id, op, source, created_at
