-- Demo: drop its own database at exit (unless --keep). The name is daemon.demo.owndb.DEMO_DATABASE.
drop database if exists results_realtime_demo
