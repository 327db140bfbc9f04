-- Demo: does the demo's own database ($1, daemon.demo.owndb.DEMO_DATABASE) exist on this server?
select exists (select from pg_database where datname = $1)
