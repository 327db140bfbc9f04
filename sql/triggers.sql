-- Repeatable: trigger functions and triggers (re-applied by every `migrate`).
-- Filled in by the core pipeline work.
select 1;
