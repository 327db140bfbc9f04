-- Realtime's read check, step 1: a probe row inserted as the login role (RLS does not apply to it);
-- the whole transaction is rolled back afterwards. $1 topic, $2 extension, $3 probe id.
insert into realtime.messages (topic, extension, id, inserted_at, updated_at)
values ($1, $2, $3, now(), now())
