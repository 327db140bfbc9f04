-- Demo: its own database beside the one DATABASE_URL names (never that one: it gets fake pupils).
-- The name is daemon.demo.owndb.DEMO_DATABASE; CREATE DATABASE takes no parameters.
create database results_realtime_demo
