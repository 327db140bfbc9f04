-- The work connection's generic plans were made for the tables' sizes back then: make them
-- again at the next execution (daemon/pipeline/replan.py). Prepared statements stay prepared.
discard plans
