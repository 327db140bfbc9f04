-- The feature flag, and the flags as bits two ways: as the state row holds them, and as the
-- triggers read them (their copy, migration 0011). Bit 1: enabled, bit 2: doorbell armed; no row
-- means 0 (disabled), and so does a copy never written.
select coalesce(rs.enabled, false) as enabled,
       coalesce(results_realtime.runtime_flag_bits_v1(rs.enabled, rs.doorbell_armed), 0)
           as row_bits,
       coalesce(pg_catalog.pg_sequence_last_value('results_realtime.runtime_flags'), 0)
           as copy_bits
from (select) as one
left join results_realtime.runtime_state as rs on true
