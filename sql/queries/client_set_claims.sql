-- Act as a Supabase user for the rest of the transaction, the way PostgREST and Realtime do:
-- $1 = the JWT's role (validated by the caller), $2 = all claims as JSON, $3 = the sub claim.
select
    set_config('role', $1, true),
    set_config('request.jwt.claims', $2, true),
    set_config('request.jwt.claim.sub', $3, true),
    set_config('request.jwt.claim.role', $1, true)
