-- The transaction-local settings Realtime sets before any RLS check; setting `role` switches to the
-- JWT's role, so the statements that follow run under that role's policies.
select
    set_config('role', $1, true),
    set_config('realtime.topic', $2, true),
    set_config('request.jwt.claims', $3, true),
    set_config('request.jwt.claim.sub', $4, true),
    set_config('request.jwt.claim.role', $5, true),
    set_config('request.headers', $6, true)
