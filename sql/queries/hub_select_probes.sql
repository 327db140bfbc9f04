-- Realtime's read check, step 3: which probe rows the JWT role may see under the SELECT policies.
select id from realtime.messages where id = any($1::uuid[])
