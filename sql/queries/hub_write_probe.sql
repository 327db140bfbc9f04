-- Realtime's write check: an insert under the JWT role inside a savepoint; an RLS WITH CHECK
-- violation (42501) means no write permission. $1 topic, $2 extension, $3 id.
insert into realtime.messages (topic, extension, inserted_at, updated_at, id)
values ($1, $2, now(), now(), $3)
